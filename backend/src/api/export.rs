//! `GET /api/agents/{id}/export?format=markdown|jsonl`: an agent's conversation as a file to download.
//!
//! - `jsonl`: every stored message, one per line, exactly as `GET /api/agents/{id}/messages` writes
//!   each, in sequence order.
//! - `markdown` (the default): a transcript to read ([`Markdown`]), built by the web app's rules
//!   (`frontend-yew/src/transcript/`): the streamed text once, whole blocks only when nothing of them
//!   streamed, the partial text of an abandoned attempt left out.
//!
//! The history is read a page at a time and the body streamed as it is read, so that an agent of a
//! million messages is never in memory at once. The export is the history as it stood when the request
//! came: what a running agent stores meanwhile is left out, so that the download ends.

use std::collections::{HashMap, VecDeque};

use actix_web::http::header::CONTENT_DISPOSITION;
use actix_web::{web, HttpResponse};
use agentstream_wire::{
    keys, Agent, ErrorCode, EventType, MessageType, PermissionDecision, StoredMessage,
};
use bytes::Bytes;
use serde_json::Value;
use uuid::Uuid;

use super::agents::parse_id;
use super::AppState;
use crate::error::ApiError;
use crate::store;

/// Rows read per page of the history.
const PAGE: u64 = 1000;

/// The two file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Markdown,
    Jsonl,
}

impl Format {
    /// `?format=`: missing is markdown; anything but the two names is a 400.
    fn parse(raw: Option<&str>) -> Result<Format, ApiError> {
        match raw {
            None | Some("markdown") => Ok(Format::Markdown),
            Some("jsonl") => Ok(Format::Jsonl),
            Some(other) => Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("format must be markdown or jsonl, got {other:?}"),
            )),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Jsonl => "jsonl",
        }
    }
}

/// `GET /api/agents/{id}/export[?format=markdown|jsonl]`: 200 with the file as an attachment.
#[utoipa::path(
    get,
    path = "/api/agents/{id}/export",
    operation_id = "exportAgent",
    summary = "Download the conversation (Markdown or JSON lines)",
    tag = "agents",
    description = "The agent's conversation as a file to download, as it stood when the request came: \
                   `markdown`, a transcript to read, or `jsonl`, every stored message as \
                   `GET …/messages` returns it, one per line.",
    params(crate::openapi::params::AgentId, crate::openapi::params::ExportQuery),
    responses(
        (
            status = 200,
            description = "The file, as an attachment.",
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"agent-<id>.md\"` (`.jsonl`)")),
            content(
                (String = "text/markdown"),
                (String = "application/x-ndjson"),
            ),
        ),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 500, response = crate::openapi::responses::StorageFailure),
    ),
)]
pub async fn export(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let format = Format::parse(query.get("format").map(String::as_str))?;
    let agent = store::find_agent(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::agent_not_found(id))?;
    let last = store::last_sequence(&state.db, id).await?;
    // The first page is read before the answer starts: a database that fails at once is a 500 in the
    // error form, not a file cut short.
    let first = store::find_since(&state.db, id, 0, Some(PAGE)).await?;
    let writer = match format {
        Format::Jsonl => Writer::Jsonl,
        Format::Markdown => Writer::Markdown(Box::new(Markdown::new(&agent))),
    };
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"agent-{id}.{}\"", format.extension()),
        ))
        .streaming(body(state.db.clone(), id, last, first, writer)))
}

/// What turns messages into the file's bytes.
enum Writer {
    Jsonl,
    Markdown(Box<Markdown>),
}

impl Writer {
    fn message(&mut self, m: &StoredMessage, out: &mut Vec<u8>) {
        match self {
            Writer::Jsonl => {
                crate::json_text::push_message(out, m);
                out.push(b'\n');
            }
            Writer::Markdown(md) => {
                md.apply(m);
                md.take_into(out);
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if let Writer::Markdown(md) = self {
            md.finish();
            md.take_into(out);
        }
    }
}

/// The file: the messages numbered up to `last`, from `first` on, a page at a time (keyset pagination
/// on the sequence number, as `GET …/messages` reads a whole history); one chunk per page. A page that
/// cannot be read ends the body with an error: the client sees a download cut short, never a file
/// that silently lacks messages.
fn body(
    db: sea_orm::DatabaseConnection,
    id: Uuid,
    last: i64,
    first: Vec<StoredMessage>,
    mut writer: Writer,
) -> impl futures_util::Stream<Item = Result<Bytes, ApiError>> {
    async_stream::stream! {
        let mut out = Vec::new();
        if let Writer::Markdown(md) = &mut writer {
            md.take_into(&mut out);
        }
        let mut page = first;
        loop {
            let full = page.len() as u64 == PAGE;
            let mut read_to = None;
            for m in page.iter().take_while(|m| m.sequence_number <= last) {
                writer.message(m, &mut out);
                read_to = Some(m.sequence_number);
            }
            if !out.is_empty() {
                yield Ok(Bytes::from(std::mem::take(&mut out)));
            }
            let Some(after) = read_to.filter(|&after| full && after < last) else {
                break;
            };
            page = match store::find_since(&db, id, after, Some(PAGE)).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, agent_id = %id, "export: the history could not be read");
                    yield Err(ApiError::storage(&e));
                    return;
                }
            };
        }
        writer.finish(&mut out);
        if !out.is_empty() {
            yield Ok(Bytes::from(out));
        }
    }
}

/// The most text the markdown transcript holds back (bytes) while an answer may still be abandoned;
/// past it, what is held is written as it stands (an attempt abandoned after that gets a note instead
/// of disappearing). An abandoned attempt is a partial answer, far smaller than this.
const MAX_HELD_BYTES: usize = 4 << 20;

/// A result's `terminalReason` (`aborted_streaming`, `aborted_tools`: the turn was interrupted).
const TERMINAL_REASON: &str = "terminalReason";
/// A retry's answers that will not be finished (Codex): their streamed text is void.
const ABANDONED_MESSAGE_IDS: &str = "abandonedMessageIds";

