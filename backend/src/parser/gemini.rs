//! The Gemini CLI's `stream-json` lines (`gemini -o stream-json`, as 0.61.x prints them), mapped onto the
//! same messages as Claude Code's, so that clients show text, tool cards and the result alike:
//!
//! | line | stored as | `eventType` |
//! |---|---|---|
//! | `init` | `system`; its session is kept on the agent | `system` (`subtype` `init`) |
//! | `message`, `role` `user` (the prompt) | `user` | `user_message` |
//! | `message`, `role` `assistant` (a chunk) | `assistant`, the chunk | `content_delta` |
//! | `tool_use` | `tool`, the tool's name; `input`: its parameters | `tool_use` |
//! | `tool_result` | `tool`, the output (or the error) | `tool_result` |
//! | `error` (an empty or blocked reply) | `system`, the message | `system` (`subtype` `error`) |
//! | `result` | `result`, the error when it failed; `usage`: the CLI's `stats` | `result` |
//! | any other line, JSON or not (a warning printed on stdout) | `system`, the line itself | `unknown` |
//!
//! Whether a run failed is the `result` line's `status`, never the exit code (an API error exits with
//! the HTTP status mod 256, an empty reply with 0). A failed `result` after an empty or blocked reply
//! carries no message: the run's last `error` line says why, so a run's lines go through one
//! [`GeminiLines`], which remembers it.

use agentstream_wire::{keys, EventType};
use serde_json::{json, Map, Value};

use super::{message, ParsedMessage, RunOutcome, SessionInfo};

/// The parser of one run's lines.
#[derive(Debug, Default)]
pub struct GeminiLines {
    /// The message of the run's last `error` line.
    last_error: Option<String>,
}

impl GeminiLines {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one line (without its newline). Every line is stored: `None` only for an empty one.
    pub fn parse_line(&mut self, line: &str) -> Option<ParsedMessage> {
        if line.trim().is_empty() {
            return None;
        }
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line) else {
            return Some(unknown(line));
        };
        Some(match obj.get("type").and_then(Value::as_str) {
            Some("init") => init(&obj, line),
            Some("message") => text(&obj, line),
            Some("tool_use") => tool_use(&obj, line),
            Some("tool_result") => tool_result(&obj, line),
            Some("error") => {
                let said = str_of(obj.get("message")).unwrap_or_default().to_owned();
                self.last_error = Some(said.clone());
                let meta = json!({
                    (keys::EVENT_TYPE): EventType::System,
                    (keys::SUBTYPE): "error",
                    "severity": obj.get("severity"),
                });
                message(EventType::System, said, line, meta)
            }
            Some("result") => self.result(&obj, line),
            _ => unknown(line),
        })
    }

    fn result(&mut self, obj: &Map<String, Value>, line: &str) -> ParsedMessage {
        let status = str_of(obj.get("status")).unwrap_or("unknown");
        let is_error = status != "success";
        let stats = obj.get("stats").filter(|s| s.is_object()).cloned();
        let result = obj
            .get("error")
            .and_then(|e| str_of(e.get("message")))
            .map(str::to_owned)
            .or_else(|| is_error.then(|| self.last_error.take()).flatten());
        let outcome = RunOutcome {
            is_error,
            subtype: Some(status.to_owned()),
            result,
            total_cost_usd: None,
            num_turns: None,
            duration_ms: stats
                .as_ref()
                .and_then(|s| s.get("duration_ms"))
                .and_then(Value::as_i64),
            reported: crate::usage::cli::gemini(stats.as_ref()),
            usage: stats,
        };
        let meta = json!({
            (keys::EVENT_TYPE): EventType::Result,
            (keys::SUBTYPE): status,
            (keys::IS_ERROR): is_error,
            (keys::DURATION_MS): outcome.duration_ms,
            (keys::USAGE): outcome.usage,
        });
        ParsedMessage {
            outcome: Some(outcome.clone()),
            ..message(
                EventType::Result,
                outcome.result.unwrap_or_default(),
                line,
                meta,
            )
        }
    }
}

