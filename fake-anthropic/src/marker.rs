//! Markers: finding `[[scenario:NAME key=value ...]]` in the text of a Messages request.
//!
//! Tests script the fake server through the prompt they give the real CLI, because the prompt is
//! the only thing that reliably travels from the test, through the CLI, into every API request.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde_json::Value;

/// The text that opens a marker.
const OPENER: &str = "[[scenario:";

/// A marker as found in the conversation: what the test asked for, before interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Scenario name, e.g. `hello` or `err529`.
    pub name: String,
    /// `key=value` parameters, values already percent-decoded.
    pub params: BTreeMap<String, String>,
    /// The marker text exactly as written; `fail_first` counts attempts per distinct marker.
    pub raw: String,
}

impl Marker {
    /// The marker used when a request carries none, so defaults count like any other marker.
    pub fn default_for(name: &str) -> Marker {
        Marker {
            name: name.to_owned(),
            params: BTreeMap::new(),
            raw: format!("[[default:{name}]]"),
        }
    }
}

/// Returns the last marker in `text`, like a regex `finditer` keeping the last match of
/// `\[\[scenario:([a-z0-9_]+)((?:\s+[a-z_]+=[^\s\]]+)*)\s*\]\]`.
pub fn parse_marker(text: &str) -> Option<Marker> {
    let mut found = None;
    let mut from = 0;
    while let Some(rel) = text[from..].find(OPENER) {
        let start = from + rel;
        match marker_at(text, start) {
            Some((marker, end)) => {
                found = Some(marker);
                from = end;
            }
            None => from = start + 1,
        }
    }
    found
}

/// Parses one marker starting at byte `start` (which holds the opener); returns it and its end.
fn marker_at(text: &str, start: usize) -> Option<(Marker, usize)> {
    let mut pos = start + OPENER.len();
    let name_len = span(&text[pos..], |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
    });
    if name_len == 0 {
        return None;
    }
    let name = text[pos..pos + name_len].to_owned();
    pos += name_len;
    let mut params = BTreeMap::new();
    loop {
        let rest = &text[pos..];
        let ws = span(rest, char::is_whitespace);
        let key_len = span(&rest[ws..], |c| c.is_ascii_lowercase() || c == '_');
        if ws == 0 || key_len == 0 || !rest[ws + key_len..].starts_with('=') {
            break;
        }
        let value_start = ws + key_len + 1;
        let value_len = span(&rest[value_start..], |c| !c.is_whitespace() && c != ']');
        if value_len == 0 {
            break;
        }
        let key = rest[ws..ws + key_len].to_owned();
        let value = &rest[value_start..value_start + value_len];
        params.insert(
            key,
            percent_decode_str(value).decode_utf8_lossy().into_owned(),
        );
        pos += value_start + value_len;
    }
    pos += span(&text[pos..], char::is_whitespace);
    if !text[pos..].starts_with("]]") {
        return None;
    }
    pos += 2;
    let raw = text[start..pos].to_owned();
    Some((Marker { name, params, raw }, pos))
}

/// Length in bytes of the longest prefix of `s` whose characters all satisfy `pred`.
fn span(s: &str, pred: impl Fn(char) -> bool) -> usize {
    s.char_indices()
        .find(|&(_, c)| !pred(c))
        .map_or(s.len(), |(i, _)| i)
}

/// Where a piece of message text came from: markers are only read from plain text, tool output
/// is what the second turn of `tool`/`read` quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    /// A string content or a `text` block.
    Text,
    /// Text inside a `tool_result` block.
    ToolResult,
}

