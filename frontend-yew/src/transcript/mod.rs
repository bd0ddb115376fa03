//! What the agent view shows, built incrementally from the timeline's applied messages: token deltas
//! joined into one text per assistant turn, thinking, tool calls as cards (name, input, result), quiet
//! system lines, errors, and the final result; the user's follow-ups as turns and the agent's permission
//! requests as cards ([`permission`]).
//!
//! Two rules of Claude Code's stream are honoured in [`reconcile`]: a whole block never shows its text
//! twice, and an abandoned attempt's partial text is hidden.
//!
//! Blocks are updated in place (interior mutability) and carry a version: applying a token costs O(1)
//! and the view re-renders only the blocks whose version changed. Plain Rust: tested natively.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use agentstream_wire::{keys, EventType, MessageType, StoredMessage};
use serde_json::Value;

mod block;
mod permission;
mod reconcile;

use block::cut;
pub use block::{Block, BlockKind, BlockRef};
pub use permission::{card_state, pretty, CardState, PermissionCard};

/// The transcript of one agent.
#[derive(Default)]
pub struct Transcript {
    blocks: Vec<BlockRef>,
    /// Streaming blocks by `(messageId, blockIndex)`.
    by_block: HashMap<(String, i64), usize>,
    /// Text blocks of each message id, in order, for reconciling whole blocks.
    texts_of_message: HashMap<String, Vec<usize>>,
    /// Tool blocks by tool-use id.
    tools: HashMap<String, usize>,
    /// Permission cards by request id.
    permissions: HashMap<String, usize>,
    /// The text block that deltas without a message id go to.
    open_text: Option<usize>,
    next_key: u64,
    version: u64,
    /// The latest usage reported (`message_delta`).
    pub usage: Option<Value>,
}

/// A result's `terminalReason` (`aborted_streaming`, `aborted_tools`: the turn was interrupted).
const TERMINAL_REASON: &str = "terminalReason";
/// A retry's answers that will not be finished (Codex): their streamed text is void.
const ABANDONED_MESSAGE_IDS: &str = "abandonedMessageIds";

/// The `subtype` of the system line that says the agent withdrew a request (its turn was interrupted).
const CANCEL_REQUEST: &str = "control_cancel_request";