impl super::LineParser for GeminiLines {
    fn parse_line(&mut self, line: &str) -> Option<ParsedMessage> {
        GeminiLines::parse_line(self, line)
    }
}

fn init(obj: &Map<String, Value>, line: &str) -> ParsedMessage {
    let model = str_of(obj.get("model"));
    let meta = json!({
        (keys::EVENT_TYPE): EventType::System,
        (keys::SUBTYPE): "init",
        (keys::SESSION_ID): obj.get("session_id"),
        (keys::MODEL): model,
    });
    let content = match model {
        Some(model) => format!("session started with model {model}"),
        None => "session started".to_owned(),
    };
    ParsedMessage {
        session: str_of(obj.get("session_id")).map(|id| SessionInfo {
            session_id: id.to_owned(),
            model: model.map(str::to_owned),
        }),
        ..message(EventType::System, content, line, meta)
    }
}

fn text(obj: &Map<String, Value>, line: &str) -> ParsedMessage {
    let content = str_of(obj.get("content")).unwrap_or_default().to_owned();
    match str_of(obj.get("role")) {
        Some("assistant") => message(
            EventType::ContentDelta,
            content,
            line,
            json!({(keys::EVENT_TYPE): EventType::ContentDelta}),
        ),
        Some("user") => ParsedMessage {
            role: Some("user".to_owned()),
            ..message(
                EventType::UserMessage,
                content,
                line,
                json!({(keys::EVENT_TYPE): EventType::UserMessage}),
            )
        },
        _ => unknown(line),
    }
}

fn tool_use(obj: &Map<String, Value>, line: &str) -> ParsedMessage {
    let name = str_of(obj.get("tool_name")).unwrap_or("tool").to_owned();
    let meta = json!({
        (keys::EVENT_TYPE): EventType::ToolUse,
        (keys::TOOL_NAME): name,
        (keys::TOOL_USE_ID): obj.get("tool_id"),
        (keys::INPUT): obj.get("parameters"),
    });
    message(EventType::ToolUse, name, line, meta)
}