/// The three kinds of streamed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    Text,
    Thinking,
    Tool,
}

/// A block of the transcript, not written yet.
#[derive(Debug)]
enum ItemKind {
    /// The assistant's text (markdown, written as it is). `continued`: the rest of a block whose start
    /// was written already, joined to it when nothing came between.
    Text { text: String, continued: bool },
    /// Thinking, written as a quote.
    Thinking(String),
    /// A tool call: its name and its input (JSON text when it is JSON).
    Tool {
        name: String,
        input: String,
        continued: bool,
    },
    /// A prompt: the first one, or a follow-up (`origin`: the server sent it itself).
    You {
        text: String,
        origin: Option<String>,
    },
    /// A whole block of the agent's part, markdown already.
    Line(String),
}

impl ItemKind {
    fn held(&self) -> usize {
        match self {
            ItemKind::Text { text, .. } | ItemKind::Thinking(text) | ItemKind::Line(text) => {
                text.len()
            }
            ItemKind::Tool { name, input, .. } => name.len() + input.len(),
            ItemKind::You { text, .. } => text.len(),
        }
    }

    /// Adds a piece of a streamed block.
    fn append(&mut self, piece: &str) {
        match self {
            ItemKind::Text { text, .. } | ItemKind::Thinking(text) => text.push_str(piece),
            ItemKind::Tool { input, .. } => input.push_str(piece),
            ItemKind::You { .. } | ItemKind::Line(_) => {}
        }
    }
}

#[derive(Debug)]
struct Item {
    kind: ItemKind,
    /// The streamed block it belongs to.
    key: Option<BlockKey>,
    /// It may still change (its answer may be abandoned): it and everything after it wait.
    open: bool,
    /// Abandoned: never written.
    discarded: bool,
}

/// A streamed block: `(messageId, blockIndex)`.
type BlockKey = (String, i64);

/// What is known of a streamed block of the current turn.
#[derive(Debug)]
struct Streamed {
    piece: Piece,
    /// The item its pieces go to (a later one once part of it was written).
    item: u64,
    /// Its first item's number: whole blocks are matched to streamed ones in the order they began.
    order: u64,
    open: bool,
    /// Its whole block came: another whole block of the message is not this one.
    reconciled: bool,
    /// Part of it was written.
    written: bool,
    tool_use_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    None,
    You,
    Agent,
}

/// Whether markdown written as it is (an answer, a prompt) left a code fence open: an answer cut off
/// inside a code block would otherwise swallow the rest of the transcript.
#[derive(Debug, Default)]
struct Fences {
    /// The start of the current line: enough of it to tell a fence.
    line: String,
    /// The open fence: its character and length.
    open: Option<(char, usize)>,
}

/// The longest start of a line [`Fences`] keeps.
const FENCE_LINE_BYTES: usize = 256;

impl Fences {
    fn feed(&mut self, text: &str) {
        let mut rest = text;
        while let Some(nl) = rest.find('\n') {
            self.keep(&rest[..nl]);
            self.end_line();
            rest = &rest[nl + 1..];
        }
        self.keep(rest);
    }

    fn keep(&mut self, part: &str) {
        let room = FENCE_LINE_BYTES.saturating_sub(self.line.len());
        let mut end = part.len().min(room);
        while !part.is_char_boundary(end) {
            end -= 1;
        }
        self.line.push_str(&part[..end]);
    }

    /// The current line is over: does it open or close a fence?
    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent > 3 {
            return;
        }
        let body = &line[indent..];
        let Some(c) = body.chars().next().filter(|c| *c == '`' || *c == '~') else {
            return;
        };
        let run = body.len() - body.trim_start_matches(c).len();
        if run < 3 {
            return;
        }
        let after = &body[run..];
        match self.open {
            Some((open, length)) => {
                if c == open && run >= length && after.trim().is_empty() {
                    self.open = None;
                }
            }
            // A backtick fence's info string holds no backtick (else it is inline code).
            None if c == '`' && after.contains('`') => {}
            None => self.open = Some((c, run)),
        }
    }
}

/// An agent's transcript in markdown, rendered as its messages come (in sequence order, each once):
/// [`Markdown::apply`] each, [`Markdown::take`] what is ready, [`Markdown::finish`] at the end.
///
/// Blocks wait in a queue from the first one that may still change: the text of a model message that
/// is still streaming can be abandoned by a retry (`abandoned_blocks`, Codex's `abandonedMessageIds`)
/// and must then not appear at all. A block is settled when its whole block came, its message ended
/// (`message_delta`), or its turn did (`result`).
pub struct Markdown {
    out: String,
    queue: VecDeque<Item>,
    /// The number of `queue[0]`; items are numbered as they are made.
    first_id: u64,
    next_id: u64,
    /// Bytes held in the queue.
    held: usize,
    held_limit: usize,
    /// The streamed blocks of the current turn.
    blocks: HashMap<BlockKey, Streamed>,
    /// Tool names by tool-use id, in the current turn: a result names its tool.
    tools: HashMap<String, String>,
    /// The item text without a message id goes to (Gemini's), while it is the latest.
    loose: Option<u64>,
    section: Section,
    fences: Fences,
    /// The last thing written is an answer's text (its continuation joins it).
    in_text: bool,
    /// `\n`s at the end of what was written.
    trailing_newlines: usize,
    started: bool,
    /// The agent's status when the export began (an active one gets a note at the end).
    status: agentstream_wire::AgentStatus,
}

impl Markdown {
    /// A transcript of `agent`: its title and facts, then its prompt.
    pub fn new(agent: &Agent) -> Markdown {
        let mut md = Markdown {
            out: String::new(),
            queue: VecDeque::new(),
            first_id: 0,
            next_id: 0,
            held: 0,
            held_limit: MAX_HELD_BYTES,
            blocks: HashMap::new(),
            tools: HashMap::new(),
            loose: None,
            section: Section::None,
            fences: Fences::default(),
            in_text: false,
            trailing_newlines: 0,
            started: false,
            status: agent.status,
        };
        md.header(agent);
        md
    }

