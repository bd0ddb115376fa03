//! The stdout of OpenAI's Codex CLI `codex app-server` (as 0.169.x prints it): JSON-RPC 2.0 without the
//! `"jsonrpc"` key, one object per line. It is told apart by its keys, never by their order: a
//! notification has `method` only, a request of the server (an approval) has `method` and `id`, and an
//! answer to one of the runner's requests has `id` with `result` or `error`. Each line is mapped onto the
//! same messages as Claude Code's, so that clients show text, thinking, tool cards and the result alike:
//!
//! | line | stored as | `eventType` |
//! |---|---|---|
//! | `thread/started`, or the answer to `thread/start` / `thread/resume` (`result.thread`), whichever comes first (a resumed thread gets no `thread/started`); its session is kept on the agent | `system`; a later line of the same thread is not stored, one of another thread is `subtype` `thread_started` without a session | `system` (`subtype` `init`) |
//! | `item/agentMessage/delta` | `assistant`, the chunk; `messageId`: the item | `content_delta` |
//! | `item/reasoning/summaryTextDelta`, `item/reasoning/textDelta` | `assistant`, the chunk (`\n\n` before the first chunk of each further part of the item, so that the chunks join into the whole block) | `thinking_delta` |
//! | `item/completed` `agentMessage` | `assistant`, the whole text after its chunks (`blockType` `text`) | `assistant_message` |
//! | `item/completed` `reasoning` | `assistant`, its summary then its content parts, joined by `\n\n` (`blockType` `thinking`); not stored when empty | `assistant_message` |
//! | `item/completed` `userMessage` | `user`, its text parts | `user_message` |
//! | `item/started` `commandExecution` | `tool`, `exec_command`; `input`: `{command, cwd}`; `toolUseId`: the item | `tool_use` |
//! | `item/started` `fileChange` / `mcpToolCall` / `dynamicToolCall` / `webSearch` / `imageView` / any item with a `status` | `tool`: `apply_patch` (`input` `{changes}`) / `server/tool` (`input`: its arguments) / its tool / `web_search` (`{query}`) / `view_image` (`{path}`) / its `tool` or type | `tool_use` |
//! | `item/completed` of those | `tool`, the output (`aggregatedOutput`, the changes' diffs, the result) or the error; `isError`: failed, declined, an error or a non-zero `exitCode` | `tool_result` |
//! | `item/started` `agentMessage`, `reasoning`, `userMessage` | not stored (their content comes as chunks, then completed) | |
//! | a server request `*requestApproval` | `tool`, the tool's name; `requestId`: `params.approvalId` or else `params.itemId` (unique in the thread, where JSON-RPC ids restart in every process); `rpcId`: the JSON-RPC id the answer must carry; `input`: `{command, cwd, reason}` or `{changes, reason}` (the changes of the item's `item/started`) or the params | `permission_request` |
//! | any other server request, or an approval without a usable id | `system`, the line itself | `unknown` |
//! | `turn/completed` | `result`: the error when it failed (`turn.error`, or else the run's last `error`), else the final answer in `turn.items`; `usage`: the last `thread/tokenUsage/updated` | `result` |
//! | `error` | `system`, the message; a retry (`willRetry`) lists the answers it abandons in `abandonedMessageIds` | `system` (`subtype` `api_retry` when `willRetry`, else `error`) |
//! | `thread/tokenUsage/updated` | `system`; `usage`: `params.tokenUsage` | `message_delta` |
//! | `warning`, `configWarning`, `deprecationNotice` | `system`, its summary or message | `system` (`subtype`: the method) |
//! | an error answer to a request of the runner (`{"id":N,"error":{…}}`) | `system`, its message | `system` (`subtype` `error`) |
//! | other answers (`{"id":N,"result":…}`), `thread/status/changed`, `account/rateLimits/updated`, `remoteControl/status/changed`, `thread/goal/cleared`, `serverRequest/resolved`, `item/commandExecution/outputDelta` (the completed item carries the whole output), `item/reasoning/summaryPartAdded`, `turn/started` | not stored | |
//! | any other line, JSON or not (a warning printed on stdout, a line of `codex exec --json`) | `system`, the line itself | `unknown` |
//!
//! One process runs many turns, each ended by its `turn/completed` (`completed`, `failed` or
//! `interrupted`): that line is the run's `result`. A failed turn whose `turn.error` is missing fails
//! with the run's last `error` (or error answer), so a run's lines go through one [`CodexLines`], which
//! remembers it until the turn ends, and the last token usage.

use std::collections::HashMap;

use agentstream_wire::{keys, EventType};
use serde_json::{json, Map, Value};

use super::claude::is_plain_id;
use super::{message, ParsedMessage, RunOutcome, SessionInfo};

/// Notifications that are deliberately not stored.
const NOISE: &[&str] = &[
    "thread/status/changed",
    "account/rateLimits/updated",
    "remoteControl/status/changed",
    "thread/goal/cleared",
    "serverRequest/resolved",
    "item/commandExecution/outputDelta",
    "item/reasoning/summaryPartAdded",
    "turn/started",
];

/// The longest request id a client can answer (`POST /api/agents/{id}/permissions/{requestId}`).
const MAX_REQUEST_ID_BYTES: usize = 200;

/// The parser of one run's lines (one `codex app-server` process).
#[derive(Debug, Default)]
pub struct CodexLines {
    /// The message of the turn's last `error` that was not retried (or of an error answer).
    last_error: Option<String>,
    /// The last `thread/tokenUsage/updated` of the run.
    usage: Option<Value>,
    /// The thread whose session was stored.
    thread_id: Option<String>,
    /// Answers started and not completed (a retry abandons them).
    open_messages: Vec<String>,
    /// The changes of file changes started and not completed (their approvals do not repeat them).
    file_changes: HashMap<String, Value>,
    /// The reasoning item and part the last thinking chunk belonged to.
    thinking_part: Option<(String, String)>,
}

