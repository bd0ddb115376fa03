//! `stream_event` lines: the pieces of a model message as they stream (tokens, thinking, tool input,
//! block starts, the message's end). A text token is nearly every line of a run, so it has a path of
//! its own ([`text_token`]) that reads borrowed fields instead of a `Value` tree.

use agentstream_wire::{keys, EventType};
use serde_json::{Map, Value};

use super::{copy, message, meta, str_of, unknown};
use crate::parser::ParsedMessage;

/// A text token's line, the shape of nearly every line of a run, read into borrowed fields instead of a
/// `Value` tree. `None` for anything else — or anything unusual about it (escaped keys, a duplicate
/// field, an `index` that is not a plain integer…): the general path handles those, and a test holds
/// both paths equal on every line they both take.
pub(super) fn text_token(line: &str) -> Option<ParsedMessage> {
    use std::borrow::Cow;

    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
        #[serde(borrow)]
        event: Event<'a>,
        #[serde(default, borrow)]
        api_message_id: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        parent_tool_use_id: Option<Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
        #[serde(default)]
        index: Option<u64>,
        #[serde(borrow)]
        delta: Delta<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Delta<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
        #[serde(borrow)]
        text: Cow<'a, str>,
    }

    let parsed: Line<'_> = serde_json::from_str(line).ok()?;
    if (parsed.kind, parsed.event.kind, parsed.event.delta.kind)
        != ("stream_event", "content_block_delta", "text_delta")
    {
        return None;
    }
    let mut meta = Map::new();
    meta.insert(
        keys::EVENT_TYPE.into(),
        Value::from(EventType::ContentDelta.as_str()),
    );
    if let Some(index) = parsed.event.index {
        meta.insert("blockIndex".into(), Value::from(index));
    }
    if let Some(id) = parsed.api_message_id {
        meta.insert("messageId".into(), Value::from(id.into_owned()));
    }
    if let Some(id) = parsed.parent_tool_use_id {
        meta.insert("parentToolUseId".into(), Value::from(id.into_owned()));
    }
    Some(message(
        EventType::ContentDelta,
        parsed.event.delta.text.into_owned(),
        line,
        Value::Object(meta),
    ))
}

pub(super) fn stream_event(obj: &Map<String, Value>, raw: &str) -> Option<ParsedMessage> {
    let Some(event) = obj.get("event").and_then(Value::as_object) else {
        return Some(unknown(raw));
    };
    // Fields every stored stream event carries, when the line has them.
    let base = |event_type: EventType| {
        let mut meta = meta(event_type);
        copy(&mut meta, event, &[("index", "blockIndex")]);
        copy(
            &mut meta,
            obj,
            &[
                ("api_message_id", "messageId"),
                ("parent_tool_use_id", "parentToolUseId"),
            ],
        );
        meta
    };
    match str_of(event.get("type")) {
        Some("message_start" | "content_block_stop") => None,
        Some("message_stop") => {
            let abandoned = obj.get("abandoned_blocks").and_then(Value::as_object)?;
            let mut meta = base(EventType::AbandonedBlocks);
            copy(
                &mut meta,
                abandoned,
                &[
                    ("api_message_id", "messageId"),
                    ("from_block_index", "fromBlockIndex"),
                ],
            );
            Some(message(
                EventType::AbandonedBlocks,
                String::new(),
                raw,
                meta,
            ))
        }
        Some("content_block_start") => {
            let block = event.get("content_block").and_then(Value::as_object);
            match block.and_then(|b| str_of(b.get("type"))) {
                Some("text" | "thinking" | "redacted_thinking") => None,
                Some("tool_use" | "server_tool_use" | "mcp_tool_use") => {
                    let block = block?;
                    let name = str_of(block.get("name")).unwrap_or_default().to_owned();
                    let mut meta = base(EventType::ToolUse);
                    copy(
                        &mut meta,
                        block,
                        &[("id", "toolUseId"), ("name", "toolName")],
                    );
                    let mut m = message(EventType::ToolUse, name, raw, meta);
                    m.role = Some("assistant".into());
                    Some(m)
                }
                _ => Some(unknown(raw)),
            }
        }
        Some("content_block_delta") => {
            let delta = event.get("delta").and_then(Value::as_object);
            let field = |name: &str| {
                str_of(delta.and_then(|d| d.get(name)))
                    .unwrap_or_default()
                    .to_owned()
            };
            match delta.and_then(|d| str_of(d.get("type"))) {
                Some("text_delta") => Some(message(
                    EventType::ContentDelta,
                    field("text"),
                    raw,
                    base(EventType::ContentDelta),
                )),
                Some("thinking_delta") => Some(message(
                    EventType::ThinkingDelta,
                    field("thinking"),
                    raw,
                    base(EventType::ThinkingDelta),
                )),
                Some("input_json_delta") => Some(message(
                    EventType::ToolInputDelta,
                    field("partial_json"),
                    raw,
                    base(EventType::ToolInputDelta),
                )),
                Some("signature_delta") => Some(message(
                    EventType::SignatureDelta,
                    String::new(),
                    raw,
                    base(EventType::SignatureDelta),
                )),
                _ => Some(unknown(raw)),
            }
        }
        Some("message_delta") => {
            let mut meta = base(EventType::MessageDelta);
            meta["usage"] = event.get("usage").cloned().unwrap_or(Value::Null);
            if let Some(reason) = event.get("delta").and_then(|d| d.get("stop_reason")) {
                meta["stopReason"] = reason.clone();
            }
            Some(message(EventType::MessageDelta, String::new(), raw, meta))
        }
        _ => Some(unknown(raw)),
    }
}

#[cfg(test)]
mod tests {
    /// Every line both paths take gives the same message, for the fixtures' real lines and for lines
    /// built to trip the fast path; and the fast path does take the usual token line.
    #[test]
    fn the_token_fast_path_agrees_with_the_general_path() {
        let mut lines: Vec<String> = Vec::new();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/claude");
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            lines.extend(text.lines().map(str::to_owned));
        }
        let token = |rest: &str| {
            format!(
                r#"{{"type":"stream_event","event":{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"hi"}}}}{rest}}}"#
            )
        };
        lines.extend([
            token(r#","session_id":"s","parent_tool_use_id":null,"uuid":"u","api_message_id":"msg_1""#),
            token(r#","parent_tool_use_id":"toolu_1","api_message_id":null"#),
            token(r#","api_message_id":7"#),
            token(r#","api_message_id":"a","api_message_id":"b""#),
            token(r#","type":"assistant""#),
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"x"}}}"#.into(),
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1.5,"delta":{"type":"text_delta","text":"x"}}}"#.into(),
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":null,"delta":{"type":"text_delta","text":"a \"q\" \u00e9 \ud83e\udd80"}}}"#.into(),
            r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":7}}}"#.into(),
            r#"{"type":"stream\u005fevent","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}}"#.into(),
            r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":"x"}}}"#.into(),
            r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}} trailing"#.into(),
        ]);
        let mut taken = 0;
        for line in &lines {
            if let Some(fast) = super::text_token(line) {
                taken += 1;
                assert_eq!(Some(fast), super::super::parse_general(line), "{line}");
            }
        }
        assert!(taken >= 4, "the fast path took only {taken} lines");
        assert!(super::text_token(&token(r#","api_message_id":"msg_1""#)).is_some());
    }
}
