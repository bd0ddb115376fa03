//! Claude Code's `stream-json` lines (`claude -p --output-format stream-json --verbose
//! --include-partial-messages`), as the CLI 2.1.x prints them.
//!
//! Lines are identified by parsing JSON, never by their prefix: in `result` lines `type` is not the first
//! key. Every message keeps its line in `raw`, and `metadata.eventType` says what it is:
//!
//! | line | stored as | `eventType` |
//! |---|---|---|
//! | `stream_event` text_delta | `assistant`, the token | `content_delta` |
//! | `stream_event` thinking_delta | `assistant`, the thinking text | `thinking_delta` |
//! | `stream_event` input_json_delta | `tool`, the JSON fragment | `tool_input_delta` |
//! | `stream_event` content_block_start of a tool_use | `tool`, the tool's name | `tool_use` |
//! | `stream_event` message_delta | `system`, usage | `message_delta` |
//! | `stream_event` message_stop with `abandoned_blocks` | `system` | `abandoned_blocks` |
//! | `stream_event` message_start, content_block_stop, message_stop, text/thinking block starts | not stored | |
//! | `assistant` (one whole block, after its deltas) | `assistant` | `assistant_message` |
//! | `user` with tool results | `tool` | `tool_result` |
//! | `user` with text | `user` | `user_message` |
//! | `system` (init, status, api_retry, …) | `system` | `system` (+ `subtype`) |
//! | `result` | `result`, the final text | `result` |
//! | `control_request` `can_use_tool` (`--permission-prompt-tool stdio`) | `tool`, the tool's name | `permission_request` |
//! | `control_cancel_request` (the CLI withdraws a request: its turn was interrupted) | `system` | `system` (`subtype` `control_cancel_request`) |
//! | anything else | `system`, content empty | `unknown` |
//! | not JSON / not UTF-8 | `error` | `parse_error` |
//!
//! A client that builds text from deltas must drop the partial text of a message when its
//! `abandoned_blocks` arrives (the CLI re-sends the answer under a new message id) and must not show an
//! `assistant_message` whose deltas it already showed.

use agentstream_wire::{keys, EventType};
use serde_json::{json, Map, Value};

mod stream_events;

use stream_events::{stream_event, text_token};

use super::{message, ParsedMessage, RunOutcome, SessionInfo};

/// Parses one line (without its newline). `None`: the line is deliberately not stored.
pub fn parse_line(line: &str) -> Option<ParsedMessage> {
    text_token(line).or_else(|| parse_general(line))
}

/// Any line, through a `Value` tree.
pub(super) fn parse_general(line: &str) -> Option<ParsedMessage> {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return Some(message(
                EventType::ParseError,
                format!("the agent printed a line that is not JSON: {e}"),
                line,
                meta(EventType::ParseError),
            ))
        }
    };
    let Value::Object(obj) = &value else {
        return Some(unknown(line));
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("stream_event") => stream_event(obj, line),
        Some("assistant") => Some(assistant(obj, line)),
        Some("user") => Some(user(obj, line)),
        Some("system") => Some(system(obj, line)),
        Some("result") => Some(result(obj, line)),
        Some("control_request") => Some(control_request(obj, line)),
        Some("control_cancel_request") => Some(control_cancel(obj, line)),
        _ => Some(unknown(line)),
    }
}

/// Parses one line of raw bytes: a line that is not UTF-8 becomes an `error` message (its raw text
/// decoded lossily), and the stream goes on.
pub fn parse_bytes(line: &[u8]) -> Option<ParsedMessage> {
    match std::str::from_utf8(line) {
        Ok(text) => parse_line(text),
        Err(e) => Some(message(
            EventType::ParseError,
            format!("the agent printed a line that is not UTF-8 ({e})"),
            &String::from_utf8_lossy(line),
            meta(EventType::ParseError),
        )),
    }
}

/// The metadata of every message of `event`: its `eventType`, first.
pub(super) fn meta(event: EventType) -> Value {
    json!({ (keys::EVENT_TYPE): event.as_str() })
}

/// A line kept as-is because nothing here knows what it means.
pub(super) fn unknown(raw: &str) -> ParsedMessage {
    message(
        EventType::Unknown,
        String::new(),
        raw,
        meta(EventType::Unknown),
    )
}