    /// What is ready to be sent.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    /// Appends what is ready to `out`, keeping the buffer (one message at a time: no allocation each).
    pub fn take_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.out.as_bytes());
        self.out.clear();
    }

    fn header(&mut self, agent: &Agent) {
        let title_line = agent.prompt.lines().find(|l| !l.trim().is_empty());
        let title = match title_line {
            Some(line) => {
                let line = line.trim();
                let cut: String = line.chars().take(100).collect();
                let ellipsis = if cut.len() < line.len() { "…" } else { "" };
                format!(
                    "# {} agent: {}{ellipsis}\n\n",
                    agent.agent_type,
                    escape_inline(&cut)
                )
            }
            None => format!("# {} agent\n\n", agent.agent_type),
        };
        self.write(&title);
        let mut facts = vec![
            format!("- **Agent:** {}", code_span(&agent.id.to_string())),
            format!("- **Status:** {}", agent.status),
        ];
        if let Some(model) = &agent.model {
            facts.push(format!("- **Model:** {}", escape_inline(model)));
        }
        if let Some(session) = &agent.session_id {
            facts.push(format!("- **Session:** {}", code_span(session)));
        }
        facts.push(format!(
            "- **Created:** {}",
            escape_inline(&agent.created_at)
        ));
        if let Some(at) = &agent.started_at {
            facts.push(format!("- **Started:** {}", escape_inline(at)));
        }
        if let Some(at) = &agent.completed_at {
            facts.push(format!("- **Completed:** {}", escape_inline(at)));
        }
        if let Some(error) = &agent.error {
            facts.push(format!(
                "- **Error:** {} {}",
                code_span(&error.code),
                escape_inline(&error.message)
            ));
        }
        self.write(&(facts.join("\n") + "\n"));
        if !agent.prompt.trim().is_empty() {
            self.push(
                ItemKind::You {
                    text: agent.prompt.clone(),
                    origin: None,
                },
                None,
                false,
            );
            self.settle();
        }
    }

    /// The next message.
    pub fn apply(&mut self, m: &StoredMessage) {
        let event = EventType::of(&m.metadata);
        let message_id = meta_str(m, keys::MESSAGE_ID);
        let block_index = m
            .metadata
            .get(keys::BLOCK_INDEX)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let key = message_id.clone().map(|id| (id, block_index));
        // A retry that starts the answer over (Codex): what streamed of the answers it abandons is void.
        if let Some(ids) = m
            .metadata
            .get(ABANDONED_MESSAGE_IDS)
            .and_then(Value::as_array)
        {
            for id in ids.iter().filter_map(Value::as_str) {
                self.abandon(id, 0);
            }
        }
        match event {
            Some(EventType::ContentDelta) => match key {
                Some(key) => self.stream(key, Piece::Text, &m.content),
                None => self.loose_text(&m.content),
            },
            Some(EventType::ThinkingDelta) => match key {
                Some(key) => self.stream(key, Piece::Thinking, &m.content),
                None => {
                    self.push(ItemKind::Thinking(m.content.clone()), None, false);
                }
            },
            Some(EventType::ToolUse) => self.tool_use(m, key),
            // A piece without a block key belongs to no call known: the web app drops it too.
            Some(EventType::ToolInputDelta) => {
                if let Some(key) = key {
                    self.stream(key, Piece::Tool, &m.content);
                }
            }
            Some(EventType::ToolResult) => self.tool_result(m),
            Some(EventType::AssistantMessage) => self.whole_block(m, message_id.as_deref()),
            Some(EventType::AbandonedBlocks) => {
                if let Some(id) = &message_id {
                    let from = m
                        .metadata
                        .get(keys::FROM_BLOCK_INDEX)
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    self.abandon(id, from);
                    // The message is over: what is left of it stays.
                    self.close(|k| k.0 == *id);
                }
            }
            // The end of a model message: nothing of it is abandoned any more.
            Some(EventType::MessageDelta) => {
                if let Some(id) = &message_id {
                    self.close(|k| k.0 == *id);
                }
            }
            Some(EventType::SignatureDelta) => {}
            Some(EventType::UserInput) => {
                self.push(
                    ItemKind::You {
                        text: m.content.clone(),
                        origin: meta_str(m, keys::ORIGIN),
                    },
                    None,
                    false,
                );
            }
            Some(EventType::PermissionRequest) => self.permission_request(m),
            Some(EventType::PermissionResponse) => self.permission_response(m),
            Some(EventType::Result) => {
                self.push(ItemKind::Line(result_line(m)), None, false);
                // The turn is over: every block of it is settled.
                self.close(|_| true);
                self.settle();
                self.blocks.clear();
                self.tools.clear();
            }
            Some(
                EventType::System
                | EventType::Unknown
                | EventType::UserMessage
                | EventType::ParseError
                | EventType::LineTooLong,
            )
            | None => self.other(m, event),
        }
        self.settle();
    }

    /// The export's end: everything held is written.
    pub fn finish(&mut self) {
        self.close(|_| true);
        self.flush(true);
        self.close_fence();
        if self.status.is_active() {
            self.begin(false);
            self.write(&format!(
                "*Exported while the agent was {}: what it stored after that is not here.*\n",
                self.status
            ));
        }
        if self.trailing_newlines == 0 {
            self.write("\n");
        }
    }

    fn stream(&mut self, key: BlockKey, piece: Piece, text: &str) {
        let Some(s) = self.blocks.get(&key).filter(|s| s.piece == piece) else {
            let kind = match piece {
                Piece::Text => ItemKind::Text {
                    text: text.to_owned(),
                    continued: false,
                },
                Piece::Thinking => ItemKind::Thinking(text.to_owned()),
                // Input of a call whose start is not in the history.
                Piece::Tool => ItemKind::Tool {
                    name: "tool".to_owned(),
                    input: text.to_owned(),
                    continued: false,
                },
            };
            self.start_block(key, piece, kind, None);
            return;
        };
        let (item, open) = (s.item, s.open);
        if let Some(it) = self.item_mut(item) {
            it.kind.append(text);
            self.held += text.len();
            return;
        }
        // Its start was written already: the rest is an item of its own, joined to it when nothing
        // came between.
        let joined = item + 1 == self.next_id;
        let kind = match piece {
            Piece::Text => ItemKind::Text {
                text: text.to_owned(),
                continued: joined,
            },
            Piece::Thinking => ItemKind::Thinking(text.to_owned()),
            Piece::Tool => ItemKind::Tool {
                name: String::new(),
                input: text.to_owned(),
                continued: true,
            },
        };
        let new = self.push(kind, Some(key.clone()), open);
        if let Some(s) = self.blocks.get_mut(&key) {
            s.item = new;
        }
    }

    fn start_block(
        &mut self,
        key: BlockKey,
        piece: Piece,
        kind: ItemKind,
        tool_use_id: Option<String>,
    ) {
        let id = self.push(kind, Some(key.clone()), true);
        self.blocks.insert(
            key,
            Streamed {
                piece,
                item: id,
                order: id,
                open: true,
                reconciled: false,
                written: false,
                tool_use_id,
            },
        );
    }

    /// Text without a message id (Gemini's): joined to the text before it while nothing came between.
    fn loose_text(&mut self, text: &str) {
        if let Some(loose) = self.loose.filter(|&l| l + 1 == self.next_id) {
            if let Some(it) = self.item_mut(loose) {
                it.kind.append(text);
                self.held += text.len();
                return;
            }
            self.loose = Some(self.push(
                ItemKind::Text {
                    text: text.to_owned(),
                    continued: true,
                },
                None,
                false,
            ));
            return;
        }
        self.loose = Some(self.push(
            ItemKind::Text {
                text: text.to_owned(),
                continued: false,
            },
            None,
            false,
        ));
    }

    fn tool_use(&mut self, m: &StoredMessage, key: Option<BlockKey>) {
        // An agent that reports a call whole (Gemini, Codex) gives its input here; Claude's comes in
        // `tool_input_delta`s after it.
        let input = match m.metadata.get(keys::INPUT) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => crate::json_text::value_text(v),
        };
        let tool_use_id = meta_str(m, keys::TOOL_USE_ID);
        if let Some(id) = &tool_use_id {
            self.tools.insert(id.clone(), m.content.clone());
        }
        let kind = ItemKind::Tool {
            name: m.content.clone(),
            input,
            continued: false,
        };
        match key {
            Some(key) => self.start_block(key, Piece::Tool, kind, tool_use_id),
            None => {
                self.push(kind, None, false);
            }
        }
    }

    fn tool_result(&mut self, m: &StoredMessage) {
        let is_error = meta_bool(m, keys::IS_ERROR);
        let tool = meta_str(m, keys::TOOL_USE_ID).and_then(|id| self.tools.get(&id).cloned());
        let mut label = match tool {
            Some(name) => format!("**Result of {}", escape_inline(&name)),
            None => "**Tool result".to_owned(),
        };
        if is_error {
            label.push_str(" (error)");
        }
        label.push_str(":**");
        let line = if m.content.is_empty() {
            format!("{label} *(empty)*\n")
        } else {
            format!("{label}\n\n{}", fenced(&m.content, ""))
        };
        self.push(ItemKind::Line(line), None, false);
    }

    /// A whole block after its deltas: written only when nothing of it streamed.
    fn whole_block(&mut self, m: &StoredMessage, message_id: Option<&str>) {
        let block_type = meta_str(m, keys::BLOCK_TYPE).unwrap_or_default();
        let piece = match block_type.as_str() {
            "text" => Piece::Text,
            "thinking" => Piece::Thinking,
            "tool_use" => Piece::Tool,
            _ => return,
        };
        let tool_use_id = meta_str(m, keys::TOOL_USE_ID);
        if let Some(id) = message_id {
            if let Some(item) = self.reconcile(id, piece, tool_use_id.as_deref()) {
                // A call whose input did not stream: the whole block has it.
                let mut added = 0;
                if let Some(Item {
                    kind: ItemKind::Tool { input, .. },
                    ..
                }) = self.item_mut(item)
                {
                    if input.is_empty() {
                        input.push_str(&m.content);
                        added = m.content.len();
                    }
                }
                self.held += added;
                return;
            }
        }
        match piece {
            Piece::Text => {
                self.push(
                    ItemKind::Text {
                        text: m.content.clone(),
                        continued: false,
                    },
                    None,
                    false,
                );
            }
            Piece::Thinking => {
                self.push(ItemKind::Thinking(m.content.clone()), None, false);
            }
            Piece::Tool => {
                // A call shown already (its `tool_use` had no message id) is not shown twice.
                if tool_use_id
                    .as_ref()
                    .is_some_and(|id| self.tools.contains_key(id))
                {
                    return;
                }
                let name = meta_str(m, keys::TOOL_NAME).unwrap_or_else(|| "tool".to_owned());
                if let Some(id) = tool_use_id {
                    self.tools.insert(id, name.clone());
                }
                self.push(
                    ItemKind::Tool {
                        name,
                        input: m.content.clone(),
                        continued: false,
                    },
                    None,
                    false,
                );
            }
        }
    }

    /// Matches a whole block to the first streamed block of its message and kind it is not matched to
    /// yet (a call by its tool-use id), and settles it; the block's current item.
    fn reconcile(
        &mut self,
        message_id: &str,
        piece: Piece,
        tool_use_id: Option<&str>,
    ) -> Option<u64> {
        let key = self
            .blocks
            .iter()
            .filter(|(k, s)| {
                k.0 == message_id
                    && s.piece == piece
                    && !s.reconciled
                    && (piece != Piece::Tool
                        || tool_use_id.is_none()
                        || s.tool_use_id.as_deref() == tool_use_id)
            })
            .min_by_key(|(_, s)| s.order)
            .map(|(k, _)| k.clone())?;
        let s = self.blocks.get_mut(&key)?;
        s.reconciled = true;
        s.open = false;
        let item = s.item;
        if let Some(it) = self.item_mut(item) {
            it.open = false;
        }
        Some(item)
    }

    /// Drops what streamed of `message_id` from block `from` on (a retry sends the answer again).
    fn abandon(&mut self, message_id: &str, from: i64) {
        let gone: Vec<BlockKey> = self
            .blocks
            .keys()
            .filter(|(id, index)| id == message_id && *index >= from)
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut written = false;
        for key in &gone {
            written |= self.blocks.remove(key).is_some_and(|s| s.written);
        }
        let mut freed = 0;
        for item in self.queue.iter_mut() {
            if item.key.as_ref().is_some_and(|k| gone.contains(k)) && !item.discarded {
                freed += item.kind.held();
                item.discarded = true;
                item.open = false;
                item.kind = ItemKind::Line(String::new());
            }
        }
        self.held = self.held.saturating_sub(freed);
        if written {
            self.push(
                ItemKind::Line(
                    "*(The agent abandoned the partial answer above; it is sent again.)*\n"
                        .to_owned(),
                ),
                None,
                false,
            );
        }
    }

    /// Settles the streamed blocks whose key `which` picks.
    fn close(&mut self, which: impl Fn(&BlockKey) -> bool) {
        let items: Vec<u64> = self
            .blocks
            .iter_mut()
            .filter(|(k, s)| s.open && which(k))
            .map(|(_, s)| {
                s.open = false;
                s.item
            })
            .collect();
        for id in items {
            if let Some(it) = self.item_mut(id) {
                it.open = false;
            }
        }
    }

    fn permission_request(&mut self, m: &StoredMessage) {
        let tool = meta_str(m, keys::TOOL_NAME).unwrap_or_else(|| m.content.clone());
        let input = match m.metadata.get(keys::INPUT) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => crate::json_text::value_text(v),
        };
        let mut line = format!("**Permission requested:** {}", escape_inline(&tool));
        if !input.is_empty() {
            line.push_str(" with ");
            line.push_str(&code_span(&input));
        }
        line.push('\n');
        self.push(ItemKind::Line(line), None, false);
    }

    fn permission_response(&mut self, m: &StoredMessage) {
        let decision = meta_str(m, keys::DECISION).unwrap_or_default();
        let mut said = match decision.parse::<PermissionDecision>() {
            Ok(PermissionDecision::Allow) if meta_bool(m, keys::ALWAYS) => {
                "Always allowed".to_owned()
            }
            Ok(PermissionDecision::Allow) => "Allowed".to_owned(),
            Ok(PermissionDecision::Deny) => "Denied".to_owned(),
            Err(_) => format!("Answered {}", escape_inline(&decision)),
        };
        if let Some(tool) = meta_str(m, keys::TOOL_NAME) {
            said.push_str(&format!(" ({})", escape_inline(&tool)));
        }
        if let Some(input) = m.metadata.get(keys::UPDATED_INPUT).filter(|v| !v.is_null()) {
            said.push_str(" with the input ");
            said.push_str(&code_span(&crate::json_text::value_text(input)));
        }
        if let Some(note) = meta_str(m, keys::MESSAGE).filter(|n| !n.trim().is_empty()) {
            said.push_str(": ");
            said.push_str(&escape_inline(&note));
        }
        self.push(
            ItemKind::Line(format!("**Permission answered:** {said}\n")),
            None,
            false,
        );
    }

    /// System lines, errors, the agent's own user lines, and kinds this version does not know.
    fn other(&mut self, m: &StoredMessage, event: Option<EventType>) {
        if m.content.trim().is_empty() {
            return;
        }
        let line = match m.message_type {
            MessageType::Error => {
                let kind = event.map_or("error", EventType::as_str);
                format!(
                    "**Error** ({}):\n\n{}",
                    escape_inline(kind),
                    fenced(&m.content, "")
                )
            }
            MessageType::User => quote(None, &m.content, true),
            MessageType::Assistant => {
                self.push(
                    ItemKind::Text {
                        text: m.content.clone(),
                        continued: false,
                    },
                    None,
                    false,
                );
                return;
            }
            _ => {
                let subtype = meta_str(m, keys::SUBTYPE)
                    .unwrap_or_else(|| event.map_or("system", EventType::as_str).to_owned());
                format!(
                    "*System ({}):* {}\n",
                    escape_inline(&subtype),
                    escape_inline(&m.content)
                )
            }
        };
        self.push(ItemKind::Line(line), None, false);
    }

    fn push(&mut self, kind: ItemKind, key: Option<BlockKey>, open: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.held += kind.held();
        self.queue.push_back(Item {
            kind,
            key,
            open,
            discarded: false,
        });
        id
    }

    fn item_mut(&mut self, id: u64) -> Option<&mut Item> {
        let i = id.checked_sub(self.first_id)?;
        self.queue.get_mut(usize::try_from(i).ok()?)
    }

    /// Writes what no longer waits; everything when too much is held.
    fn settle(&mut self) {
        self.flush(false);
        if self.held > self.held_limit {
            self.flush(true);
        }
    }

    /// Writes the queue up to its first open item (`all`: to its end).
    fn flush(&mut self, all: bool) {
        while self.queue.front().is_some_and(|f| all || !f.open) {
            let Some(item) = self.queue.pop_front() else {
                break;
            };
            self.first_id += 1;
            self.held = self.held.saturating_sub(item.kind.held());
            if let Some(s) = item.key.as_ref().and_then(|k| self.blocks.get_mut(k)) {
                s.written = true;
            }
            self.write_item(item);
        }
    }

    fn write_item(&mut self, item: Item) {
        if item.discarded {
            return;
        }
        match item.kind {
            ItemKind::Text { text, continued } => {
                if text.is_empty() {
                    return;
                }
                if !(continued && self.in_text) {
                    self.begin(true);
                }
                self.fences.feed(&text);
                self.write(&text);
                self.in_text = true;
            }
            ItemKind::Thinking(text) => {
                if text.trim().is_empty() {
                    return;
                }
                self.begin(true);
                self.write(&quote(Some("**Thinking**"), &text, false));
            }
            ItemKind::Tool {
                name,
                input,
                continued,
            } => {
                if continued {
                    if input.is_empty() {
                        return;
                    }
                    self.begin(true);
                    self.write("*(its input, continued)*\n\n");
                    self.write(&fenced(&input, ""));
                    return;
                }
                self.begin(true);
                self.write(&format!("### Tool: {}\n", escape_inline(&name)));
                if !input.is_empty() {
                    let (input, info) = pretty(&input);
                    self.write("\n");
                    self.write(&fenced(&input, info));
                }
            }
            ItemKind::You { text, origin } => {
                self.begin(false);
                match origin {
                    Some(origin) => self.write(&format!(
                        "## You (sent by the server: {})\n\n",
                        escape_inline(&origin)
                    )),
                    None => self.write("## You\n\n"),
                }
                self.section = Section::You;
                self.fences.feed(&text);
                self.write(&text);
            }
            ItemKind::Line(line) => {
                if line.is_empty() {
                    return;
                }
                self.begin(true);
                self.write(&line);
            }
        }
    }

    /// A new block: a fence left open by the text before is closed, a blank line, and the agent's
    /// heading when its part starts.
    fn begin(&mut self, agent: bool) {
        self.close_fence();
        self.in_text = false;
        if self.started {
            while self.trailing_newlines < 2 {
                self.write("\n");
            }
        }
        if agent && self.section != Section::Agent {
            self.write("## Agent\n\n");
            self.section = Section::Agent;
        }
    }

    fn close_fence(&mut self) {
        // The separator ends the current line: it counts as ended.
        self.fences.end_line();
        if let Some((c, length)) = self.fences.open.take() {
            if self.trailing_newlines == 0 {
                self.write("\n");
            }
            let fence: String = std::iter::repeat_n(c, length).collect();
            self.write(&fence);
            self.write("\n");
        }
    }

    fn write(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.started = true;
        let body = s.trim_end_matches('\n');
        let newlines = s.len() - body.len();
        if body.is_empty() {
            self.trailing_newlines += newlines;
        } else {
            self.trailing_newlines = newlines;
        }
        self.out.push_str(s);
    }
}