impl CodexLines {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one line (without its newline). `None`: an empty line, or one the table above does not
    /// store.
    pub fn parse_line(&mut self, line: &str) -> Option<ParsedMessage> {
        if line.trim().is_empty() {
            return None;
        }
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line) else {
            return Some(unknown(line));
        };
        let empty = Map::new();
        let params = obj
            .get("params")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        match (obj.get("method"), obj.get("id")) {
            (Some(Value::String(method)), Some(id)) => {
                Some(self.server_request(method, id, params, line))
            }
            (Some(Value::String(method)), None) => self.notification(method, params, line),
            (None, Some(id)) => self.answer(id, &obj, line),
            _ => Some(unknown(line)),
        }
    }

    fn notification(
        &mut self,
        method: &str,
        p: &Map<String, Value>,
        line: &str,
    ) -> Option<ParsedMessage> {
        if NOISE.contains(&method) {
            return None;
        }
        match method {
            "thread/started" => match p.get("thread").and_then(Value::as_object) {
                Some(thread) => self.thread(thread, None, line),
                None => Some(unknown(line)),
            },
            "item/agentMessage/delta" => Some(match str_of(p.get("delta")) {
                Some(delta) => {
                    let meta = json!({
                        (keys::EVENT_TYPE): EventType::ContentDelta,
                        (keys::MESSAGE_ID): p.get("itemId"),
                    });
                    message(EventType::ContentDelta, delta.to_owned(), line, meta)
                }
                None => unknown(line),
            }),
            "item/reasoning/summaryTextDelta" => {
                Some(self.thinking_delta(p, "summary", "summaryIndex", line))
            }
            "item/reasoning/textDelta" => {
                Some(self.thinking_delta(p, "content", "contentIndex", line))
            }
            "item/started" => match p.get("item").and_then(Value::as_object) {
                Some(item) => self.item_started(item, line),
                None => Some(unknown(line)),
            },
            "item/completed" => match p.get("item").and_then(Value::as_object) {
                Some(item) => self.item_completed(item, line),
                None => Some(unknown(line)),
            },
            "turn/completed" => Some(match p.get("turn").and_then(Value::as_object) {
                Some(turn) => self.turn_completed(turn, line),
                None => unknown(line),
            }),
            "error" => Some(self.error(p, line)),
            "thread/tokenUsage/updated" => {
                let usage = p.get("tokenUsage").cloned().unwrap_or(Value::Null);
                if !usage.is_null() {
                    self.usage = Some(usage.clone());
                }
                let meta = json!({
                    (keys::EVENT_TYPE): EventType::MessageDelta,
                    (keys::USAGE): usage,
                });
                Some(message(EventType::MessageDelta, String::new(), line, meta))
            }
            "warning" | "configWarning" | "deprecationNotice" => {
                let said = str_of(p.get("summary"))
                    .or_else(|| str_of(p.get("message")))
                    .unwrap_or_default();
                let meta = json!({
                    (keys::EVENT_TYPE): EventType::System,
                    (keys::SUBTYPE): method,
                    "details": p.get("details"),
                });
                Some(message(EventType::System, said.to_owned(), line, meta))
            }
            _ => Some(unknown(line)),
        }
    }

    /// The session of the thread a line announces: stored once per thread.
    fn thread(
        &mut self,
        thread: &Map<String, Value>,
        model: Option<&Value>,
        line: &str,
    ) -> Option<ParsedMessage> {
        let Some(id) = str_of(thread.get("id")) else {
            return Some(unknown(line));
        };
        let model = str_of(thread.get("model")).or_else(|| str_of(model));
        match &self.thread_id {
            Some(known) if known == id => None,
            // A thread of its own (a sub-agent's, a detached review's): not the session to resume.
            Some(_) => {
                let meta = json!({
                    (keys::EVENT_TYPE): EventType::System,
                    (keys::SUBTYPE): "thread_started",
                    (keys::SESSION_ID): id,
                    (keys::MODEL): model,
                });
                Some(message(
                    EventType::System,
                    format!("thread {id} started"),
                    line,
                    meta,
                ))
            }
            None => {
                self.thread_id = Some(id.to_owned());
                let meta = json!({
                    (keys::EVENT_TYPE): EventType::System,
                    (keys::SUBTYPE): "init",
                    (keys::SESSION_ID): id,
                    (keys::MODEL): model,
                    "cwd": thread.get("cwd"),
                });
                let content = match model {
                    Some(model) => format!("session started with model {model}"),
                    None => "session started".to_owned(),
                };
                Some(ParsedMessage {
                    session: Some(SessionInfo {
                        session_id: id.to_owned(),
                        model: model.map(str::to_owned),
                    }),
                    ..message(EventType::System, content, line, meta)
                })
            }
        }
    }

    /// A chunk of reasoning. The first chunk of each further part of an item starts with a blank line,
    /// as the parts are joined in the item's whole block.
    fn thinking_delta(
        &mut self,
        p: &Map<String, Value>,
        kind: &str,
        index_key: &str,
        line: &str,
    ) -> ParsedMessage {
        let Some(delta) = str_of(p.get("delta")) else {
            return unknown(line);
        };
        let item = str_of(p.get("itemId")).unwrap_or_default().to_owned();
        let part = format!(
            "{kind} {}",
            p.get(index_key).map(Value::to_string).unwrap_or_default()
        );
        let content = match &self.thinking_part {
            Some((last_item, last_part)) if *last_item == item && *last_part != part => {
                format!("\n\n{delta}")
            }
            _ => delta.to_owned(),
        };
        self.thinking_part = Some((item, part));
        let meta = json!({
            (keys::EVENT_TYPE): EventType::ThinkingDelta,
            (keys::MESSAGE_ID): p.get("itemId"),
        });
        message(EventType::ThinkingDelta, content, line, meta)
    }

    fn item_started(&mut self, item: &Map<String, Value>, line: &str) -> Option<ParsedMessage> {
        let id = str_of(item.get("id"));
        match str_of(item.get("type")) {
            Some("agentMessage") => {
                if let Some(id) = id {
                    self.open_messages.push(id.to_owned());
                }
                None
            }
            Some("reasoning" | "userMessage") => None,
            _ => {
                let Some(name) = tool_name(item) else {
                    return Some(unknown(line));
                };
                let input = tool_input(item);
                if let (Some(id), Some("fileChange")) = (id, str_of(item.get("type"))) {
                    let changes = item.get("changes").cloned().unwrap_or(Value::Null);
                    self.file_changes.insert(id.to_owned(), changes);
                }
                let meta = json!({
                    (keys::EVENT_TYPE): EventType::ToolUse,
                    (keys::TOOL_NAME): name,
                    (keys::TOOL_USE_ID): item.get("id"),
                    (keys::INPUT): input,
                });
                Some(message(EventType::ToolUse, name, line, meta))
            }
        }
    }

    fn item_completed(&mut self, item: &Map<String, Value>, line: &str) -> Option<ParsedMessage> {
        let id = item.get("id");
        match str_of(item.get("type")) {
            Some("agentMessage") => {
                self.open_messages
                    .retain(|open| Some(open.as_str()) != str_of(id));
                let text = str_of(item.get("text")).unwrap_or_default().to_owned();
                Some(assistant_block(text, "text", id, line))
            }
            Some("reasoning") => {
                let text = [item.get("summary"), item.get("content")]
                    .into_iter()
                    .flat_map(strings)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n\n");
                (!text.is_empty()).then(|| assistant_block(text, "thinking", id, line))
            }
            Some("userMessage") => {
                let text = item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|part| str_of(part.get("type")) == Some("text"))
                    .filter_map(|part| str_of(part.get("text")))
                    .collect::<Vec<_>>()
                    .join("\n");
                let meta = json!({
                    (keys::EVENT_TYPE): EventType::UserMessage,
                    (keys::MESSAGE_ID): id,
                });
                Some(ParsedMessage {
                    role: Some("user".to_owned()),
                    ..message(EventType::UserMessage, text, line, meta)
                })
            }
            _ => {
                let Some(name) = tool_name(item) else {
                    return Some(unknown(line));
                };
                if let Some(id) = str_of(id) {
                    self.file_changes.remove(id);
                }
                Some(tool_result(item, name, line))
            }
        }
    }

    fn turn_completed(&mut self, turn: &Map<String, Value>, line: &str) -> ParsedMessage {
        let status = str_of(turn.get("status")).unwrap_or("unknown");
        let is_error = status != "completed";
        let last_error = self.last_error.take();
        self.open_messages.clear();
        self.thinking_part = None;
        let error = turn.get("error").filter(|e| !e.is_null());
        let error_message = error
            .and_then(error_text)
            .or_else(|| is_error.then_some(last_error).flatten());
        let answer = turn
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .rfind(|i| str_of(i.get("type")) == Some("agentMessage"))
            .and_then(|i| str_of(i.get("text")))
            .map(str::to_owned);
        let result = if is_error {
            error_message
        } else {
            answer.clone().filter(|a| !a.is_empty())
        };
        let duration_ms = turn.get("durationMs").and_then(Value::as_i64);
        let outcome = RunOutcome {
            is_error,
            subtype: Some(status.to_owned()),
            result: result.clone(),
            total_cost_usd: None,
            num_turns: None,
            usage: self.usage.clone(),
            duration_ms,
            reported: Some(crate::usage::cli::codex(self.usage.as_ref(), duration_ms)),
        };
        let meta = json!({
            (keys::EVENT_TYPE): EventType::Result,
            (keys::SUBTYPE): status,
            (keys::IS_ERROR): is_error,
            (keys::DURATION_MS): outcome.duration_ms,
            (keys::USAGE): outcome.usage,
            "turnId": turn.get("id"),
            "codexErrorInfo": error.and_then(|e| e.get("codexErrorInfo")),
        });
        let content = result.or(answer).unwrap_or_default();
        ParsedMessage {
            outcome: Some(outcome),
            ..message(EventType::Result, content, line, meta)
        }
    }

    fn error(&mut self, p: &Map<String, Value>, line: &str) -> ParsedMessage {
        let error = p.get("error");
        let said = error.and_then(error_text).unwrap_or_default();
        let will_retry = p.get("willRetry").and_then(Value::as_bool) == Some(true);
        let mut meta = json!({
            (keys::EVENT_TYPE): EventType::System,
            (keys::SUBTYPE): if will_retry { "api_retry" } else { "error" },
            "willRetry": will_retry,
            "codexErrorInfo": error.and_then(|e| e.get("codexErrorInfo")),
            "additionalDetails": error.and_then(|e| e.get("additionalDetails")),
        });
        if will_retry {
            // The retry starts its answer afresh, under a new item: what streamed of these is void.
            if !self.open_messages.is_empty() {
                meta["abandonedMessageIds"] = json!(std::mem::take(&mut self.open_messages));
            }
        } else {
            self.last_error = Some(said.clone());
        }
        message(EventType::System, said, line, meta)
    }

    /// An answer to a request of the runner: only an error is stored, and the session of a thread.
    fn answer(
        &mut self,
        id: &Value,
        obj: &Map<String, Value>,
        line: &str,
    ) -> Option<ParsedMessage> {
        if let Some(error) = obj.get("error") {
            let said = error_text(error).unwrap_or_default();
            self.last_error = Some(said.clone());
            let meta = json!({
                (keys::EVENT_TYPE): EventType::System,
                (keys::SUBTYPE): "error",
                "rpcId": id,
                "code": error.get("code"),
            });
            return Some(message(EventType::System, said, line, meta));
        }
        let Some(result) = obj.get("result") else {
            return Some(unknown(line));
        };
        match result.get("thread").and_then(Value::as_object) {
            Some(thread) => self.thread(thread, result.get("model"), line),
            None => None,
        }
    }

    /// A request of the server: an approval becomes a permission request, anything else is kept whole.
    fn server_request(
        &mut self,
        method: &str,
        rpc_id: &Value,
        p: &Map<String, Value>,
        line: &str,
    ) -> ParsedMessage {
        if !method.ends_with("requestApproval") {
            return unknown(line);
        }
        let request_id = str_of(p.get("approvalId"))
            .or_else(|| str_of(p.get("itemId")))
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_BYTES && is_plain_id(id));
        let Some(request_id) = request_id else {
            return unknown(line);
        };
        let (tool, input) = match method {
            "item/commandExecution/requestApproval" => (
                "exec_command".to_owned(),
                json!({"command": p.get("command"), "cwd": p.get("cwd"), "reason": p.get("reason")}),
            ),
            "item/fileChange/requestApproval" => {
                let changes = p.get("changes").cloned().or_else(|| {
                    str_of(p.get("itemId")).and_then(|id| self.file_changes.get(id).cloned())
                });
                (
                    "apply_patch".to_owned(),
                    json!({"changes": changes, "reason": p.get("reason")}),
                )
            }
            // `item/permissions/requestApproval` → `permissions`.
            _ => (
                method
                    .rsplit('/')
                    .nth(1)
                    .filter(|s| !s.is_empty())
                    .unwrap_or(method)
                    .to_owned(),
                Value::Object(p.clone()),
            ),
        };
        let mut meta = json!({
            (keys::EVENT_TYPE): EventType::PermissionRequest,
            (keys::REQUEST_ID): request_id,
            (keys::TOOL_NAME): tool,
            (keys::INPUT): input,
            "rpcId": rpc_id,
            "method": method,
        });
        for (from, to) in [
            ("itemId", keys::TOOL_USE_ID),
            ("reason", "reason"),
            ("availableDecisions", "availableDecisions"),
        ] {
            if let Some(v) = p.get(from).filter(|v| !v.is_null()) {
                meta[to] = v.clone();
            }
        }
        message(EventType::PermissionRequest, tool, line, meta)
    }
}