pub(super) fn str_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

/// Copies `from` → `to` into `meta` when the line has it and it is not null.
pub(super) fn copy(meta: &mut Value, obj: &Map<String, Value>, pairs: &[(&str, &str)]) {
    for (from, to) in pairs {
        if let Some(v) = obj.get(*from).filter(|v| !v.is_null()) {
            meta[*to] = v.clone();
        }
    }
}

/// A whole content block, printed after its deltas: stored so a client can reconcile.
fn assistant(obj: &Map<String, Value>, raw: &str) -> ParsedMessage {
    let msg = obj.get("message").and_then(Value::as_object);
    let block = msg
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(Value::as_object);
    let block_type = block
        .and_then(|b| str_of(b.get("type")))
        .unwrap_or("unknown");
    let content = match (block_type, block) {
        ("text", Some(b)) => str_of(b.get("text")).unwrap_or_default().to_owned(),
        ("thinking", Some(b)) => str_of(b.get("thinking")).unwrap_or_default().to_owned(),
        ("tool_use", Some(b)) => b.get("input").map(Value::to_string).unwrap_or_default(),
        _ => String::new(),
    };
    let mut meta =
        json!({(keys::EVENT_TYPE): EventType::AssistantMessage, "blockType": block_type});
    if let Some(m) = msg {
        copy(
            &mut meta,
            m,
            &[
                ("id", "messageId"),
                ("model", "model"),
                ("stop_reason", "stopReason"),
            ],
        );
        // The CLI reports API errors as an assistant message of a `<synthetic>` model.
        meta["synthetic"] = json!(str_of(m.get("model")) == Some("<synthetic>"));
    }
    if let Some(b) = block {
        copy(&mut meta, b, &[("id", "toolUseId"), ("name", "toolName")]);
    }
    copy(&mut meta, obj, &[("parent_tool_use_id", "parentToolUseId")]);
    let mut m = message(EventType::AssistantMessage, content, raw, meta);
    m.role = Some("assistant".into());
    m
}

/// Tool results the CLI sends back to the model, or text it inserts itself.
fn user(obj: &Map<String, Value>, raw: &str) -> ParsedMessage {
    let content = obj.get("message").and_then(|m| m.get("content"));
    let blocks: Vec<&Map<String, Value>> = match content {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    let results: Vec<&Map<String, Value>> = blocks
        .iter()
        .copied()
        .filter(|b| str_of(b.get("type")) == Some("tool_result"))
        .collect();
    let mut m = if let Some(first) = results.first() {
        let text = results
            .iter()
            .map(|b| result_text(b.get("content")))
            .collect::<Vec<_>>()
            .join("\n");
        let mut meta = meta(EventType::ToolResult);
        copy(
            &mut meta,
            first,
            &[("tool_use_id", "toolUseId"), ("is_error", "isError")],
        );
        if results.len() > 1 {
            meta["toolUseIds"] = results
                .iter()
                .filter_map(|b| b.get("tool_use_id").cloned())
                .collect();
        }
        message(EventType::ToolResult, text, raw, meta)
    } else {
        let text = match content {
            Some(Value::String(s)) => s.clone(),
            _ => blocks
                .iter()
                .filter_map(|b| str_of(b.get("text")))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        let mut meta = meta(EventType::UserMessage);
        copy(
            &mut meta,
            obj,
            &[("isSynthetic", "isSynthetic"), ("isReplay", "isReplay")],
        );
        message(EventType::UserMessage, text, raw, meta)
    };
    copy(
        &mut m.metadata,
        obj,
        &[("parent_tool_use_id", "parentToolUseId")],
    );
    m.role = Some("user".into());
    m
}

/// Bounds on what a permission request may carry into its message's metadata (an id that clients
/// send back in a URL, and the tool's name).
const MAX_REQUEST_ID_BYTES: usize = 200;
const MAX_TOOL_NAME_BYTES: usize = 400;

/// A request of the CLI over its control protocol. `can_use_tool` asks whether a tool may run: it
/// becomes a `permission_request` message (`requestId`, `toolName`, `input`, `toolUseId`,
/// `suggestions`), which a client answers; any other request is kept as unknown.
fn control_request(obj: &Map<String, Value>, raw: &str) -> ParsedMessage {
    let request = obj.get("request").and_then(Value::as_object);
    let id = str_of(obj.get("request_id"))
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_BYTES && is_plain_id(id));
    let (Some(request), Some(id)) = (request, id) else {
        return unknown(raw);
    };
    if str_of(request.get("subtype")) != Some("can_use_tool") {
        return unknown(raw);
    }
    let tool = str_of(request.get("tool_name"))
        .filter(|t| t.len() <= MAX_TOOL_NAME_BYTES)
        .unwrap_or("unknown");
    let mut meta = json!({
        (keys::EVENT_TYPE): EventType::PermissionRequest,
        (keys::REQUEST_ID): id,
        (keys::TOOL_NAME): tool,
        (keys::INPUT): request.get("input").cloned().unwrap_or_else(|| json!({})),
    });
    copy(
        &mut meta,
        request,
        &[
            ("tool_use_id", keys::TOOL_USE_ID),
            ("permission_suggestions", "suggestions"),
            ("decision_reason", "reason"),
            ("blocked_path", "blockedPath"),
        ],
    );
    message(EventType::PermissionRequest, tool.to_owned(), raw, meta)
}

/// The CLI withdraws one of its requests (a permission request whose turn was interrupted).
fn control_cancel(obj: &Map<String, Value>, raw: &str) -> ParsedMessage {
    let mut meta =
        json!({(keys::EVENT_TYPE): EventType::System, "subtype": "control_cancel_request"});
    copy(&mut meta, obj, &[("request_id", keys::REQUEST_ID)]);
    message(
        EventType::System,
        "the agent withdrew its request".to_owned(),
        raw,
        meta,
    )
}

/// Letters, digits, `-` and `_`: safe in a URL path segment as it is.
pub fn is_plain_id(id: &str) -> bool {
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The text of a tool result's `content`: a string, or text blocks.
fn result_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| str_of(i.get("text")))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) if !other.is_null() => other.to_string(),
        _ => String::new(),
    }
}