/// The texts of one message `content` (a string or an array of blocks), tagged by origin.
fn content_texts(content: Option<&Value>) -> Vec<(TextKind, &str)> {
    let mut out = Vec::new();
    match content {
        Some(Value::String(s)) => out.push((TextKind::Text, s.as_str())),
        Some(Value::Array(blocks)) => {
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => out.push((TextKind::Text, str_field(block, "text"))),
                    Some("tool_result") => match block.get("content") {
                        Some(Value::String(s)) => out.push((TextKind::ToolResult, s.as_str())),
                        Some(Value::Array(subs)) => out.extend(
                            subs.iter()
                                .filter(|s| s.get("type").and_then(Value::as_str) == Some("text"))
                                .map(|s| (TextKind::ToolResult, str_field(s, "text"))),
                        ),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

/// A string field of a JSON object, or `""`.
fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// What a Messages request asks for: its marker and the tool outputs it carries back.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// The marker in effect (the default one when the request has none).
    pub marker: Marker,
    /// Tool outputs in the last message, when that message is the user's.
    pub tool_results: Vec<String>,
}

/// Picks the marker of a Messages request body: the latest user message whose text carries one,
/// else the system prompt (side requests embed the conversation there), else `default_name`.
pub fn select(body: &Value, default_name: &str) -> Selection {
    let empty = Vec::new();
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let from_messages = messages.iter().rev().filter(|m| is_user(m)).find_map(|m| {
        let text: Vec<&str> = content_texts(m.get("content"))
            .into_iter()
            .filter(|(k, _)| *k == TextKind::Text)
            .map(|(_, t)| t)
            .collect();
        parse_marker(&text.join("\n"))
    });
    let marker = from_messages
        .or_else(|| parse_marker(&system_text(body.get("system"))))
        .unwrap_or_else(|| Marker::default_for(default_name));
    let tool_results = match messages.last() {
        Some(last) if is_user(last) => content_texts(last.get("content"))
            .into_iter()
            .filter(|(k, _)| *k == TextKind::ToolResult)
            .map(|(_, t)| t.to_owned())
            .collect(),
        _ => Vec::new(),
    };
    Selection {
        marker,
        tool_results,
    }
}

/// True for a message with `role: user`.
fn is_user(message: &Value) -> bool {
    message.get("role").and_then(Value::as_str) == Some("user")
}

/// The system prompt as one string (it may be a string or an array of text blocks).
fn system_text(system: Option<&Value>) -> String {
    match system {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.is_object())
            .map(|b| str_field(b, "text"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Unit tests of this module's pure functions.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Markers carry a name and percent-decoded parameters.
    #[test]
    fn parses_name_and_decoded_params() {
        let m = parse_marker("run [[scenario:tool cmd=touch%20x.txt  delay_ms=5 ]] now").unwrap();
        assert_eq!(m.name, "tool");
        assert_eq!(m.params["cmd"], "touch x.txt");
        assert_eq!(m.params["delay_ms"], "5");
        assert_eq!(m.raw, "[[scenario:tool cmd=touch%20x.txt  delay_ms=5 ]]");
    }

    /// Parsing must follow the reference regex: last valid marker wins.
    #[test]
    fn last_marker_wins_and_malformed_ones_are_skipped() {
        let m = parse_marker("[[scenario:long]] [[scenario:Bad]] [[scenario:hello x]] [[scenario:err500 fail_first=2]]").unwrap();
        assert_eq!(m.name, "err500");
        assert!(parse_marker("[[scenario:hello x]]").is_none());
        assert!(parse_marker("[[scenario:]]").is_none());
        assert!(parse_marker("no marker").is_none());
        assert_eq!(
            parse_marker("[[scenario:x [[scenario:hello]]")
                .unwrap()
                .name,
            "hello"
        );
    }

    /// Markers come from user text only; tool output is collected separately.
    #[test]
    fn select_prefers_latest_user_text_and_collects_tool_results() {
        let body = json!({"messages": [
            {"role": "user", "content": "first [[scenario:tool cmd=ls]]"},
            {"role": "assistant", "content": [{"type": "text", "text": "[[scenario:long]]"}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": "out [[scenario:drop]]"},
                {"type": "tool_result", "tool_use_id": "u", "content": [{"type": "text", "text": "two"}]}
            ]}
        ]});
        let sel = select(&body, "hello");
        assert_eq!(sel.marker.name, "tool");
        assert_eq!(sel.tool_results, vec!["out [[scenario:drop]]", "two"]);
    }

    /// Without a marker in messages, the system prompt and then the default apply.
    #[test]
    fn select_falls_back_to_system_then_default() {
        let body = json!({"system": [{"type": "text", "text": "x [[scenario:thinking]]"}],
                          "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(select(&body, "hello").marker.name, "thinking");
        let sel = select(&json!({"messages": 3}), "long");
        assert_eq!(sel.marker, Marker::default_for("long"));
    }
}