impl super::LineParser for CodexLines {
    fn parse_line(&mut self, line: &str) -> Option<ParsedMessage> {
        CodexLines::parse_line(self, line)
    }
}

/// The tool name of an item that is a tool call; `None` for any other item.
fn tool_name(item: &Map<String, Value>) -> Option<String> {
    let tool = str_of(item.get("tool")).filter(|t| !t.is_empty());
    Some(match str_of(item.get("type"))? {
        "commandExecution" => "exec_command".to_owned(),
        "fileChange" => "apply_patch".to_owned(),
        "mcpToolCall" => match (str_of(item.get("server")), tool) {
            (Some(server), Some(tool)) => format!("{server}/{tool}"),
            (None, Some(tool)) => tool.to_owned(),
            (Some(server), None) => server.to_owned(),
            (None, None) => "mcp".to_owned(),
        },
        "webSearch" => "web_search".to_owned(),
        "imageView" => "view_image".to_owned(),
        // Tool calls of other kinds (`dynamicToolCall`, `collabAgentToolCall`, …): what has a status.
        kind if kind == "dynamicToolCall" || item.get("status").is_some_and(Value::is_string) => {
            tool.unwrap_or(kind).to_owned()
        }
        _ => return None,
    })
}

/// The input of a tool call, as `item/started` gives it.
fn tool_input(item: &Map<String, Value>) -> Value {
    match str_of(item.get("type")) {
        Some("commandExecution") => {
            json!({"command": item.get("command"), "cwd": item.get("cwd")})
        }
        Some("fileChange") => json!({"changes": item.get("changes")}),
        Some("webSearch") => json!({"query": item.get("query")}),
        Some("imageView") => json!({"path": item.get("path")}),
        _ => match item.get("arguments") {
            Some(a) if !a.is_null() => a.clone(),
            // An MCP call without arguments has none; another kind shows itself whole.
            _ if str_of(item.get("type")) == Some("mcpToolCall") => json!({}),
            _ => Value::Object(item.clone()),
        },
    }
}