fn meta_str(m: &StoredMessage, key: &str) -> Option<String> {
    m.metadata
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn meta_bool(m: &StoredMessage, key: &str) -> bool {
    m.metadata
        .get(key)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A turn's result: its status, duration, tokens and cost on one line; an error's text after it.
fn result_line(m: &StoredMessage) -> String {
    let is_error = meta_bool(m, keys::IS_ERROR);
    let subtype = meta_str(m, keys::SUBTYPE);
    let interrupted = meta_str(m, TERMINAL_REASON).is_some_and(|r| r.starts_with("aborted"))
        || subtype.as_deref() == Some("interrupted");
    let mut status = subtype.unwrap_or_else(|| if is_error { "error" } else { "success" }.into());
    if interrupted && status != "interrupted" {
        status = format!("interrupted ({status})");
    }
    let mut parts = vec![escape_inline(&status)];
    if let Some(ms) = m.metadata.get(keys::DURATION_MS).and_then(Value::as_i64) {
        parts.push(duration(ms));
    }
    // Claude's and Gemini's usage say `output_tokens`; Codex's, the thread's `total.outputTokens`.
    let tokens = m.metadata.get(keys::USAGE).and_then(|u| {
        u.get("output_tokens")
            .or_else(|| u.pointer("/total/outputTokens"))
            .and_then(Value::as_u64)
    });
    if let Some(tokens) = tokens {
        parts.push(format!(
            "{tokens} output token{}",
            if tokens == 1 { "" } else { "s" }
        ));
    }
    if let Some(cost) = m.metadata.get(keys::TOTAL_COST_USD).and_then(Value::as_f64) {
        parts.push(format!("${cost:.4}"));
    }
    if let Some(turns) = m.metadata.get(keys::NUM_TURNS).and_then(Value::as_u64) {
        parts.push(format!("{turns} turn{}", if turns == 1 { "" } else { "s" }));
    }
    let mut line = format!("**Result:** {}\n", parts.join(" · "));
    if is_error && !m.content.trim().is_empty() {
        line.push('\n');
        line.push_str(&fenced(&m.content, ""));
    }
    line
}

/// `850 ms`, `12.3 s`, `4 min 05 s`.
fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

/// `content` in a fenced code block: the fence is longer than any run of backticks in it, so nothing
/// in it can close it.
fn fenced(content: &str, info: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(content).max(2) + 1);
    let newline = if content.ends_with('\n') { "" } else { "\n" };
    format!("{fence}{info}\n{content}{newline}{fence}\n")
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// `s` on one line as inline code, whatever backticks it holds.
fn code_span(s: &str) -> String {
    let s = s.replace(['\r', '\n'], " ");
    if s.is_empty() {
        return "*(empty)*".to_owned();
    }
    let ticks = "`".repeat(longest_backtick_run(&s) + 1);
    // A span that starts or ends with a backtick or a space needs a space on each side (one is taken
    // off each side when it is read).
    let pad = if s.starts_with(['`', ' ']) || s.ends_with(['`', ' ']) {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{s}{pad}{ticks}")
}

/// `s` on one line as plain text: every character markdown would read as markup escaped.
fn escape_inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\r' | '\n' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '&' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` as a block quote, under `title`; `plain`: its lines escaped (not markdown).
fn quote(title: Option<&str>, text: &str, plain: bool) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16 + 16);
    if let Some(title) = title {
        out.push_str("> ");
        out.push_str(title);
        out.push_str("\n>\n");
    }
    for line in text.trim_end_matches(['\n', '\r']).split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            out.push_str(">\n");
        } else {
            out.push_str("> ");
            if plain {
                out.push_str(&escape_inline(line));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
    }
    out
}

/// A tool's input pretty-printed with its info string when it is JSON, else as it is.
fn pretty(input: &str) -> (String, &'static str) {
    match serde_json::from_str::<Value>(input)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
    {
        Some(p) => (p, "json"),
        None => (input.to_owned(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::{AgentStatus, AgentType};
    use serde_json::json;

    fn agent(prompt: &str, status: AgentStatus) -> Agent {
        Agent {
            id: Uuid::nil(),
            agent_type: AgentType::ClaudeCode,
            status,
            prompt: prompt.into(),
            created_at: "2026-01-02T03:04:05.000Z".into(),
            started_at: Some("2026-01-02T03:04:06.000Z".into()),
            completed_at: None,
            configuration: json!({}),
            session_id: Some("sess-1".into()),
            model: Some("claude-test".into()),
            error: None,
            usage: Default::default(),
        }
    }

    /// Feeds literal messages, numbered in order, into a transcript.
    struct Feed {
        seq: i64,
        md: Markdown,
        out: String,
    }

    impl Feed {
        fn new(prompt: &str) -> Self {
            let mut md = Markdown::new(&agent(prompt, AgentStatus::Completed));
            let out = md.take();
            Feed { seq: 0, md, out }
        }

        fn push(&mut self, kind: MessageType, content: &str, metadata: Value) {
            self.seq += 1;
            self.md.apply(&StoredMessage {
                id: Uuid::from_u128(self.seq as u128),
                agent_id: Uuid::nil(),
                sequence_number: self.seq,
                message_type: kind,
                role: None,
                content: content.into(),
                raw: Some("{}".into()),
                metadata,
                created_at: String::new(),
            });
            self.out.push_str(&self.md.take());
        }

        fn delta(&mut self, msg: &str, index: i64, text: &str) {
            self.push(
                MessageType::Assistant,
                text,
                json!({"eventType": "content_delta", "messageId": msg, "blockIndex": index}),
            );
        }

        fn whole(&mut self, msg: &str, text: &str) {
            self.push(
                MessageType::Assistant,
                text,
                json!({"eventType": "assistant_message", "messageId": msg, "blockType": "text"}),
            );
        }

        fn result(&mut self) {
            self.push(
                MessageType::Result,
                "",
                json!({"eventType": "result", "subtype": "success", "isError": false,
                       "durationMs": 1500, "totalCostUsd": 0.0123, "usage": {"output_tokens": 42}}),
            );
        }

        fn finish(mut self) -> String {
            self.md.finish();
            self.out.push_str(&self.md.take());
            self.out
        }
    }

    fn position(out: &str, needle: &str) -> usize {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in:\n{out}"))
    }

    #[test]
    fn the_header_and_a_tool_call_with_its_input_and_result() {
        let mut f = Feed::new("List the files\nin detail");
        f.delta("m1", 0, "Running ");
        f.delta("m1", 0, "it.");
        f.push(
            MessageType::Tool,
            "Bash",
            json!({"eventType": "tool_use", "messageId": "m1", "blockIndex": 1, "toolUseId": "t1"}),
        );
        for part in ["{\"comm", "and\": \"ls -a\"}"] {
            f.push(
                MessageType::Tool,
                part,
                json!({"eventType": "tool_input_delta", "messageId": "m1", "blockIndex": 1}),
            );
        }
        f.whole("m1", "Running it.");
        f.push(MessageType::Assistant, "{\"command\":\"ls -a\"}", json!({"eventType": "assistant_message", "messageId": "m1", "blockType": "tool_use", "toolUseId": "t1"}));
        f.push(
            MessageType::Tool,
            "a\nb",
            json!({"eventType": "tool_result", "toolUseId": "t1", "isError": false}),
        );
        f.delta("m2", 0, "Done.");
        f.whole("m2", "Done.");
        f.result();
        let out = f.finish();
        assert!(
            out.starts_with("# claude-code agent: List the files\n\n"),
            "{out}"
        );
        for fact in [
            "- **Status:** completed",
            "- **Model:** claude-test",
            "- **Session:** `sess-1`",
            "- **Created:** 2026-01-02T03:04:05.000Z",
        ] {
            assert!(out.contains(fact), "{fact} in {out}");
        }
        assert!(
            out.contains("## You\n\nList the files\nin detail\n\n## Agent\n\n"),
            "{out}"
        );
        assert_eq!(out.matches("Running it.").count(), 1, "{out}");
        assert_eq!(out.matches("Done.").count(), 1, "{out}");
        assert!(
            out.contains("### Tool: Bash\n\n```json\n{\n  \"command\": \"ls -a\"\n}\n```\n"),
            "{out}"
        );
        assert!(
            out.contains("**Result of Bash:**\n\n```\na\nb\n```\n"),
            "{out}"
        );
        assert!(
            out.contains("**Result:** success · 1.5 s · 42 output tokens · $0.0123"),
            "{out}"
        );
        let order = [
            "## You",
            "Running it.",
            "### Tool: Bash",
            "**Result of Bash:**",
            "Done.",
            "**Result:**",
        ]
        .map(|n| position(&out, n));
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{out}");
    }

    #[test]
    fn fences_in_content_never_end_their_block_and_an_unfinished_one_is_closed() {
        let mut f = Feed::new("fence");
        f.push(
            MessageType::Tool,
            "Read",
            json!({"eventType": "tool_use", "toolUseId": "t1", "input": {"path": "a.md"}}),
        );
        f.push(
            MessageType::Tool,
            "```rust\nfn main() {}\n```\nand ```` four",
            json!({"eventType": "tool_result", "toolUseId": "t1"}),
        );
        // An answer cut off inside its code block (an interrupt).
        f.delta("m1", 0, "Here:\n```python\nprint(1)");
        f.push(
            MessageType::Result,
            "",
            json!({"eventType": "result", "subtype": "error_during_execution", "isError": true,
                   "terminalReason": "aborted_streaming", "usage": {"total": {"outputTokens": 7}}}),
        );
        let out = f.finish();
        assert!(
            out.contains(
                "**Result of Read:**\n\n`````\n```rust\nfn main() {}\n```\nand ```` four\n`````\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("print(1)\n```\n\n**Result:** interrupted (error\\_during\\_execution) · 7 output tokens"),
            "{out}"
        );
        assert_eq!(code_span("a `b` c"), "``a `b` c``");
        assert_eq!(code_span("`x"), "`` `x ``");
        assert_eq!(escape_inline("a *b* [c]\n#d"), "a \\*b\\* \\[c\\] \\#d");
    }

    #[test]
    fn an_abandoned_attempt_is_left_out() {
        // Claude: the message's blocks are abandoned at its end; the answer comes again under another id.
        let mut f = Feed::new("retry");
        f.delta("m1", 0, "partial ans");
        f.push(
            MessageType::System,
            "",
            json!({"eventType": "abandoned_blocks", "messageId": "m1", "fromBlockIndex": 0}),
        );
        f.delta("m2", 0, "the full answer");
        f.push(
            MessageType::System,
            "",
            json!({"eventType": "message_delta", "messageId": "m2", "usage": {"output_tokens": 3}}),
        );
        // Codex: a retry names the answers it abandons.
        f.delta("c1", 0, "half a");
        f.push(
            MessageType::System,
            "Reconnecting... 1/5",
            json!({"eventType": "system", "subtype": "api_retry", "abandonedMessageIds": ["c1"]}),
        );
        f.delta("c2", 0, "second answer");
        f.whole("c2", "second answer");
        f.result();
        let out = f.finish();
        assert!(!out.contains("partial"), "{out}");
        assert!(!out.contains("half a"), "{out}");
        assert_eq!(out.matches("the full answer").count(), 1, "{out}");
        assert_eq!(out.matches("second answer").count(), 1, "{out}");
        assert!(
            out.contains("*System (api\\_retry):* Reconnecting... 1/5"),
            "{out}"
        );
    }

    #[test]
    fn a_follow_up_during_a_turn_comes_after_the_answer_it_interrupted() {
        let mut f = Feed::new("first");
        f.delta("m1", 0, "one ");
        f.push(
            MessageType::User,
            "second",
            json!({"eventType": "user_input"}),
        );
        f.delta("m1", 0, "two");
        f.push(
            MessageType::System,
            "",
            json!({"eventType": "message_delta", "messageId": "m1"}),
        );
        f.result();
        f.delta("m2", 0, "three");
        f.result();
        let out = f.finish();
        let order =
            ["## You\n\nfirst", "one two", "## You\n\nsecond", "three"].map(|n| position(&out, n));
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{out}");
    }

    #[test]
    fn permissions_are_one_line_each_and_whole_calls_show_once() {
        let mut f = Feed::new("ask");
        f.push(MessageType::Assistant, "{\"command\":\"echo 1\"}", json!({"eventType": "assistant_message", "messageId": "m1", "blockType": "tool_use", "toolUseId": "t1", "toolName": "Bash"}));
        f.push(
            MessageType::Tool,
            "Bash",
            json!({"eventType": "permission_request", "requestId": "r1", "toolName": "Bash",
                   "input": {"command": "echo 1"}}),
        );
        f.push(
            MessageType::User,
            "deny Bash",
            json!({"eventType": "permission_response", "requestId": "r1", "toolName": "Bash",
                   "decision": "deny", "message": "not *today*"}),
        );
        f.push(
            MessageType::Tool,
            "not today",
            json!({"eventType": "tool_result", "toolUseId": "t1", "isError": true}),
        );
        f.result();
        let out = f.finish();
        assert_eq!(out.matches("### Tool: Bash").count(), 1, "{out}");
        assert!(
            out.contains("**Permission requested:** Bash with `{\"command\":\"echo 1\"}`\n"),
            "{out}"
        );
        assert!(
            out.contains("**Permission answered:** Denied (Bash): not \\*today\\*\n"),
            "{out}"
        );
        assert!(out.contains("**Result of Bash (error):**"), "{out}");
    }

    #[test]
    fn a_long_answer_is_written_before_its_end_and_joins_up() {
        let mut md = Markdown::new(&agent("", AgentStatus::Running));
        md.held_limit = 64;
        let mut out = md.take();
        let mut expected = String::new();
        for i in 0..200 {
            let token = format!("w{i} ");
            expected.push_str(&token);
            md.apply(&StoredMessage {
                id: Uuid::from_u128(i + 1),
                agent_id: Uuid::nil(),
                sequence_number: i as i64 + 1,
                message_type: MessageType::Assistant,
                role: None,
                content: token,
                raw: None,
                metadata: json!({"eventType": "content_delta", "messageId": "m1", "blockIndex": 0}),
                created_at: String::new(),
            });
            out.push_str(&md.take());
            // Never more than the limit (and a token) held back.
            let written = out
                .split_once("## Agent\n\n")
                .map_or(0, |(_, text)| text.len());
            assert!(written + 64 + 8 >= expected.len(), "{i}: {written}");
        }
        md.finish();
        out.push_str(&md.take());
        assert!(out.contains(&format!("## Agent\n\n{expected}")), "{out}");
        assert!(
            out.contains("*Exported while the agent was running"),
            "{out}"
        );
        assert!(out.starts_with("# claude-code agent\n\n"), "{out}");
    }
}