fn system(obj: &Map<String, Value>, raw: &str) -> ParsedMessage {
    let subtype = str_of(obj.get("subtype")).unwrap_or("unknown");
    let mut meta = json!({(keys::EVENT_TYPE): EventType::System, "subtype": subtype});
    let mut session = None;
    let content = match subtype {
        "init" => {
            copy(
                &mut meta,
                obj,
                &[
                    ("session_id", "sessionId"),
                    ("model", "model"),
                    ("cwd", "cwd"),
                    ("permissionMode", "permissionMode"),
                    ("claude_code_version", "version"),
                ],
            );
            if let Some(id) = str_of(obj.get("session_id")) {
                session = Some(SessionInfo {
                    session_id: id.to_owned(),
                    model: str_of(obj.get("model")).map(str::to_owned),
                });
            }
            match str_of(obj.get("model")) {
                Some(model) => format!("session started with model {model}"),
                None => "session started".to_owned(),
            }
        }
        _ => {
            // Small lines: keep their fields (minus the envelope) as metadata — but never over the
            // ones set here: a line carrying its own `eventType` must not pass for another kind of
            // message (`{"type":"system","eventType":"content_delta"}` is still a system line).
            for (k, v) in obj {
                if !matches!(k.as_str(), "type" | "subtype" | "uuid" | "session_id")
                    && meta.get(k.as_str()).is_none()
                {
                    meta[k.as_str()] = v.clone();
                }
            }
            match subtype {
                "api_retry" => format!(
                    "API error {} ({}); retry {} of {} in {} ms",
                    obj.get("error_status")
                        .filter(|v| !v.is_null())
                        .map_or("(no status)".to_owned(), Value::to_string),
                    str_of(obj.get("error")).unwrap_or("unknown"),
                    obj.get("attempt").map_or("?".to_owned(), Value::to_string),
                    obj.get("max_retries")
                        .map_or("?".to_owned(), Value::to_string),
                    obj.get("retry_delay_ms")
                        .map_or("?".to_owned(), Value::to_string),
                ),
                "status" => str_of(obj.get("status")).unwrap_or_default().to_owned(),
                "task_started" => str_of(obj.get("description"))
                    .unwrap_or_default()
                    .to_owned(),
                "task_notification" => str_of(obj.get("summary")).unwrap_or_default().to_owned(),
                _ => str_of(obj.get("message"))
                    .or_else(|| str_of(obj.get("content")))
                    .unwrap_or_default()
                    .to_owned(),
            }
        }
    };
    let mut m = message(EventType::System, content, raw, meta);
    m.session = session;
    m
}

