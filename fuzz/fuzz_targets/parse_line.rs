//! The stream-json parser on arbitrary agent output: the input is split into lines as a runner splits
//! stdout, and every line goes through `parse_bytes` (and `parse_line` when it is UTF-8), as the agent
//! actor does. Nothing may panic, and what comes out must be consistent: `raw` is the line, the
//! message's `metadata.eventType` agrees with its type, only a `result` carries an outcome, and the
//! metadata survives its trip through the database's text column. The cut-line message of an oversized
//! line is checked on the same bytes.

#![no_main]

use agentstream::parser::{event_types, oversized_line, parse_bytes, parse_line, ParsedMessage};
use agentstream_wire::MessageType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let parsed = parse_bytes(line);
        match std::str::from_utf8(line) {
            Ok(text) => {
                assert_eq!(
                    parsed,
                    parse_line(text),
                    "parse_bytes and parse_line differ"
                );
                if let Some(m) = &parsed {
                    assert_eq!(m.raw, text, "raw is not the line");
                }
            }
            Err(_) => {
                let m = parsed.as_ref().expect("a line that is not UTF-8 is stored");
                assert_eq!(m.message_type, MessageType::Error);
                assert_eq!(m.raw, String::from_utf8_lossy(line));
            }
        }
        if let Some(m) = &parsed {
            check(m);
        }
    }
    // The message standing for a line over the limit keeps a prefix of it, at most 4 KiB.
    let head = String::from_utf8_lossy(data);
    let cut = oversized_line(data.len(), &head, data.len() / 2);
    assert!(cut.raw.len() <= 4096 && head.starts_with(&cut.raw));
    check(&cut);
});

/// What any stored message must satisfy.
fn check(m: &ParsedMessage) {
    let kind = m.metadata["eventType"]
        .as_str()
        .expect("metadata.eventType is a string");
    let kinds = event_types(m.message_type);
    assert!(
        kinds.contains(&kind),
        "{:?} with eventType {kind}",
        m.message_type
    );
    assert_eq!(m.outcome.is_some(), m.message_type == MessageType::Result);
    if m.session.is_some() {
        assert_eq!(m.metadata["subtype"], "init");
    }
    if m.message_type == MessageType::Error {
        assert!(!m.content.is_empty(), "an error message says what is wrong");
    }
    // Stored as text, read back with serde_json: it must come back the same.
    let text = m.metadata.to_string();
    let back: serde_json::Value = serde_json::from_str(&text).expect("metadata reads back");
    assert_eq!(back, m.metadata, "metadata changed through its text form");
}
