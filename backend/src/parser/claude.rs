//! Claude Code's `stream-json` lines (`claude -p --output-format stream-json --verbose
//! --include-partial-messages`).
//!
//! Lines are identified by parsing JSON, never by their prefix: in `result` lines `type` is not the first
//! key. Anything not understood is kept as a `system` message with its raw line, never dropped.

use agentstream_wire::MessageType;
use serde_json::{json, Map, Value};

use super::{ParsedMessage, RunOutcome};

/// Parses one line (without its newline). `None`: the line is deliberately not stored
/// (`message_start`, `content_block_stop`, `message_stop`, and the start of a text block).
pub fn parse_line(line: &str) -> Option<ParsedMessage> {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return Some(message(
                MessageType::Error,
                format!("the agent printed a line that is not JSON: {e}"),
                line,
                json!({"eventType": "parse_error"}),
            ))
        }
    };
    let Value::Object(obj) = &value else {
        return Some(unknown(line, "not_an_object"));
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("stream_event") => stream_event(obj, line),
        Some("system") => Some(system(obj, line)),
        Some("result") => Some(result(obj, line)),
        _ => Some(unknown(line, "unknown")),
    }
}

/// A message with no role and no outcome.
fn message(kind: MessageType, content: String, raw: &str, metadata: Value) -> ParsedMessage {
    ParsedMessage {
        message_type: kind,
        role: None,
        content,
        raw: raw.to_owned(),
        metadata,
        outcome: None,
    }
}

/// A line kept as-is because nothing here knows what it means.
fn unknown(raw: &str, event_type: &str) -> ParsedMessage {
    message(
        MessageType::System,
        String::new(),
        raw,
        json!({"eventType": event_type}),
    )
}

