//! The parser: turns one line of an agent's output into the message to store, or
//! into nothing for lines that carry no information a client needs.
//!
//! Pure functions, no I/O: what the runners read goes through here, and so does the synthetic agent's
//! output, so a real agent and the synthetic one share every step after the runner.

pub mod claude;
pub mod codex;
#[cfg(test)]
mod fixtures;
pub mod gemini;

use agentstream_wire::{keys, ErrorCode, ErrorInfo, EventType, MessageType};
use serde_json::Value;

use crate::usage::ReportedUsage;

pub use claude::{parse_bytes, parse_line};

/// The parser of one run's lines: one implementation per output format, made afresh for each run
/// (a format may need what earlier lines of the run said, as the Gemini CLI's failed `result` needs
/// its `error` line).
pub trait LineParser: Send {
    /// Parses one line (without its newline). `None`: the line is deliberately not stored.
    fn parse_line(&mut self, line: &str) -> Option<ParsedMessage>;
    /// Parses one line of raw bytes, not yet known to be UTF-8: by default decoded lossily.
    fn parse_bytes(&mut self, line: &[u8]) -> Option<ParsedMessage> {
        match std::str::from_utf8(line) {
            Ok(text) => self.parse_line(text),
            Err(_) => self.parse_line(&String::from_utf8_lossy(line)),
        }
    }
}

/// Claude Code's `stream-json` (also what the synthetic agent prints): each line on its own.
#[derive(Debug, Default)]
pub struct ClaudeLines;

impl LineParser for ClaudeLines {
    fn parse_line(&mut self, line: &str) -> Option<ParsedMessage> {
        claude::parse_line(line)
    }
    fn parse_bytes(&mut self, line: &[u8]) -> Option<ParsedMessage> {
        claude::parse_bytes(line)
    }
}

/// A message ready to be stored; the persistence actor gives it an id and a sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedMessage {
    pub message_type: MessageType,
    pub role: Option<String>,
    pub content: String,
    /// The line it came from.
    pub raw: String,
    pub metadata: Value,
    /// Set on the line that ends a run (`result`): decides the agent's final status.
    pub outcome: Option<RunOutcome>,
    /// Set on the line that starts a session (`system/init`): kept on the agent.
    pub session: Option<SessionInfo>,
}

/// The `metadata.eventType`s of messages of each type ([`EventType::message_type`]): what a message is
/// always agrees with its type, so no line can pass for another kind of message (the corpus tests and
/// the fuzz target hold every parsed message to it).
pub fn event_types(message_type: MessageType) -> Vec<&'static str> {
    EventType::ALL
        .into_iter()
        .filter(|e| e.message_type() == message_type)
        .map(EventType::as_str)
        .collect()
}

/// The message of one line: its type follows from `event`, which `metadata` names.
pub(crate) fn message(
    event: EventType,
    content: String,
    raw: &str,
    metadata: Value,
) -> ParsedMessage {
    debug_assert_eq!(EventType::of(&metadata), Some(event));
    ParsedMessage {
        message_type: event.message_type(),
        role: None,
        content,
        raw: raw.to_owned(),
        metadata,
        outcome: None,
        session: None,
    }
}

/// How many bytes of a cut line are kept in its message's `raw`.
const OVERSIZED_RAW_BYTES: usize = 4096;

/// The `error` message that stands for a line longer than the limit (its first bytes kept in `raw`).
pub fn oversized_line(len: usize, head: &str, max: usize) -> ParsedMessage {
    let mut cut = head.len().min(OVERSIZED_RAW_BYTES);
    while !head.is_char_boundary(cut) {
        cut -= 1;
    }
    ParsedMessage {
        message_type: EventType::LineTooLong.message_type(),
        role: None,
        content: format!("the agent printed a line of {len} bytes, more than the {max} allowed (runners.max_line_bytes); it was not parsed"),
        raw: head[..cut].to_owned(),
        metadata: serde_json::json!({ (keys::EVENT_TYPE): EventType::LineTooLong, (keys::LENGTH): len }),
        outcome: None,
        session: None,
    }
}

/// The agent CLI's session, from its init line: what `--resume` needs later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: String,
    pub model: Option<String>,
}

/// What a `result` line says about the run it ends.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    /// `is_error: true` means failed, whatever `subtype` says.
    pub is_error: bool,
    pub subtype: Option<String>,
    pub result: Option<String>,
    pub total_cost_usd: Option<f64>,
    pub num_turns: Option<u64>,
    pub usage: Option<Value>,
    pub duration_ms: Option<i64>,
    /// What the turn reported using, normalized: counted on the agent when the line is stored.
    pub reported: Option<ReportedUsage>,
}

impl RunOutcome {
    /// The error to report when the run failed.
    pub fn error(&self) -> Option<ErrorInfo> {
        self.is_error.then(|| {
            ErrorInfo::new(
                ErrorCode::AgentFailed,
                self.result
                    .clone()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| {
                        format!(
                            "the agent reported an error ({})",
                            self.subtype.as_deref().unwrap_or("no subtype")
                        )
                    }),
            )
        })
    }
}