fn result(obj: &Map<String, Value>, raw: &str) -> ParsedMessage {
    let outcome = RunOutcome {
        is_error: obj
            .get("is_error")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        subtype: str_of(obj.get("subtype")).map(str::to_owned),
        // A run that could not start (`--resume` of an unknown session) has no text, only `errors`.
        result: str_of(obj.get("result")).map(str::to_owned).or_else(|| {
            let errors: Vec<&str> = obj
                .get("errors")?
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            (!errors.is_empty()).then(|| errors.join("; "))
        }),
        total_cost_usd: obj.get("total_cost_usd").and_then(Value::as_f64),
        num_turns: obj.get("num_turns").and_then(Value::as_u64),
        usage: obj.get("usage").cloned(),
        duration_ms: obj.get("duration_ms").and_then(Value::as_i64),
        reported: crate::usage::cli::claude(obj),
    };
    let mut meta = json!({
        (keys::EVENT_TYPE): EventType::Result,
        "subtype": outcome.subtype,
        "isError": outcome.is_error,
        "durationMs": outcome.duration_ms,
        "totalCostUsd": outcome.total_cost_usd,
        "numTurns": outcome.num_turns,
        "usage": outcome.usage,
    });
    copy(
        &mut meta,
        obj,
        &[
            ("stop_reason", "stopReason"),
            ("terminal_reason", "terminalReason"),
            ("api_error_status", "apiErrorStatus"),
            ("session_id", "sessionId"),
            ("permission_denials", "permissionDenials"),
        ],
    );
    ParsedMessage {
        message_type: EventType::Result.message_type(),
        role: None,
        content: outcome.result.clone().unwrap_or_default(),
        raw: raw.to_owned(),
        metadata: meta,
        outcome: Some(outcome),
        session: None,
    }
}

#[cfg(test)]
mod tests {
    use agentstream_wire::MessageType;

    use super::*;

    const DELTA: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello!"}},"session_id":"s","parent_tool_use_id":null,"uuid":"u","api_message_id":"msg_1"}"#;

    fn event(e: &str) -> String {
        format!(
            r#"{{"type":"stream_event","event":{e},"session_id":"s","parent_tool_use_id":null,"uuid":"u","api_message_id":"msg_1"}}"#
        )
    }

    #[test]
    fn text_delta_is_an_assistant_token() {
        let m = parse_line(DELTA).unwrap();
        assert_eq!(m.message_type, MessageType::Assistant);
        assert_eq!(m.content, "Hello!");
        assert_eq!(m.metadata["eventType"], "content_delta");
        assert_eq!(m.metadata["messageId"], "msg_1");
        assert_eq!(m.metadata["blockIndex"], 0);
        assert!(
            m.metadata.get("parentToolUseId").is_none(),
            "null fields are left out"
        );
        assert_eq!(m.raw, DELTA);
        assert!(m.outcome.is_none());
    }

