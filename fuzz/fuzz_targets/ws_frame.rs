//! The WebSocket frame decoder (`ClientEvent::decode`) on arbitrary text frames. Nothing may panic; a
//! frame that decodes re-encodes to one that decodes the same; a refused frame gets one of the
//! documented error codes, a message, and an `error` event that serializes and reads back.

#![no_main]

use agentstream_wire::{ClientEvent, ErrorCode, FrameError, ServerEvent};
use libfuzzer_sys::fuzz_target;

/// The codes `decode` may answer with (PROTOCOL.md, "WebSocket `error` event codes").
const CODES: [ErrorCode; 5] = [
    ErrorCode::InvalidJson,
    ErrorCode::InvalidFrame,
    ErrorCode::InvalidId,
    ErrorCode::InvalidSince,
    ErrorCode::UnknownEvent,
];

fuzz_target!(|data: &[u8]| {
    // A text frame is UTF-8 (the WebSocket layer refuses others): decode what a text frame could be.
    let text = String::from_utf8_lossy(data);
    match ClientEvent::decode(&text) {
        Ok(event) => {
            if let ClientEvent::Subscribe(s) = &event {
                assert!(s.since.is_none_or(|n| n >= 0), "negative since accepted");
            }
            let again = serde_json::to_string(&event).expect("an event serializes");
            assert_eq!(
                ClientEvent::decode(&again).expect("a re-encoded event decodes"),
                event
            );
        }
        Err(e) => {
            assert!(CODES.contains(&e.code), "undocumented code {}", e.code);
            assert!(!e.message.is_empty());
            let frame = ServerEvent::Error(FrameError {
                code: e.code.as_str().to_owned(),
                message: e.message,
                agent_id: e.agent_id,
                recovered: None,
            });
            let json = serde_json::to_string(&frame).expect("an error event serializes");
            let back: ServerEvent = serde_json::from_str(&json).expect("an error event reads back");
            assert_eq!(back, frame);
        }
    }
});
