//! JSON text written by hand where serde_json's general path is the hot spot: escaping a string. The
//! frame of every `agent:message` carries the agent's raw line as a JSON string — a line that is itself
//! JSON, dense with quotes — and escaping it byte by byte through `io::Write` costs a quarter of the
//! persistence thread's time. Here clean runs are skipped eight bytes at a time and each clean stretch
//! is copied at once into a buffer reserved up front. The output is exactly serde_json's (a test holds
//! them equal on every byte value and on random text).

use agentstream_wire::MessageType;
use serde_json::Value;
use uuid::Uuid;

/// The metadata of a message: JSON text already written, or a value to write.
pub enum Metadata<'a> {
    Text(&'a str),
    Value(&'a Value),
}

/// An `agent:message` event, written as exactly the JSON of `ServerEvent::AgentMessage` (tests hold
/// them equal) without building the event: for every message stored, and every message replayed.
pub struct AgentMessageFrame<'a> {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub sequence_number: i64,
    pub message_type: MessageType,
    pub role: Option<&'a str>,
    pub content: &'a str,
    pub raw: Option<&'a str>,
    pub metadata: Metadata<'a>,
    pub created_at: &'a str,
    pub timestamp: &'a str,
}

impl AgentMessageFrame<'_> {
    /// The frame's JSON text.
    pub fn to_json(&self) -> String {
        let mut uuid = Uuid::encode_buffer();
        let raw_len = self.raw.map_or(0, str::len);
        let mut out = Vec::with_capacity(320 + 2 * (self.content.len() + raw_len));
        out.extend_from_slice(br#"{"event":"agent:message","data":{"agentId":""#);
        out.extend_from_slice(
            self.agent_id
                .hyphenated()
                .encode_lower(&mut uuid)
                .as_bytes(),
        );
        out.extend_from_slice(br#"","message":"#);
        self.push_message(&mut out);
        out.extend_from_slice(br#","timestamp":"#);
        push_str(&mut out, self.timestamp);
        out.extend_from_slice(b"}}");
        // Only valid UTF-8 went in (str slices, ASCII escapes); the fallback is never taken.
        String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The message alone, as the protocol's message object (what REST returns).
    fn push_message(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let mut uuid = Uuid::encode_buffer();
        out.extend_from_slice(br#"{"id":""#);
        out.extend_from_slice(self.id.hyphenated().encode_lower(&mut uuid).as_bytes());
        out.extend_from_slice(br#"","agentId":""#);
        out.extend_from_slice(
            self.agent_id
                .hyphenated()
                .encode_lower(&mut uuid)
                .as_bytes(),
        );
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            r#"","sequenceNumber":{},"type":""#,
            self.sequence_number
        );
        out.extend_from_slice(self.message_type.as_str().as_bytes());
        out.extend_from_slice(br#"","role":"#);
        push_opt_str(out, self.role);
        out.extend_from_slice(br#","content":"#);
        push_str(out, self.content);
        out.extend_from_slice(br#","raw":"#);
        push_opt_str(out, self.raw);
        out.extend_from_slice(br#","metadata":"#);
        match self.metadata {
            Metadata::Text(text) => out.extend_from_slice(text.as_bytes()),
            Metadata::Value(value) => {
                if serde_json::to_writer(&mut *out, value).is_err() {
                    out.extend_from_slice(b"null");
                }
            }
        }
        out.extend_from_slice(br#","createdAt":"#);
        push_str(out, self.created_at);
        out.push(b'}');
    }
}

impl<'a> AgentMessageFrame<'a> {
    /// The `agent:message` event of a stored `message`.
    pub fn of(message: &'a agentstream_wire::StoredMessage, timestamp: &'a str) -> Self {
        AgentMessageFrame {
            id: message.id,
            agent_id: message.agent_id,
            sequence_number: message.sequence_number,
            message_type: message.message_type,
            role: message.role.as_deref(),
            content: &message.content,
            raw: message.raw.as_deref(),
            metadata: Metadata::Value(&message.metadata),
            created_at: &message.created_at,
            timestamp,
        }
    }
}

/// Appends `message` as the protocol's message object: exactly serde_json's text of it (a test holds
/// them equal), with the fast string escaping — a history's last `result` line carries the whole answer
/// twice (content and raw), over a megabyte for a long one.
pub fn push_message(out: &mut Vec<u8>, message: &agentstream_wire::StoredMessage) {
    AgentMessageFrame::of(message, "").push_message(out);
}

/// A `Value` as JSON text, the same as its `to_string()`: through a byte buffer rather than `Display`,
/// whose formatter adapter cost a message's metadata twice as much (one per stored message).
pub fn value_text(value: &serde_json::Value) -> String {
    let mut out = Vec::with_capacity(128);
    // Writing a `Value` into a `Vec` cannot fail: its keys are strings, and a `Vec` takes any byte.
    if serde_json::to_writer(&mut out, value).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}

/// A JSON string, or `null`.
fn push_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// What a byte becomes inside a JSON string: 0 stays as it is, `u` is `\u00XX`, anything else is that
/// letter after a backslash (as serde_json writes them).
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `chunk` may need escaping (a quote, a backslash or a control
/// character). It may say yes for a clean chunk (then it is looked at byte by byte), never no for one
/// that is not.
#[inline]
fn may_need_escape(chunk: u64) -> bool {
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero_byte(chunk ^ (ONES * b'"' as u64));
    let backslash = zero_byte(chunk ^ (ONES * b'\\' as u64));
    // Bytes below 0x20 (bytes of 0x80 and above have their high bit set in `chunk`, so never count).
    let control = chunk.wrapping_sub(ONES * 0x20) & !chunk & HIGHS;
    (quote | backslash | control) != 0
}

/// Appends `s` as a JSON string (quoted and escaped) to `out`.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !may_need_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        // Byte by byte through this chunk (or the tail).
        let end = (i + 8).min(bytes.len());
        while i < end {
            let byte = bytes[i];
            let escape = ESCAPE[byte as usize];
            if escape != 0 {
                out.extend_from_slice(&bytes[start..i]);
                push_escape(out, byte, escape);
                start = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The escape sequence of one byte.
fn push_escape(out: &mut Vec<u8>, byte: u8, escape: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if escape == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 0xf) as usize],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, s);
        String::from_utf8(out).expect("valid UTF-8 out of valid UTF-8")
    }

    #[test]
    fn value_text_is_the_values_to_string() {
        let values = [
            serde_json::json!({"eventType": "content_delta", "blockIndex": 0, "messageId": "msg_1"}),
            serde_json::json!({"z": [1.5, -0.0, 1e300, null, true], "a": {"nested": "quote \" nl \n 🦀 \u{0}"}}),
            serde_json::json!(null),
            serde_json::json!("text"),
            serde_json::json!(18446744073709551615u64),
        ];
        for value in values {
            assert_eq!(value_text(&value), value.to_string());
        }
    }

    #[test]
    fn a_replayed_frame_is_exactly_the_protocols_agent_message() {
        use agentstream_wire::{AgentMessage, ServerEvent, StoredMessage};
        let message = StoredMessage {
            id: Uuid::now_v7(),
            agent_id: Uuid::now_v7(),
            sequence_number: 7,
            message_type: MessageType::Tool,
            role: None,
            content: "tab\t quote \" 🦀".into(),
            raw: None,
            metadata: serde_json::json!({"toolName": "Bash", "input": {"command": "ls \"a\""}, "n": 1.5}),
            created_at: "2026-11-26T10:00:00.000Z".into(),
        };
        let theirs = serde_json::to_string(&ServerEvent::AgentMessage(AgentMessage {
            agent_id: message.agent_id,
            message: message.clone(),
            timestamp: "ts".into(),
        }))
        .unwrap();
        let ours = AgentMessageFrame::of(&message, "ts").to_json();
        assert_eq!(ours, theirs);
        let mut alone = Vec::new();
        push_message(&mut alone, &message);
        assert_eq!(
            String::from_utf8(alone).unwrap(),
            serde_json::to_string(&message).unwrap()
        );
    }

    #[test]
    fn every_ascii_byte_at_every_offset_is_escaped_as_serde_json_does() {
        for byte in 0u8..0x80 {
            let c = byte as char;
            for offset in 0..17 {
                let s: String = "a".repeat(offset) + &c.to_string() + "é🦀" + &"b".repeat(offset);
                assert_eq!(
                    ours(&s),
                    serde_json::to_string(&s).unwrap(),
                    "{byte:#x} at {offset}"
                );
            }
        }
    }

    #[test]
    fn random_text_is_escaped_as_serde_json_does() {
        // A small deterministic generator: no dependency, same cases every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "\"\\\n\r\t\u{0}\u{1f}\u{7f}abc xyz{}:,é€🦀\u{2028}\u{8}\u{c}"
            .chars()
            .collect();
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(ours(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
        }
        let line = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" word"}},"session_id":"0c45e3a8","parent_tool_use_id":null}"#;
        assert_eq!(ours(line), serde_json::to_string(line).unwrap());
        assert_eq!(ours(""), "\"\"");
    }
}