    #[test]
    fn message_delta_is_usage_as_system() {
        let m = parse_line(&event(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":1,"output_tokens":7}}"#)).unwrap();
        assert_eq!(m.message_type, MessageType::System);
        assert_eq!(m.content, "");
        assert_eq!(m.metadata["eventType"], "message_delta");
        assert_eq!(m.metadata["usage"]["output_tokens"], 7);
        assert_eq!(m.metadata["stopReason"], "end_turn");
    }

    #[test]
    fn framing_events_are_not_stored() {
        for e in [
            r#"{"type":"message_start","message":{"id":"m"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"message_stop"}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        ] {
            assert_eq!(parse_line(&event(e)), None, "{e}");
        }
    }

    #[test]
    fn abandoned_message_stop_is_stored() {
        let line = r#"{"type":"stream_event","event":{"type":"message_stop"},"session_id":"s","parent_tool_use_id":null,"uuid":"u","api_message_id":"msg_9","abandoned_blocks":{"api_message_id":"msg_9","from_block_index":0}}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(m.message_type, MessageType::System);
        assert_eq!(m.metadata["eventType"], "abandoned_blocks");
        assert_eq!(m.metadata["messageId"], "msg_9");
        assert_eq!(m.metadata["fromBlockIndex"], 0);
    }

    #[test]
    fn tool_use_start_and_input_deltas_are_tool_messages() {
        let m = parse_line(&event(r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"Bash","input":{}}}"#)).unwrap();
        assert_eq!(
            (m.message_type, m.content.as_str()),
            (MessageType::Tool, "Bash")
        );
        assert_eq!(m.metadata["eventType"], "tool_use");
        assert_eq!(m.metadata["toolUseId"], "toolu_1");
        assert_eq!(m.metadata["blockIndex"], 1);
        let m = parse_line(&event(r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"comm"}}"#)).unwrap();
        assert_eq!(
            (m.message_type, m.content.as_str()),
            (MessageType::Tool, "{\"comm")
        );
        assert_eq!(m.metadata["eventType"], "tool_input_delta");
    }

    #[test]
    fn thinking_and_signature_deltas() {
        let m = parse_line(&event(r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#)).unwrap();
        assert_eq!(
            (m.message_type, m.content.as_str()),
            (MessageType::Assistant, "hmm")
        );
        assert_eq!(m.metadata["eventType"], "thinking_delta");
        let m = parse_line(&event(r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2ln"}}"#)).unwrap();
        assert_eq!(m.message_type, MessageType::System);
        assert_eq!(m.metadata["eventType"], "signature_delta");
    }

    #[test]
    fn whole_assistant_blocks_are_marked_for_reconciliation() {
        let line = r#"{"type":"assistant","message":{"id":"msg_1","model":"claude-x","content":[{"type":"text","text":"Hello! All of it."}],"stop_reason":null},"parent_tool_use_id":null,"session_id":"s"}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(m.message_type, MessageType::Assistant);
        assert_eq!(m.content, "Hello! All of it.");
        assert_eq!(m.metadata["eventType"], "assistant_message");
        assert_eq!(m.metadata["messageId"], "msg_1");
        assert_eq!(m.metadata["blockType"], "text");
        assert_eq!(m.metadata["synthetic"], false);
        let line = r#"{"type":"assistant","message":{"id":"x","model":"<synthetic>","content":[{"type":"text","text":"API Error: 500"}]}}"#;
        assert_eq!(parse_line(line).unwrap().metadata["synthetic"], true);
        let line = r#"{"type":"assistant","message":{"id":"m","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"echo hi"}}]}}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(m.metadata["blockType"], "tool_use");
        assert_eq!(m.metadata["toolName"], "Bash");
        assert_eq!(m.content, r#"{"command":"echo hi"}"#);
    }

    #[test]
    fn user_lines_are_tool_results_or_user_text() {
        let line = r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"hi","is_error":false}]},"parent_tool_use_id":null}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(
            (m.message_type, m.content.as_str()),
            (MessageType::Tool, "hi")
        );
        assert_eq!(m.metadata["eventType"], "tool_result");
        assert_eq!(m.metadata["toolUseId"], "toolu_1");
        assert_eq!(m.metadata["isError"], false);
        let line = r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"t","type":"tool_result","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"is_error":true}]}}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(m.content, "a\nb");
        assert_eq!(m.metadata["isError"], true);
        let line = r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"[Request interrupted by user]"}]},"isSynthetic":true}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(
            (m.message_type, m.content.as_str()),
            (MessageType::User, "[Request interrupted by user]")
        );
        assert_eq!(m.metadata["isSynthetic"], true);
        let line =
            r#"{"type":"user","message":{"role":"user","content":"hi there"},"isReplay":true}"#;
        assert_eq!(parse_line(line).unwrap().content, "hi there");
    }

    #[test]
    fn result_decides_the_outcome_even_when_type_is_not_first() {
        let line = r#"{"duration_ms":135,"is_error":true,"num_turns":1,"subtype":"success","result":"API Error: 500","total_cost_usd":0.5,"terminal_reason":"api_error","type":"result"}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(m.message_type, MessageType::Result);
        assert_eq!(m.content, "API Error: 500");
        assert_eq!(m.metadata["terminalReason"], "api_error");
        let o = m.outcome.unwrap();
        assert!(o.is_error);
        assert_eq!(o.duration_ms, Some(135));
        assert_eq!(o.error().unwrap().message, "API Error: 500");
        let ok =
            parse_line(r#"{"type":"result","subtype":"success","is_error":false,"result":"hi"}"#)
                .unwrap();
        assert!(ok.outcome.unwrap().error().is_none());
    }

    #[test]
    fn system_lines_keep_their_meaning() {
        let line = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"abc","model":"claude-x","tools":["Bash"]}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(m.message_type, MessageType::System);
        assert_eq!(m.metadata["sessionId"], "abc");
        assert_eq!(m.metadata["model"], "claude-x");
        assert!(
            m.metadata.get("tools").is_none(),
            "init's long lists stay in raw only"
        );
        let session = m.session.unwrap();
        assert_eq!(
            (session.session_id.as_str(), session.model.as_deref()),
            ("abc", Some("claude-x"))
        );
        let line = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":618,"error_status":500,"error":"server_error","session_id":"s","uuid":"u"}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(
            m.content,
            "API error 500 (server_error); retry 1 of 2 in 618 ms"
        );
        assert_eq!(m.metadata["subtype"], "api_retry");
        assert_eq!(m.metadata["error_status"], 500);
        let line = r#"{"type":"system","subtype":"permission_denied","tool_name":"Bash","tool_use_id":"t","message":"touch needs permission"}"#;
        assert_eq!(parse_line(line).unwrap().content, "touch needs permission");
    }

    #[test]
    fn metadata_reads_back_from_its_text_form_unchanged() {
        // Regression, found by fuzz/ (parse_line): metadata is stored as text and read back with
        // serde_json; without its `float_roundtrip` feature a long number parsed to a float one ulp off
        // the one broadcast live, so the same message differed between WebSocket and history.
        let line = r#"{"type":"system","":{"t":[{"n":444444444444444444444447,"":""}]}}"#;
        let m = parse_line(line).unwrap();
        let back: Value = serde_json::from_str(&m.metadata.to_string()).unwrap();
        assert_eq!(back, m.metadata);
    }

    #[test]
    fn a_system_line_cannot_overwrite_its_own_event_type() {
        // Regression (tests/corpus/runner/completed--metadata-field-spoofing.out): the line's own
        // `eventType` must not replace the one the parser sets.
        let line = r#"{"type":"system","subtype":"status","status":"x","eventType":"content_delta","isError":true}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(m.message_type, MessageType::System);
        assert_eq!(m.metadata["eventType"], "system");
        assert_eq!(m.metadata["subtype"], "status");
        assert_eq!(m.metadata["isError"], true, "other fields are still kept");
    }

    #[test]
    fn garbage_is_an_error_message_and_unknown_is_kept() {
        let m = parse_line("{not json").unwrap();
        assert_eq!(m.message_type, MessageType::Error);
        assert_eq!(m.raw, "{not json");
        for line in [
            r#"{"type":"brand_new","x":1}"#,
            "[1,2]",
            "42",
            r#"{"type":"control_response","response":{"subtype":"success"}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"future_delta"}}}"#,
            r#"{"type":"stream_event","event":{"type":"brand_new_event"}}"#,
            r#"{"type":"stream_event"}"#,
        ] {
            let m = parse_line(line).unwrap();
            assert_eq!(m.message_type, MessageType::System, "{line}");
            assert_eq!(m.metadata["eventType"], "unknown", "{line}");
            assert_eq!(m.raw, line);
        }
        let m = parse_bytes(b"{\"type\":\"x\xff\"}").unwrap();
        assert_eq!(m.message_type, MessageType::Error);
        assert!(m.content.contains("UTF-8"));
        assert!(m.raw.contains('\u{fffd}'));
    }

    #[test]
    fn wrong_field_types_never_panic() {
        for line in [
            r#"{"type":"assistant","message":5}"#,
            r#"{"type":"assistant","message":{"content":"text"}}"#,
            r#"{"type":"user","message":{"content":[1,null,{"type":"tool_result"}]}}"#,
            r#"{"type":"system","subtype":7}"#,
            r#"{"type":"result","is_error":"yes","num_turns":-1}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_start","content_block":{"type":"tool_use"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":7}}}"#,
        ] {
            assert!(parse_line(line).is_some(), "{line}");
        }
    }
}