fn stream_event(obj: &Map<String, Value>, raw: &str) -> Option<ParsedMessage> {
    let Some(event) = obj.get("event").and_then(Value::as_object) else {
        return Some(unknown(raw, "unknown"));
    };
    let message_id = obj.get("api_message_id").cloned().unwrap_or(Value::Null);
    match event.get("type").and_then(Value::as_str) {
        Some("message_start" | "content_block_stop" | "message_stop") => None,
        Some("content_block_start") => {
            match event
                .get("content_block")
                .and_then(|b| b.get("type"))
                .and_then(Value::as_str)
            {
                Some("text") => None,
                _ => Some(unknown(raw, "content_block_start")),
            }
        }
        Some("content_block_delta") => {
            let delta = event.get("delta");
            match delta.and_then(|d| d.get("type")).and_then(Value::as_str) {
                Some("text_delta") => {
                    let text = delta
                        .and_then(|d| d.get("text"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let mut meta = json!({"eventType": "content_delta"});
                    if let Some(index) = event.get("index") {
                        meta["blockIndex"] = index.clone();
                    }
                    if !message_id.is_null() {
                        meta["messageId"] = message_id;
                    }
                    Some(message(MessageType::Assistant, text.to_owned(), raw, meta))
                }
                _ => Some(unknown(raw, "content_block_delta")),
            }
        }
        Some("message_delta") => {
            let mut meta = json!({
                "eventType": "message_delta",
                "usage": event.get("usage").cloned().unwrap_or(Value::Null),
            });
            if let Some(reason) = event.get("delta").and_then(|d| d.get("stop_reason")) {
                meta["stopReason"] = reason.clone();
            }
            Some(message(MessageType::System, String::new(), raw, meta))
        }
        _ => Some(unknown(raw, "stream_event")),
    }
}

fn system(obj: &Map<String, Value>, raw: &str) -> ParsedMessage {
    let subtype = obj
        .get("subtype")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mut meta = json!({"eventType": "system", "subtype": subtype});
    let mut content = String::new();
    if subtype == "init" {
        for (from, to) in [
            ("session_id", "sessionId"),
            ("model", "model"),
            ("cwd", "cwd"),
        ] {
            if let Some(v) = obj.get(from) {
                meta[to] = v.clone();
            }
        }
        if let Some(model) = obj.get("model").and_then(Value::as_str) {
            content = format!("session started with model {model}");
        }
    }
    message(MessageType::System, content, raw, meta)
}

fn result(obj: &Map<String, Value>, raw: &str) -> ParsedMessage {
    let outcome = RunOutcome {
        is_error: obj
            .get("is_error")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        subtype: obj
            .get("subtype")
            .and_then(Value::as_str)
            .map(str::to_owned),
        result: obj.get("result").and_then(Value::as_str).map(str::to_owned),
        total_cost_usd: obj.get("total_cost_usd").and_then(Value::as_f64),
        num_turns: obj.get("num_turns").and_then(Value::as_u64),
        usage: obj.get("usage").cloned(),
        duration_ms: obj.get("duration_ms").and_then(Value::as_i64),
    };
    let meta = json!({
        "eventType": "result",
        "subtype": outcome.subtype,
        "isError": outcome.is_error,
        "durationMs": outcome.duration_ms,
        "totalCostUsd": outcome.total_cost_usd,
        "numTurns": outcome.num_turns,
        "usage": outcome.usage,
        "stopReason": obj.get("stop_reason"),
        "terminalReason": obj.get("terminal_reason"),
    });
    ParsedMessage {
        message_type: MessageType::Result,
        role: None,
        content: outcome.result.clone().unwrap_or_default(),
        raw: raw.to_owned(),
        metadata: meta,
        outcome: Some(outcome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELTA: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello!"}},"session_id":"s","parent_tool_use_id":null,"uuid":"u","api_message_id":"msg_1"}"#;

    #[test]
    fn text_delta_is_an_assistant_token() {
        let m = parse_line(DELTA).unwrap();
        assert_eq!(m.message_type, MessageType::Assistant);
        assert_eq!(m.content, "Hello!");
        assert_eq!(m.metadata["eventType"], "content_delta");
        assert_eq!(m.metadata["messageId"], "msg_1");
        assert_eq!(m.raw, DELTA);
        assert!(m.outcome.is_none());
    }

    #[test]
    fn message_delta_is_usage_as_system() {
        let line = r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":1,"output_tokens":7}}}"#;
        let m = parse_line(line).unwrap();
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
        ] {
            let line = format!(r#"{{"type":"stream_event","event":{e}}}"#);
            assert_eq!(parse_line(&line), None, "{line}");
        }
    }

    #[test]
    fn result_decides_the_outcome_even_when_type_is_not_first() {
        let line = r#"{"duration_ms":135,"is_error":true,"num_turns":1,"subtype":"success","result":"API Error: 500","total_cost_usd":0.5,"type":"result"}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(m.message_type, MessageType::Result);
        assert_eq!(m.content, "API Error: 500");
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
    fn init_keeps_session_and_model() {
        let line = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"abc","model":"claude-x"}"#;
        let m = parse_line(line).unwrap();
        assert_eq!(m.message_type, MessageType::System);
        assert_eq!(m.metadata["sessionId"], "abc");
        assert_eq!(m.metadata["model"], "claude-x");
    }

    #[test]
    fn garbage_is_an_error_message_and_unknown_is_kept() {
        let m = parse_line("{not json").unwrap();
        assert_eq!(m.message_type, MessageType::Error);
        assert_eq!(m.raw, "{not json");
        let m = parse_line(r#"{"type":"brand_new","x":1}"#).unwrap();
        assert_eq!(m.message_type, MessageType::System);
        assert_eq!(m.raw, r#"{"type":"brand_new","x":1}"#);
        let m = parse_line("[1,2]").unwrap();
        assert_eq!(m.message_type, MessageType::System);
        let m = parse_line(r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"future_delta"}}}"#).unwrap();
        assert_eq!(m.message_type, MessageType::System);
    }
}