pub(super) fn meta_str(m: &StoredMessage, key: &str) -> Option<String> {
    m.metadata
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl Transcript {
    /// An empty transcript.
    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    /// The blocks, in order (discarded ones included: the view hides them).
    pub fn blocks(&self) -> &[BlockRef] {
        &self.blocks
    }

    /// A version that changes whenever any block does.
    #[cfg(test)]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The joined text of the visible assistant text blocks (what a reader sees).
    #[cfg(test)]
    pub fn visible_text(&self) -> String {
        self.blocks
            .iter()
            .filter_map(|b| {
                let b = b.borrow();
                match (&b.kind, b.discarded) {
                    (BlockKind::Text { text, .. }, false) => Some(text.clone()),
                    _ => None,
                }
            })
            .collect::<Vec<_>>()
            .join("")
    }

    pub(super) fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    pub(super) fn push_block(&mut self, m: &StoredMessage, kind: BlockKind) -> usize {
        self.next_key += 1;
        let version = self.bump();
        self.blocks.push(Rc::new(RefCell::new(Block {
            key: self.next_key,
            version,
            kind,
            discarded: false,
            message_type: m.message_type,
            first_sequence: m.sequence_number,
            last_sequence: m.sequence_number,
            messages: 1,
            created_at: m.created_at.clone(),
            raw: cut(&m.raw),
        })));
        self.blocks.len() - 1
    }

    /// Updates block `i` with message `m`.
    pub(super) fn update(
        &mut self,
        i: usize,
        m: &StoredMessage,
        change: impl FnOnce(&mut BlockKind),
    ) {
        let version = self.bump();
        let mut b = self.blocks[i].borrow_mut();
        change(&mut b.kind);
        b.version = version;
        b.last_sequence = m.sequence_number;
        b.messages += 1;
        b.raw = cut(&m.raw);
    }

    /// Applies the next message (they come in sequence order, each once).
    pub fn apply(&mut self, m: &StoredMessage) {
        let event = EventType::of(&m.metadata);
        let message_id = meta_str(m, keys::MESSAGE_ID);
        let block_index = m
            .metadata
            .get(keys::BLOCK_INDEX)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let stream_key = message_id.clone().map(|id| (id, block_index));
        // A retry that starts the answer over (Codex's `api_retry`): what streamed of the answers it
        // abandons is void. The retry itself is shown as the system line it is.
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
            Some(EventType::ContentDelta) => {
                let found = match &stream_key {
                    Some(k) => self.by_block.get(k).copied(),
                    None => self.open_text,
                };
                match found {
                    Some(i) => self.update(i, m, |k| {
                        if let BlockKind::Text { text, .. } = k {
                            text.push_str(&m.content);
                        }
                    }),
                    None => {
                        let i = self.push_block(
                            m,
                            BlockKind::Text {
                                text: m.content.clone(),
                                reconciled: false,
                            },
                        );
                        match stream_key {
                            Some(k) => {
                                self.by_block.insert(k, i);
                                if let Some(id) = message_id {
                                    self.texts_of_message.entry(id).or_default().push(i);
                                }
                            }
                            None => self.open_text = Some(i),
                        }
                    }
                }
            }
            Some(EventType::ThinkingDelta) => match stream_key
                .as_ref()
                .and_then(|k| self.by_block.get(k).copied())
            {
                Some(i) => self.update(i, m, |k| {
                    if let BlockKind::Thinking { text } = k {
                        text.push_str(&m.content);
                    }
                }),
                None => {
                    let i = self.push_block(
                        m,
                        BlockKind::Thinking {
                            text: m.content.clone(),
                        },
                    );
                    if let Some(k) = stream_key {
                        self.by_block.insert(k, i);
                    }
                }
            },
            Some(EventType::ToolUse) => {
                // An agent that reports a call whole (Gemini) gives its input here; Claude's comes in
                // `tool_input_delta`s after it.
                let input = m
                    .metadata
                    .get(keys::INPUT)
                    .filter(|v| !v.is_null())
                    .map(Value::to_string)
                    .unwrap_or_default();
                let i = self.push_block(
                    m,
                    BlockKind::Tool {
                        name: m.content.clone(),
                        input,
                        result: None,
                        is_error: false,
                    },
                );
                if let Some(id) = meta_str(m, keys::TOOL_USE_ID) {
                    self.tools.insert(id, i);
                }
                if let Some(k) = stream_key {
                    self.by_block.insert(k, i);
                }
                self.open_text = None;
            }
            Some(EventType::ToolInputDelta) => {
                if let Some(i) = stream_key
                    .as_ref()
                    .and_then(|k| self.by_block.get(k).copied())
                {
                    self.update(i, m, |k| {
                        if let BlockKind::Tool { input, .. } = k {
                            input.push_str(&m.content);
                        }
                    });
                }
            }
            Some(EventType::ToolResult) => {
                let is_error = m
                    .metadata
                    .get(keys::IS_ERROR)
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                match meta_str(m, keys::TOOL_USE_ID).and_then(|id| self.tools.get(&id).copied()) {
                    Some(i) => self.update(i, m, |k| {
                        if let BlockKind::Tool {
                            result,
                            is_error: e,
                            ..
                        } = k
                        {
                            *result = Some(m.content.clone());
                            *e = is_error;
                        }
                    }),
                    None => {
                        self.push_block(
                            m,
                            BlockKind::Tool {
                                name: "tool".into(),
                                input: String::new(),
                                result: Some(m.content.clone()),
                                is_error,
                            },
                        );
                    }
                }
                self.open_text = None;
            }
            Some(EventType::AssistantMessage) => self.reconcile(m, message_id),
            Some(EventType::AbandonedBlocks) => {
                if let Some(id) = message_id {
                    let from = m
                        .metadata
                        .get(keys::FROM_BLOCK_INDEX)
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    self.abandon(&id, from);
                }
            }
            Some(EventType::MessageDelta) => {
                self.usage = m
                    .metadata
                    .get(keys::USAGE)
                    .cloned()
                    .filter(|u| !u.is_null())
            }
            Some(EventType::SignatureDelta) => {}
            Some(EventType::UserInput) => self.user_input(m),
            Some(EventType::PermissionRequest) => self.permission_request(m),
            Some(EventType::PermissionResponse) => self.permission_response(m),
            Some(EventType::Result) => {
                // The turn is over: a request still waiting will not be answered.
                self.end_waiting_cards();
                let num = |k: &str| m.metadata.get(k);
                // Claude's and Gemini's usage say `output_tokens`; Codex's, the thread's
                // `total.outputTokens`.
                let output_tokens = num(keys::USAGE).and_then(|u| {
                    u.get("output_tokens")
                        .or_else(|| u.pointer("/total/outputTokens"))
                        .and_then(Value::as_u64)
                });
                self.push_block(
                    m,
                    BlockKind::Result {
                        text: m.content.clone(),
                        is_error: num(keys::IS_ERROR)
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        interrupted: meta_str(m, TERMINAL_REASON)
                            .is_some_and(|r| r.starts_with("aborted"))
                            || meta_str(m, keys::SUBTYPE).as_deref() == Some("interrupted"),
                        cost_usd: num(keys::TOTAL_COST_USD).and_then(Value::as_f64),
                        output_tokens,
                        duration_ms: num(keys::DURATION_MS).and_then(Value::as_i64),
                        num_turns: num(keys::NUM_TURNS).and_then(Value::as_u64),
                    },
                );
                self.open_text = None;
            }
            // Shown by their type: a system line, a user's message, an error, or a kind this version
            // of the app does not know (a newer server's).
            Some(
                EventType::System
                | EventType::Unknown
                | EventType::UserMessage
                | EventType::ParseError
                | EventType::LineTooLong,
            )
            | None => match m.message_type {
                MessageType::Error => {
                    self.push_block(
                        m,
                        BlockKind::Error {
                            text: m.content.clone(),
                        },
                    );
                }
                MessageType::User => {
                    self.push_block(
                        m,
                        BlockKind::User {
                            text: m.content.clone(),
                        },
                    );
                    self.open_text = None;
                }
                MessageType::Assistant => {
                    // An assistant message of no known kind: show its text as a turn of its own.
                    self.push_block(
                        m,
                        BlockKind::Text {
                            text: m.content.clone(),
                            reconciled: true,
                        },
                    );
                }
                _ => {
                    if let Some(id) = meta_str(m, keys::REQUEST_ID)
                        .filter(|_| meta_str(m, keys::SUBTYPE).as_deref() == Some(CANCEL_REQUEST))
                    {
                        self.withdraw(&id);
                    }
                    let subtype = meta_str(m, keys::SUBTYPE)
                        .unwrap_or_else(|| event.map_or("unknown", EventType::as_str).to_owned());
                    let text = if m.content.is_empty() && event == Some(EventType::Unknown) {
                        "(a line this version does not know)".to_owned()
                    } else {
                        m.content.clone()
                    };
                    if !text.is_empty() {
                        self.push_block(m, BlockKind::System { subtype, text });
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    struct Feed {
        seq: i64,
        t: Transcript,
    }

    impl Feed {
        fn new() -> Self {
            Feed {
                seq: 0,
                t: Transcript::new(),
            }
        }

        fn push(&mut self, kind: MessageType, content: &str, metadata: Value) {
            self.seq += 1;
            self.t.apply(&StoredMessage {
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

        fn kinds(&self) -> Vec<BlockKind> {
            self.t
                .blocks()
                .iter()
                .filter(|b| !b.borrow().discarded)
                .map(|b| b.borrow().kind.clone())
                .collect()
        }
    }

    #[test]
    fn deltas_join_into_one_text_and_the_whole_block_is_not_shown_twice() {
        let mut f = Feed::new();
        for tok in ["Hel", "lo", " world"] {
            f.delta("m1", 0, tok);
        }
        f.whole("m1", "Hello world");
        assert_eq!(f.t.visible_text(), "Hello world");
        assert_eq!(f.t.blocks().len(), 1);
        let b = f.t.blocks()[0].borrow();
        assert_eq!((b.first_sequence, b.last_sequence, b.messages), (1, 4, 4));
    }

    #[test]
    fn a_whole_block_without_deltas_is_shown() {
        let mut f = Feed::new();
        f.push(MessageType::Assistant, "API Error: 500", json!({"eventType": "assistant_message", "messageId": "x", "blockType": "text", "synthetic": true}));
        assert_eq!(f.t.visible_text(), "API Error: 500");
    }

    #[test]
    fn an_abandoned_attempt_is_replaced_by_the_resent_answer() {
        let mut f = Feed::new();
        f.delta("m1", 0, "partial ans");
        f.push(
            MessageType::System,
            "",
            json!({"eventType": "abandoned_blocks", "messageId": "m1", "fromBlockIndex": 0}),
        );
        f.whole("m2", "the full answer");
        assert_eq!(f.t.visible_text(), "the full answer");
    }

    #[test]
    fn a_retry_voids_what_streamed_of_the_answers_it_abandons() {
        let mut f = Feed::new();
        f.delta("m1", 0, "partial ans");
        f.push(
            MessageType::System,
            "Reconnecting... 1/5",
            json!({"eventType": "system", "subtype": "api_retry", "abandonedMessageIds": ["m1"]}),
        );
        f.delta("m2", 0, "the full answer");
        assert_eq!(f.t.visible_text(), "the full answer");
    }

    #[test]
    fn a_codex_result_shows_its_tokens_and_an_interrupted_turn() {
        let mut f = Feed::new();
        f.push(
            MessageType::Result,
            "",
            json!({"eventType": "result", "subtype": "interrupted", "isError": true,
                   "usage": {"total": {"outputTokens": 7}, "last": {"outputTokens": 2}}}),
        );
        let kinds: Vec<BlockKind> =
            f.t.blocks()
                .iter()
                .map(|b| b.borrow().kind.clone())
                .collect();
        assert!(
            matches!(
                kinds[0],
                BlockKind::Result {
                    interrupted: true,
                    output_tokens: Some(7),
                    ..
                }
            ),
            "{kinds:?}"
        );
    }

    #[test]
    fn tool_calls_become_cards_with_input_and_result() {
        let mut f = Feed::new();
        f.delta("m1", 0, "Running it.");
        f.push(
            MessageType::Tool,
            "Bash",
            json!({"eventType": "tool_use", "messageId": "m1", "blockIndex": 1, "toolUseId": "t1"}),
        );
        for part in ["{\"comm", "and\": \"echo hi\"}"] {
            f.push(
                MessageType::Tool,
                part,
                json!({"eventType": "tool_input_delta", "messageId": "m1", "blockIndex": 1}),
            );
        }
        f.whole("m1", "Running it.");
        f.push(MessageType::Assistant, "{\"command\":\"echo hi\"}", json!({"eventType": "assistant_message", "messageId": "m1", "blockType": "tool_use", "toolUseId": "t1"}));
        f.push(
            MessageType::Tool,
            "hi",
            json!({"eventType": "tool_result", "toolUseId": "t1", "isError": false}),
        );
        f.delta("m2", 0, "Done.");
        let kinds = f.kinds();
        assert_eq!(kinds.len(), 3);
        assert_eq!(
            kinds[0],
            BlockKind::Text {
                text: "Running it.".into(),
                reconciled: true
            }
        );
        assert_eq!(
            kinds[1],
            BlockKind::Tool {
                name: "Bash".into(),
                input: "{\"command\":\"echo hi\"}".into(),
                result: Some("hi".into()),
                is_error: false
            }
        );
        assert_eq!(
            kinds[2],
            BlockKind::Text {
                text: "Done.".into(),
                reconciled: false
            }
        );
    }

    #[test]
    fn a_call_reported_whole_is_a_card_with_its_input() {
        let mut f = Feed::new();
        f.push(
            MessageType::Assistant,
            "I'll run it.",
            json!({"eventType": "content_delta"}),
        );
        f.push(
            MessageType::Tool,
            "run_shell_command",
            json!({"eventType": "tool_use", "toolUseId": "g1", "input": {"command": "echo hi"}}),
        );
        f.push(
            MessageType::Tool,
            "hi",
            json!({"eventType": "tool_result", "toolUseId": "g1", "isError": false}),
        );
        f.push(
            MessageType::Assistant,
            "Done.",
            json!({"eventType": "content_delta"}),
        );
        let kinds = f.kinds();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert_eq!(
            kinds[1],
            BlockKind::Tool {
                name: "run_shell_command".into(),
                input: "{\"command\":\"echo hi\"}".into(),
                result: Some("hi".into()),
                is_error: false
            }
        );
        assert_eq!(
            kinds[2],
            BlockKind::Text {
                text: "Done.".into(),
                reconciled: false
            }
        );
    }

    #[test]
    fn quiet_lines_results_and_versions() {
        let mut f = Feed::new();
        f.push(
            MessageType::System,
            "session started with model m",
            json!({"eventType": "system", "subtype": "init"}),
        );
        f.push(
            MessageType::System,
            "",
            json!({"eventType": "message_delta", "usage": {"output_tokens": 3}}),
        );
        let before = f.t.version();
        f.delta("m1", 0, "a");
        assert!(f.t.version() > before);
        f.push(MessageType::Result, "a", json!({"eventType": "result", "isError": false, "totalCostUsd": 0.5, "durationMs": 10, "usage": {"output_tokens": 3}}));
        f.push(
            MessageType::Error,
            "not JSON",
            json!({"eventType": "parse_error"}),
        );
        let kinds = f.kinds();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert!(
            matches!(kinds[2], BlockKind::Result { cost_usd: Some(c), output_tokens: Some(3), .. } if c == 0.5)
        );
        assert!(matches!(
            kinds[2],
            BlockKind::Result {
                interrupted: false,
                ..
            }
        ));
        f.push(
            MessageType::Result,
            "",
            json!({"eventType": "result", "isError": true, "terminalReason": "aborted_streaming"}),
        );
        assert!(matches!(
            f.kinds()[4],
            BlockKind::Result {
                interrupted: true,
                is_error: true,
                ..
            }
        ));
        assert_eq!(f.t.usage, Some(json!({"output_tokens": 3})));
    }

    #[test]
    fn twenty_thousand_tokens_stay_one_block_updated_in_place() {
        let mut f = Feed::new();
        for i in 0..20_000 {
            f.delta("m1", 0, if i % 2 == 0 { "a" } else { "b" });
        }
        assert_eq!(f.t.blocks().len(), 1);
        assert_eq!(f.t.visible_text().len(), 20_000);
    }
}