fn tool_result(obj: &Map<String, Value>, line: &str) -> ParsedMessage {
    let is_error = str_of(obj.get("status")) != Some("success");
    let error = obj.get("error");
    let output = str_of(obj.get("output")).unwrap_or_default();
    let content = match error.and_then(|e| str_of(e.get("message"))) {
        Some(said) if is_error && output.is_empty() => said.to_owned(),
        _ => output.to_owned(),
    };
    let meta = json!({
        (keys::EVENT_TYPE): EventType::ToolResult,
        (keys::TOOL_USE_ID): obj.get("tool_id"),
        (keys::IS_ERROR): is_error,
        "errorType": error.and_then(|e| e.get("type")),
    });
    message(EventType::ToolResult, content, line, meta)
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
    use std::path::PathBuf;

    use agentstream_wire::MessageType;

    use super::*;
    use crate::parser::LineParser;

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemini")
    }

    fn parse_fixture(name: &str) -> Vec<ParsedMessage> {
        let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
        let mut lines = GeminiLines::new();
        text.lines().filter_map(|l| lines.parse_line(l)).collect()
    }

    fn of(messages: &[ParsedMessage], event: EventType) -> Vec<&ParsedMessage> {
        messages
            .iter()
            .filter(|m| EventType::of(&m.metadata) == Some(event))
            .collect()
    }

    fn outcome(messages: &[ParsedMessage]) -> &RunOutcome {
        messages
            .iter()
            .rev()
            .find_map(|m| m.outcome.as_ref())
            .expect("a result")
    }

    #[test]
    fn every_line_of_every_captured_run_is_stored_as_what_it_is() {
        let mut files = 0;
        for entry in std::fs::read_dir(fixture_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let mut parser = GeminiLines::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let m = parser.parse_line(line).expect("every line is stored");
                assert_eq!(m.raw, line);
                let event = EventType::of(&m.metadata).expect("an event type");
                assert_eq!(m.message_type, event.message_type(), "{line}");
                // Every line of the real CLI has a known shape.
                assert_ne!(event, EventType::Unknown, "{}: {line}", path.display());
            }
        }
        assert!(files >= 20, "{files} fixture files");
    }

    #[test]
    fn a_long_answer_is_its_2000_chunks_in_order_then_a_successful_result() {
        let messages = parse_fixture("02_long_2000_chunks.jsonl");
        let deltas = of(&messages, EventType::ContentDelta);
        assert_eq!(deltas.len(), 2000);
        let expected: String =
            std::fs::read_to_string(fixture_dir().join("02_long_2000_chunks.jsonl"))
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["type"] == "message" && v["role"] == "assistant")
                .map(|v| v["content"].as_str().unwrap_or_default().to_owned())
                .collect();
        let text: String = deltas.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(text, expected);
        let done = outcome(&messages);
        assert!(!done.is_error);
        assert!(done
            .usage
            .as_ref()
            .is_some_and(|u| u["output_tokens"].is_u64()));
        assert_eq!(
            messages[0].session.as_ref().map(|s| s.session_id.len()),
            Some(36)
        );
    }

    #[test]
    fn a_tool_round_trip_is_a_tool_card_with_its_input_and_output() {
        let messages = parse_fixture("03_tool_shell_echo_yolo.jsonl");
        let used = of(&messages, EventType::ToolUse);
        let results = of(&messages, EventType::ToolResult);
        assert_eq!((used.len(), results.len()), (1, 1));
        assert_eq!(used[0].content, "run_shell_command");
        assert_eq!(used[0].metadata[keys::INPUT]["command"], "echo hi");
        assert_eq!(
            used[0].metadata[keys::TOOL_USE_ID],
            results[0].metadata[keys::TOOL_USE_ID]
        );
        assert_eq!(results[0].content, "hi");
        assert_eq!(results[0].metadata[keys::IS_ERROR], false);
        assert!(!outcome(&messages).is_error);
        // A tool the CLI does not offer: an error result, with its reason.
        let messages = parse_fixture("05_tool_shell_default_approval.jsonl");
        let results = of(&messages, EventType::ToolResult);
        assert!(results.iter().any(|r| r.metadata[keys::IS_ERROR] == true
            && r.metadata["errorType"] == "tool_not_registered"
            && !r.content.is_empty()));
    }

    #[test]
    fn an_empty_or_blocked_reply_fails_with_the_clis_error_line() {
        for file in ["07_empty_response.jsonl", "08_safety_blocked.jsonl"] {
            let messages = parse_fixture(file);
            let done = outcome(&messages);
            assert!(done.is_error, "{file}");
            let error = done.error().expect("an error");
            let line = of(&messages, EventType::System)
                .into_iter()
                .find(|m| m.metadata[keys::SUBTYPE] == "error")
                .expect("an error line");
            assert_eq!(error.message, line.content, "{file}");
            assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn an_api_error_fails_with_the_apis_message() {
        let messages = parse_fixture("10_err500_maxattempts2.jsonl");
        let error = outcome(&messages).error().expect("failed");
        assert!(
            error.message.contains("Internal error encountered"),
            "{error:?}"
        );
        let messages = parse_fixture("12_err401_auth.jsonl");
        assert!(outcome(&messages).is_error);
    }

    #[test]
    fn a_line_of_no_known_shape_is_kept_whole_as_a_system_message() {
        let mut parser = GeminiLines::new();
        for line in [
            "Warning: 256-color support not detected",
            r#"{"type":"dance","steps":3}"#,
            "[1,2,3]",
        ] {
            let m = parser.parse_line(line).expect("stored");
            assert_eq!(m.message_type, MessageType::System);
            assert_eq!(EventType::of(&m.metadata), Some(EventType::Unknown));
            assert_eq!((m.content.as_str(), m.raw.as_str()), (line, line));
        }
        assert!(parser.parse_line("").is_none());
        // Not UTF-8: decoded lossily, still stored.
        let m = parser.parse_bytes(b"caf\xe9 au lait").expect("stored");
        assert!(m.content.starts_with("caf"));
    }
}