/// What a completed tool call gives.
fn tool_result(item: &Map<String, Value>, name: String, line: &str) -> ParsedMessage {
    let status = str_of(item.get("status"));
    let error = item
        .get("error")
        .filter(|e| !e.is_null())
        .and_then(error_text);
    let exit_code = item.get("exitCode").and_then(Value::as_i64);
    let is_error = matches!(status, Some("failed" | "declined"))
        || exit_code.is_some_and(|c| c != 0)
        || error.is_some();
    let output = match str_of(item.get("type")) {
        Some("commandExecution") => str_of(item.get("aggregatedOutput")).map(str::to_owned),
        Some("fileChange") => Some(
            item.get("changes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let path = str_of(c.get("path")).unwrap_or_default();
                    match str_of(c.get("diff")).filter(|d| !d.is_empty()) {
                        Some(diff) => format!("{path}\n{diff}"),
                        None => path.to_owned(),
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Some("webSearch") => str_of(item.get("query")).map(str::to_owned),
        Some("imageView") => str_of(item.get("path")).map(str::to_owned),
        _ => item
            .get("result")
            .or_else(|| item.get("contentItems"))
            .filter(|r| !r.is_null())
            .map(result_text),
    }
    .filter(|o| !o.is_empty());
    let content = match (output, error) {
        (Some(output), _) => output,
        (None, Some(error)) => error,
        (None, None) if status == Some("declined") => format!("{name} was declined"),
        (None, None) => String::new(),
    };
    let meta = json!({
        (keys::EVENT_TYPE): EventType::ToolResult,
        (keys::TOOL_USE_ID): item.get("id"),
        (keys::TOOL_NAME): name,
        (keys::IS_ERROR): is_error,
        "status": status,
        "exitCode": exit_code,
        (keys::DURATION_MS): item.get("durationMs").and_then(Value::as_i64),
    });
    message(EventType::ToolResult, content, line, meta)
}

/// A whole block of the answer (text or thinking), after its chunks.
fn assistant_block(
    text: String,
    block_type: &str,
    id: Option<&Value>,
    line: &str,
) -> ParsedMessage {
    let meta = json!({
        (keys::EVENT_TYPE): EventType::AssistantMessage,
        (keys::MESSAGE_ID): id,
        (keys::BLOCK_TYPE): block_type,
    });
    ParsedMessage {
        role: Some("assistant".to_owned()),
        ..message(EventType::AssistantMessage, text, line, meta)
    }
}

/// The text of a tool's result: its text parts (`content` of an MCP result, `contentItems`), else the
/// JSON itself.
fn result_text(result: &Value) -> String {
    if let Some(s) = result.as_str() {
        return s.to_owned();
    }
    let parts = result
        .get("content")
        .and_then(Value::as_array)
        .or_else(|| result.as_array());
    let texts: Vec<&str> = parts
        .into_iter()
        .flatten()
        .filter_map(|p| str_of(p.get("text")))
        .collect();
    if texts.is_empty() {
        result.to_string()
    } else {
        texts.join("\n")
    }
}

/// An error's message: `{message}` or a string.
fn error_text(error: &Value) -> Option<String> {
    match error {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(
            str_of(other.get("message"))
                .map(str::to_owned)
                .unwrap_or_else(|| other.to_string()),
        ),
    }
}

/// The strings of a list (`summary`, `content` of a reasoning item).
fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// A line of no known shape, kept whole (as its content too: it may be a warning meant for a human).
fn unknown(line: &str) -> ParsedMessage {
    message(
        EventType::Unknown,
        line.to_owned(),
        line,
        json!({(keys::EVENT_TYPE): EventType::Unknown}),
    )
}

fn str_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use agentstream_wire::MessageType;

    use super::*;
    use crate::parser::LineParser;

    /// Parses lines in order, holding every stored message to the invariants of all parsers.
    fn run(parser: &mut CodexLines, lines: &[&str]) -> Vec<Option<ParsedMessage>> {
        lines
            .iter()
            .map(|line| {
                let m = parser.parse_line(line);
                if let Some(m) = &m {
                    assert_eq!(m.raw, *line);
                    let event = EventType::of(&m.metadata).expect("an event type");
                    assert_eq!(m.message_type, event.message_type(), "{line}");
                    assert!(super::super::event_types(m.message_type).contains(&event.as_str()));
                }
                m
            })
            .collect()
    }

    fn one(line: &str) -> Option<ParsedMessage> {
        run(&mut CodexLines::new(), &[line]).remove(0)
    }

    fn event(m: &ParsedMessage) -> EventType {
        EventType::of(&m.metadata).unwrap()
    }

    const THREAD: &str = r#"{"method":"thread/started","params":{"thread":{"id":"th-1","sessionId":"th-1","model":"gpt-5.5","cwd":"/w","status":{"type":"idle"},"turns":[]}},"emittedAtMs":1}"#;
    const THREAD_ANSWER: &str = r#"{"id":2,"result":{"thread":{"id":"th-1","model":null,"cwd":"/w"},"model":"gpt-5.5","approvalPolicy":"never"}}"#;
    const CMD_STARTED: &str = r#"{"method":"item/started","params":{"item":{"type":"commandExecution","id":"call_1","command":"/bin/bash -lc 'ls /nope'","cwd":"/w","processId":null,"status":"inProgress","commandActions":[],"aggregatedOutput":null,"exitCode":null,"durationMs":null},"threadId":"th-1","turnId":"tu-1"}}"#;
    const CMD_FAILED: &str = r#"{"method":"item/completed","params":{"item":{"type":"commandExecution","id":"call_1","command":"/bin/bash -lc 'ls /nope'","cwd":"/w","status":"failed","aggregatedOutput":"ls: cannot access '/nope'\n","exitCode":2,"durationMs":3},"threadId":"th-1","turnId":"tu-1"}}"#;
    const USAGE: &str = r#"{"method":"thread/tokenUsage/updated","params":{"threadId":"th-1","turnId":"tu-1","tokenUsage":{"total":{"totalTokens":9526,"outputTokens":7},"last":{"totalTokens":9526,"outputTokens":7},"modelContextWindow":258400}}}"#;

    #[test]
    fn thread_started_is_the_init_with_the_session() {
        let m = one(THREAD).unwrap();
        assert_eq!(
            (m.message_type, event(&m)),
            (MessageType::System, EventType::System)
        );
        assert_eq!(m.metadata[keys::SUBTYPE], "init");
        assert_eq!(m.metadata[keys::SESSION_ID], "th-1");
        assert_eq!(m.metadata[keys::MODEL], "gpt-5.5");
        assert_eq!(
            m.session,
            Some(SessionInfo {
                session_id: "th-1".into(),
                model: Some("gpt-5.5".into())
            })
        );
        assert_eq!(m.content, "session started with model gpt-5.5");
    }

    #[test]
    fn the_answer_to_thread_start_or_resume_announces_the_session_once() {
        // thread/start: the answer comes first, then thread/started of the same thread.
        let out = run(&mut CodexLines::new(), &[THREAD_ANSWER, THREAD]);
        let init = out[0].as_ref().expect("the answer carries the session");
        // The model of the answer's top level, when the thread has none.
        assert_eq!(
            init.session.as_ref().unwrap().model.as_deref(),
            Some("gpt-5.5")
        );
        assert!(out[1].is_none(), "the same thread is not announced twice");
        // thread/resume: only the answer (no thread/started follows).
        let resumed = one(THREAD_ANSWER).unwrap();
        assert_eq!(resumed.session.unwrap().session_id, "th-1");
        // Another thread of the same process is not the session.
        let other = THREAD.replace("th-1", "th-2");
        let out = run(&mut CodexLines::new(), &[THREAD, &other]);
        let second = out[1].as_ref().unwrap();
        assert_eq!(second.metadata[keys::SUBTYPE], "thread_started");
        assert!(second.session.is_none());
        // Other answers are not stored.
        assert!(one(
            r#"{"id":3,"result":{"turn":{"id":"tu-1","items":[],"status":"inProgress"}}}"#
        )
        .is_none());
        assert!(one(r#"{"id":4,"result":{}}"#).is_none());
    }

    #[test]
    fn answer_chunks_are_content_deltas_and_the_whole_answer_follows() {
        let mut p = CodexLines::new();
        let out = run(
            &mut p,
            &[
                r#"{"method":"item/started","params":{"item":{"type":"agentMessage","id":"msg_1","text":"","phase":null},"threadId":"th-1","turnId":"tu-1"}}"#,
                r#"{"method":"item/agentMessage/delta","params":{"threadId":"th-1","turnId":"tu-1","itemId":"msg_1","delta":"Hello"},"emittedAtMs":1}"#,
                r#"{"method":"item/agentMessage/delta","params":{"threadId":"th-1","turnId":"tu-1","itemId":"msg_1","delta":" world"}}"#,
                r#"{"method":"item/completed","params":{"item":{"type":"agentMessage","id":"msg_1","text":"Hello world"},"threadId":"th-1","turnId":"tu-1"}}"#,
            ],
        );
        assert!(out[0].is_none(), "item/started of an answer");
        let delta = out[1].as_ref().unwrap();
        assert_eq!(
            (delta.message_type, event(delta), delta.content.as_str()),
            (MessageType::Assistant, EventType::ContentDelta, "Hello")
        );
        assert_eq!(delta.metadata[keys::MESSAGE_ID], "msg_1");
        let whole = out[3].as_ref().unwrap();
        assert_eq!(event(whole), EventType::AssistantMessage);
        assert_eq!(whole.content, "Hello world");
        assert_eq!(whole.metadata[keys::BLOCK_TYPE], "text");
        assert_eq!(whole.metadata[keys::MESSAGE_ID], "msg_1");
        assert_eq!(whole.role.as_deref(), Some("assistant"));
    }

    #[test]
    fn reasoning_chunks_are_thinking_deltas_that_join_into_the_thinking_block() {
        let mut p = CodexLines::new();
        let out = run(
            &mut p,
            &[
                r#"{"method":"item/started","params":{"item":{"type":"reasoning","id":"rs_1","summary":[],"content":[]},"threadId":"th-1","turnId":"tu-1"}}"#,
                r#"{"method":"item/reasoning/summaryPartAdded","params":{"itemId":"rs_1","summaryIndex":0}}"#,
                r#"{"method":"item/reasoning/summaryTextDelta","params":{"itemId":"rs_1","delta":"**Plan** ","summaryIndex":0}}"#,
                r#"{"method":"item/reasoning/summaryTextDelta","params":{"itemId":"rs_1","delta":"say hi","summaryIndex":0}}"#,
                r#"{"method":"item/reasoning/textDelta","params":{"itemId":"rs_1","delta":"raw","contentIndex":0}}"#,
                r#"{"method":"item/completed","params":{"item":{"type":"reasoning","id":"rs_1","summary":["**Plan** say hi"],"content":["raw"]},"threadId":"th-1","turnId":"tu-1"}}"#,
                r#"{"method":"item/completed","params":{"item":{"type":"reasoning","id":"rs_2","summary":[],"content":[]},"threadId":"th-1","turnId":"tu-1"}}"#,
            ],
        );
        assert!(out[0].is_none() && out[1].is_none());
        let deltas: Vec<&ParsedMessage> = out[2..5].iter().map(|m| m.as_ref().unwrap()).collect();
        assert!(deltas.iter().all(
            |d| event(d) == EventType::ThinkingDelta && d.metadata[keys::MESSAGE_ID] == "rs_1"
        ));
        let joined: String = deltas.iter().map(|d| d.content.as_str()).collect();
        let whole = out[5].as_ref().unwrap();
        assert_eq!(event(whole), EventType::AssistantMessage);
        assert_eq!(whole.metadata[keys::BLOCK_TYPE], "thinking");
        assert_eq!(whole.content, "**Plan** say hi\n\nraw");
        assert_eq!(joined, whole.content);
        assert!(out[6].is_none(), "an empty reasoning item is not stored");
    }

    #[test]
    fn the_users_message_is_its_text_parts() {
        let m = one(r#"{"method":"item/completed","params":{"item":{"type":"userMessage","id":"u1","content":[{"type":"text","text":"say hello","text_elements":[]},{"type":"localImage","path":"/x.png"},{"type":"text","text":"please"}]},"threadId":"th-1","turnId":"tu-1"}}"#).unwrap();
        assert_eq!(
            (m.message_type, event(&m)),
            (MessageType::User, EventType::UserMessage)
        );
        assert_eq!(m.content, "say hello\nplease");
        assert_eq!(m.role.as_deref(), Some("user"));
        assert!(one(r#"{"method":"item/started","params":{"item":{"type":"userMessage","id":"u1","content":[]}}}"#).is_none());
    }

    #[test]
    fn a_command_is_a_tool_card_with_its_input_and_output() {
        let out = run(&mut CodexLines::new(), &[CMD_STARTED, CMD_FAILED]);
        let used = out[0].as_ref().unwrap();
        assert_eq!(
            (used.message_type, event(used)),
            (MessageType::Tool, EventType::ToolUse)
        );
        assert_eq!(used.content, "exec_command");
        assert_eq!(used.metadata[keys::TOOL_NAME], "exec_command");
        assert_eq!(used.metadata[keys::TOOL_USE_ID], "call_1");
        assert_eq!(
            used.metadata[keys::INPUT],
            json!({"command": "/bin/bash -lc 'ls /nope'", "cwd": "/w"})
        );
        let done = out[1].as_ref().unwrap();
        assert_eq!(event(done), EventType::ToolResult);
        assert_eq!(done.content, "ls: cannot access '/nope'\n");
        assert_eq!(done.metadata[keys::TOOL_USE_ID], "call_1");
        assert_eq!(done.metadata[keys::IS_ERROR], true);
        assert_eq!(done.metadata["exitCode"], 2);
        // A non-zero exit is an error whatever the status says; a zero exit is not.
        let ok = CMD_FAILED
            .replace(r#""status":"failed""#, r#""status":"completed""#)
            .replace(r#""exitCode":2"#, r#""exitCode":0"#);
        assert_eq!(one(&ok).unwrap().metadata[keys::IS_ERROR], false);
        let odd = CMD_FAILED.replace(r#""status":"failed""#, r#""status":"completed""#);
        assert_eq!(one(&odd).unwrap().metadata[keys::IS_ERROR], true);
        // Declined: no output, an error that says so.
        let declined = one(r#"{"method":"item/completed","params":{"item":{"type":"commandExecution","id":"call_2","command":"touch y","cwd":"/w","status":"declined","aggregatedOutput":null,"exitCode":null}}}"#).unwrap();
        assert_eq!(declined.metadata[keys::IS_ERROR], true);
        assert_eq!(declined.content, "exec_command was declined");
    }

    #[test]
    fn file_changes_mcp_calls_and_web_searches_are_tool_cards_too() {
        let mut p = CodexLines::new();
        let out = run(
            &mut p,
            &[
                r#"{"method":"item/started","params":{"item":{"type":"fileChange","id":"call_f","changes":[{"path":"a.txt","kind":{"type":"add"},"diff":"+hi"}],"status":"inProgress"}}}"#,
                r#"{"method":"item/completed","params":{"item":{"type":"fileChange","id":"call_f","changes":[{"path":"a.txt","kind":{"type":"add"},"diff":"+hi"}],"status":"completed"}}}"#,
                r#"{"method":"item/started","params":{"item":{"type":"mcpToolCall","id":"call_m","server":"docs","tool":"search","status":"inProgress","arguments":{"q":"rust"},"result":null,"error":null}}}"#,
                r#"{"method":"item/completed","params":{"item":{"type":"mcpToolCall","id":"call_m","server":"docs","tool":"search","status":"failed","arguments":{"q":"rust"},"result":null,"error":{"message":"server gone"}}}}"#,
                r#"{"method":"item/started","params":{"item":{"type":"webSearch","id":"ws_1","query":"codex cli"}}}"#,
                r#"{"method":"item/completed","params":{"item":{"type":"webSearch","id":"ws_1","query":"codex cli","action":{"type":"search"}}}}"#,
                r#"{"method":"item/completed","params":{"item":{"type":"mcpToolCall","id":"call_n","server":"docs","tool":"get","status":"completed","arguments":{},"result":{"content":[{"type":"text","text":"page"}]},"error":null}}}"#,
            ],
        );
        let m = |i: usize| out[i].as_ref().unwrap();
        assert_eq!(
            (event(m(0)), m(0).content.as_str()),
            (EventType::ToolUse, "apply_patch")
        );
        assert_eq!(m(0).metadata[keys::INPUT]["changes"][0]["path"], "a.txt");
        assert_eq!(
            (event(m(1)), m(1).content.as_str()),
            (EventType::ToolResult, "a.txt\n+hi")
        );
        assert_eq!(m(1).metadata[keys::TOOL_USE_ID], "call_f");
        assert_eq!(m(1).metadata[keys::IS_ERROR], false);
        assert_eq!(m(2).content, "docs/search");
        assert_eq!(m(2).metadata[keys::INPUT], json!({"q": "rust"}));
        assert_eq!(
            (m(3).content.as_str(), &m(3).metadata[keys::IS_ERROR]),
            ("server gone", &json!(true))
        );
        assert_eq!(m(4).content, "web_search");
        assert_eq!(m(4).metadata[keys::INPUT], json!({"query": "codex cli"}));
        assert_eq!(m(5).metadata[keys::TOOL_USE_ID], "ws_1");
        assert_eq!(m(6).content, "page");
        // An item of no known kind, started or completed, is kept whole.
        let compaction = r#"{"method":"item/completed","params":{"item":{"type":"contextCompaction","id":"c1"}}}"#;
        assert_eq!(event(&one(compaction).unwrap()), EventType::Unknown);
    }

    #[test]
    fn an_approval_is_a_permission_request_named_by_its_item() {
        let line = r#"{"method":"item/commandExecution/requestApproval","id":0,"params":{"kind":"command","threadId":"th-1","turnId":"tu-1","itemId":"call_fake_9c99","reason":"Do you want to run this command outside the sandbox?","command":"/bin/bash -lc 'touch y.txt'","cwd":"/w","commandActions":[],"proposedExecpolicyAmendment":["touch","y.txt"],"availableDecisions":["accept","cancel"]}}"#;
        let m = one(line).unwrap();
        assert_eq!(
            (m.message_type, event(&m)),
            (MessageType::Tool, EventType::PermissionRequest)
        );
        assert_eq!(m.content, "exec_command");
        assert_eq!(m.metadata[keys::REQUEST_ID], "call_fake_9c99");
        assert_eq!(m.metadata[keys::TOOL_USE_ID], "call_fake_9c99");
        assert_eq!(m.metadata["rpcId"], 0);
        assert_eq!(m.metadata[keys::TOOL_NAME], "exec_command");
        assert_eq!(
            m.metadata[keys::INPUT],
            json!({"command": "/bin/bash -lc 'touch y.txt'", "cwd": "/w", "reason": "Do you want to run this command outside the sandbox?"})
        );
        assert_eq!(
            m.metadata["availableDecisions"],
            json!(["accept", "cancel"])
        );
        // A file change's approval: its changes come from the item's start.
        let mut p = CodexLines::new();
        let out = run(
            &mut p,
            &[
                r#"{"method":"item/started","params":{"item":{"type":"fileChange","id":"call_p","changes":[{"path":"b.rs","kind":"update","diff":"-a\n+b"}],"status":"inProgress"}}}"#,
                r#"{"method":"item/fileChange/requestApproval","id":"7","params":{"threadId":"th-1","turnId":"tu-1","itemId":"call_p","reason":"write outside the workspace"}}"#,
            ],
        );
        let ask = out[1].as_ref().unwrap();
        assert_eq!(ask.metadata[keys::REQUEST_ID], "call_p");
        assert_eq!(ask.metadata["rpcId"], "7");
        assert_eq!(ask.metadata[keys::TOOL_NAME], "apply_patch");
        assert_eq!(ask.metadata[keys::INPUT]["changes"][0]["path"], "b.rs");
        assert_eq!(
            ask.metadata[keys::INPUT]["reason"],
            "write outside the workspace"
        );
        // Another approval method: still a request, its params as input.
        let other = one(r#"{"method":"item/permissions/requestApproval","id":3,"params":{"itemId":"call_q","permissions":["network"]}}"#).unwrap();
        assert_eq!(event(&other), EventType::PermissionRequest);
        assert_eq!(other.metadata[keys::TOOL_NAME], "permissions");
        assert_eq!(
            other.metadata[keys::INPUT]["permissions"],
            json!(["network"])
        );
        // No id a client could answer in a URL: kept whole; other server requests likewise.
        for line in [
            r#"{"method":"item/commandExecution/requestApproval","id":1,"params":{"command":"ls"}}"#,
            r#"{"method":"item/commandExecution/requestApproval","id":1,"params":{"itemId":"a/b"}}"#,
            r#"{"method":"item/tool/requestUserInput","id":2,"params":{"itemId":"call_r","questions":[]}}"#,
        ] {
            let m = one(line).unwrap();
            assert_eq!((event(&m), m.content.as_str()), (EventType::Unknown, line));
        }
    }

    #[test]
    fn a_completed_turn_is_the_result_with_the_answer_and_the_last_usage() {
        let mut p = CodexLines::new();
        let out = run(
            &mut p,
            &[
                USAGE,
                r#"{"method":"account/rateLimits/updated","params":{"rateLimits":{}}}"#,
                r#"{"method":"turn/completed","params":{"threadId":"th-1","turn":{"id":"tu-1","items":[{"type":"agentMessage","id":"msg_1","text":"Hello!"}],"itemsView":"summary","status":"completed","error":null,"durationMs":77}}}"#,
            ],
        );
        let usage = out[0].as_ref().unwrap();
        assert_eq!(
            (usage.message_type, event(usage)),
            (MessageType::System, EventType::MessageDelta)
        );
        assert_eq!(usage.metadata[keys::USAGE]["total"]["totalTokens"], 9526);
        assert!(out[1].is_none());
        let result = out[2].as_ref().unwrap();
        assert_eq!(
            (result.message_type, event(result)),
            (MessageType::Result, EventType::Result)
        );
        assert_eq!(result.content, "Hello!");
        let outcome = result.outcome.as_ref().unwrap();
        assert!(!outcome.is_error);
        assert_eq!(outcome.subtype.as_deref(), Some("completed"));
        assert_eq!(outcome.duration_ms, Some(77));
        assert_eq!((outcome.num_turns, outcome.total_cost_usd), (None, None));
        assert_eq!(
            outcome.usage.as_ref().unwrap()["modelContextWindow"],
            258400
        );
        assert_eq!(result.metadata[keys::SUBTYPE], "completed");
        assert_eq!(result.metadata[keys::IS_ERROR], false);
        assert_eq!(result.metadata[keys::DURATION_MS], 77);
        assert_eq!(result.metadata[keys::USAGE], outcome.usage.clone().unwrap());
        assert!(outcome.error().is_none());
    }

    #[test]
    fn a_failed_turn_fails_with_its_error_or_the_runs_last_error() {
        let failed_bare = r#"{"method":"turn/completed","params":{"turn":{"id":"tu-1","items":[],"status":"failed","error":null,"durationMs":5}}}"#;
        let mut p = CodexLines::new();
        let out = run(
            &mut p,
            &[
                r#"{"method":"error","params":{"error":{"message":"Reconnecting... 1/1","codexErrorInfo":{"responseStreamDisconnected":{"httpStatusCode":null}},"additionalDetails":"high demand"},"willRetry":true,"threadId":"th-1","turnId":"tu-1"}}"#,
                r#"{"method":"error","params":{"error":{"message":"We're experiencing high demand","codexErrorInfo":"internalServerError","additionalDetails":null},"willRetry":false}}"#,
                failed_bare,
                // The next turn fails without any error of its own: nothing stale is reused.
                failed_bare,
            ],
        );
        let retry = out[0].as_ref().unwrap();
        assert_eq!(event(retry), EventType::System);
        assert_eq!(retry.metadata[keys::SUBTYPE], "api_retry");
        assert_eq!(retry.content, "Reconnecting... 1/1");
        let error = out[1].as_ref().unwrap();
        assert_eq!(error.metadata[keys::SUBTYPE], "error");
        assert_eq!(error.content, "We're experiencing high demand");
        let result = out[2].as_ref().unwrap();
        let outcome = result.outcome.as_ref().unwrap();
        assert!(outcome.is_error);
        assert_eq!(outcome.subtype.as_deref(), Some("failed"));
        assert_eq!(
            outcome.error().unwrap().message,
            "We're experiencing high demand"
        );
        assert_eq!(result.content, "We're experiencing high demand");
        assert_eq!(result.metadata[keys::IS_ERROR], true);
        let next = out[3].as_ref().unwrap().outcome.as_ref().unwrap();
        assert!(next.is_error && next.result.is_none());
        // The turn's own error wins.
        let own = one(r#"{"method":"turn/completed","params":{"turn":{"id":"tu-1","items":[],"status":"failed","error":{"message":"Incomplete response returned","codexErrorInfo":"other"}}}}"#).unwrap();
        assert_eq!(
            own.outcome.unwrap().result.as_deref(),
            Some("Incomplete response returned")
        );
        assert_eq!(own.metadata["codexErrorInfo"], "other");
    }

    #[test]
    fn an_interrupted_turn_is_an_error_result_without_a_message() {
        let m = one(r#"{"method":"turn/completed","params":{"turn":{"id":"tu-1","items":[],"status":"interrupted","error":null,"durationMs":447}}}"#).unwrap();
        let outcome = m.outcome.unwrap();
        assert!(outcome.is_error);
        assert_eq!(outcome.subtype.as_deref(), Some("interrupted"));
        assert_eq!(m.content, "");
        assert!(outcome.error().unwrap().message.contains("interrupted"));
    }

    #[test]
    fn a_retry_names_the_partial_answers_it_abandons() {
        let mut p = CodexLines::new();
        let out = run(
            &mut p,
            &[
                r#"{"method":"item/started","params":{"item":{"type":"agentMessage","id":"msg_a","text":""}}}"#,
                r#"{"method":"item/agentMessage/delta","params":{"itemId":"msg_a","delta":"tok0 "}}"#,
                r#"{"method":"error","params":{"error":{"message":"Reconnecting... 1/1"},"willRetry":true}}"#,
                r#"{"method":"item/started","params":{"item":{"type":"agentMessage","id":"msg_b","text":""}}}"#,
                r#"{"method":"item/completed","params":{"item":{"type":"agentMessage","id":"msg_b","text":"done"}}}"#,
                r#"{"method":"error","params":{"error":{"message":"Reconnecting... 2/2"},"willRetry":true}}"#,
            ],
        );
        let retry = out[2].as_ref().unwrap();
        assert_eq!(retry.metadata["abandonedMessageIds"], json!(["msg_a"]));
        // A completed answer is not abandoned.
        assert!(out[5]
            .as_ref()
            .unwrap()
            .metadata
            .get("abandonedMessageIds")
            .is_none());
    }

    #[test]
    fn an_error_answer_is_an_error_and_fails_the_turn_that_follows() {
        let mut p = CodexLines::new();
        let out = run(
            &mut p,
            &[
                r#"{"error":{"code":-32600,"message":"no rollout found for thread id 01a2"},"id":2}"#,
                r#"{"method":"turn/completed","params":{"turn":{"id":"tu-1","items":[],"status":"failed","error":null}}}"#,
            ],
        );
        let error = out[0].as_ref().unwrap();
        assert_eq!(
            (error.message_type, event(error)),
            (MessageType::System, EventType::System)
        );
        assert_eq!(error.metadata[keys::SUBTYPE], "error");
        assert_eq!(error.metadata["rpcId"], 2);
        assert_eq!(error.metadata["code"], -32600);
        assert_eq!(error.content, "no rollout found for thread id 01a2");
        assert_eq!(
            out[1]
                .as_ref()
                .unwrap()
                .outcome
                .as_ref()
                .unwrap()
                .result
                .as_deref(),
            Some("no rollout found for thread id 01a2")
        );
    }

    #[test]
    fn warnings_are_system_lines_of_their_method() {
        for (line, subtype, said) in [
            (
                r#"{"method":"warning","params":{"threadId":"th-1","message":"Model metadata for `gpt-fake` not found."}}"#,
                "warning",
                "Model metadata for `gpt-fake` not found.",
            ),
            (
                r#"{"method":"configWarning","params":{"summary":"Codex could not find bubblewrap on PATH.","details":null},"emittedAtMs":1}"#,
                "configWarning",
                "Codex could not find bubblewrap on PATH.",
            ),
        ] {
            let m = one(line).unwrap();
            assert_eq!((event(&m), m.content.as_str()), (EventType::System, said));
            assert_eq!(m.metadata[keys::SUBTYPE], subtype);
        }
    }

    #[test]
    fn noise_is_not_stored() {
        for line in [
            r#"{"method":"thread/status/changed","params":{"threadId":"th-1","status":{"type":"idle"}}}"#,
            r#"{"method":"account/rateLimits/updated","params":{"rateLimits":{"limitId":"codex"}}}"#,
            r#"{"method":"remoteControl/status/changed","params":{"status":"disabled"}}"#,
            r#"{"method":"thread/goal/cleared","params":{"threadId":"th-1"}}"#,
            r#"{"method":"serverRequest/resolved","params":{"threadId":"th-1","requestId":0}}"#,
            r#"{"method":"item/commandExecution/outputDelta","params":{"itemId":"call_1","delta":"line2\n"}}"#,
            r#"{"method":"item/reasoning/summaryPartAdded","params":{"itemId":"rs_1","summaryIndex":0}}"#,
            r#"{"method":"turn/started","params":{"threadId":"th-1","turn":{"id":"tu-1","status":"inProgress"}}}"#,
            r#"{"id":1,"result":{"userAgent":"agentstream/0.169.0","codexHome":"/h/.codex"}}"#,
            "",
            "   ",
        ] {
            assert!(one(line).is_none(), "{line}");
        }
    }

    #[test]
    fn a_line_of_no_known_shape_is_kept_whole_as_a_system_message() {
        let mut p = CodexLines::new();
        for line in [
            "Warning: something printed on stdout",
            r#"{"type":"thread.started","thread_id":"01a2"}"#,
            r#"{"method":"turn/diff/updated","params":{"diff":""}}"#,
            r#"{"method":"item/agentMessage/delta","params":{"itemId":"m","delta":7}}"#,
            r#"{"method":"item/started","params":{}}"#,
            r#"{"method":"turn/completed","params":{}}"#,
            r#"{"method":42}"#,
            r#"{"id":5}"#,
            "[1,2,3]",
            "{not json",
        ] {
            let m = p.parse_line(line).expect("stored");
            assert_eq!(m.message_type, MessageType::System, "{line}");
            assert_eq!(event(&m), EventType::Unknown, "{line}");
            assert_eq!((m.content.as_str(), m.raw.as_str()), (line, line));
        }
        // Not UTF-8: decoded lossily, still stored.
        let m = p.parse_bytes(b"caf\xe9 au lait").expect("stored");
        assert!(m.content.starts_with("caf"));
        let m = p
            .parse_bytes(
                br#"{"method":"item/agentMessage/delta","params":{"itemId":"m","delta":"hi"}}"#,
            )
            .unwrap();
        assert_eq!(event(&m), EventType::ContentDelta);
    }
}
