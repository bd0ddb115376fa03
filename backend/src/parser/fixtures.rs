//! The parser against real Claude Code output: every line of every captured run in
//! `backend/tests/fixtures/claude/` parses without loss, and the messages tell the same story as the
//! CLI's own final `result`.

use std::path::PathBuf;

use agentstream_wire::MessageType;

use super::{parse_line, ParsedMessage};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude")
}

/// Every stored message of a fixture file, with the number of lines that were not stored.
fn parse_fixture(name: &str) -> (Vec<ParsedMessage>, usize) {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
    let mut skipped = 0;
    let messages = text
        .lines()
        .filter_map(|line| {
            let parsed = parse_line(line);
            skipped += usize::from(parsed.is_none());
            parsed
        })
        .collect();
    (messages, skipped)
}

fn joined(messages: &[ParsedMessage], event_type: &str) -> String {
    messages
        .iter()
        .filter(|m| m.metadata["eventType"] == event_type)
        .map(|m| m.content.as_str())
        .collect()
}

fn result_of(messages: &[ParsedMessage]) -> &ParsedMessage {
    messages
        .iter()
        .rev()
        .find(|m| m.message_type == MessageType::Result)
        .expect("a result message")
}

#[test]
fn every_line_of_every_fixture_is_understood() {
    let mut files = 0;
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let path = entry.unwrap().path();
        // `*.stdin.jsonl`: what was written to the CLI, not its output.
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".jsonl") || name.ends_with(".stdin.jsonl") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let Some(m) = parse_line(line) else { continue };
            assert_ne!(
                m.message_type,
                MessageType::Error,
                "{}: {line}",
                path.display()
            );
            assert_eq!(m.raw, line);
            if m.metadata["eventType"] == "unknown" {
                // The only line kind not modelled: answers to control requests sent on stdin.
                assert!(
                    line.starts_with(r#"{"type":"control_response""#),
                    "{}: {line}",
                    path.display()
                );
            }
        }
    }
    assert!(files >= 30, "fixtures missing: {files}");
}

#[test]
fn hello_tokens_join_into_the_final_answer() {
    let (messages, skipped) = parse_fixture("01_hello.jsonl");
    assert_eq!(
        skipped, 4,
        "message_start, content_block_start, content_block_stop, message_stop"
    );
    let result = result_of(&messages);
    assert_eq!(joined(&messages, "content_delta"), result.content);
    assert_eq!(joined(&messages, "assistant_message"), result.content);
    let init = &messages[0];
    assert!(init
        .session
        .as_ref()
        .is_some_and(|s| s.model.as_deref() == Some("claude-opus-5-5")));
    assert!(!result.outcome.as_ref().unwrap().is_error);
}

#[test]
fn tool_round_trip_streams_the_call_and_its_result() {
    let (messages, _) = parse_fixture("04_tool_bash_echo.jsonl");
    let start = messages
        .iter()
        .find(|m| m.metadata["eventType"] == "tool_use")
        .unwrap();
    assert_eq!(start.content, "Bash");
    let input: serde_json::Value =
        serde_json::from_str(&joined(&messages, "tool_input_delta")).unwrap();
    let whole = messages
        .iter()
        .find(|m| {
            m.metadata["eventType"] == "assistant_message" && m.metadata["blockType"] == "tool_use"
        })
        .unwrap();
    assert_eq!(
        input,
        serde_json::from_str::<serde_json::Value>(&whole.content).unwrap()
    );
    let result = messages
        .iter()
        .find(|m| m.metadata["eventType"] == "tool_result")
        .unwrap();
    assert_eq!(
        (result.message_type, result.content.as_str()),
        (MessageType::Tool, "hi")
    );
    assert_eq!(result.metadata["toolUseId"], start.metadata["toolUseId"]);
    assert_eq!(
        result_of(&messages).outcome.as_ref().unwrap().num_turns,
        Some(2)
    );
}

#[test]
fn thinking_deltas_join_into_the_thinking_block() {
    let (messages, _) = parse_fixture("06_thinking.jsonl");
    let whole = messages
        .iter()
        .find(|m| m.metadata["blockType"] == "thinking")
        .unwrap();
    assert_eq!(joined(&messages, "thinking_delta"), whole.content);
}

#[test]
fn api_errors_fail_even_with_subtype_success() {
    for (file, text) in [
        ("10_err500_retries2.jsonl", "API Error: 500"),
        ("12_err401_auth.jsonl", "Invalid API key"),
    ] {
        let (messages, _) = parse_fixture(file);
        let retries = messages
            .iter()
            .filter(|m| m.metadata["subtype"] == "api_retry")
            .count();
        assert!(retries >= 1, "{file}");
        let outcome = result_of(&messages).outcome.clone().unwrap();
        assert_eq!(outcome.subtype.as_deref(), Some("success"));
        let error = outcome.error().expect("failed");
        assert!(error.message.contains(text), "{file}: {}", error.message);
    }
}

#[test]
fn an_abandoned_attempt_is_marked_and_the_answer_arrives_whole() {
    let (messages, _) = parse_fixture("16_midstream_sse_error.jsonl");
    let abandoned = messages
        .iter()
        .find(|m| m.metadata["eventType"] == "abandoned_blocks")
        .unwrap();
    let dropped_id = abandoned.metadata["messageId"].clone();
    // Partial text of the abandoned message was streamed...
    assert!(messages.iter().any(
        |m| m.metadata["eventType"] == "content_delta" && m.metadata["messageId"] == dropped_id
    ));
    // ...and the final answer comes as a whole block under another id, equal to the result.
    let whole = messages
        .iter()
        .rfind(|m| m.metadata["eventType"] == "assistant_message")
        .unwrap();
    assert_ne!(whole.metadata["messageId"], dropped_id);
    assert_eq!(whole.content, result_of(&messages).content);
}

#[test]
fn sigint_ends_with_an_error_result_and_sigterm_with_none() {
    let (messages, _) = parse_fixture("21_sigint_midstream.jsonl");
    let outcome = result_of(&messages).outcome.clone().unwrap();
    assert!(outcome.is_error);
    assert_eq!(outcome.subtype.as_deref(), Some("error_during_execution"));
    let (messages, _) = parse_fixture("20_sigterm_midstream.jsonl");
    assert!(messages
        .iter()
        .all(|m| m.message_type != MessageType::Result));
}

#[test]
fn a_permission_request_of_the_cli_becomes_a_permission_request_message() {
    let (messages, _) = parse_fixture("50_permission_allow.jsonl");
    let asks: Vec<&ParsedMessage> = messages
        .iter()
        .filter(|m| m.metadata["eventType"] == "permission_request")
        .collect();
    assert_eq!(asks.len(), 1);
    let ask = asks[0];
    assert_eq!(ask.message_type, MessageType::Tool);
    assert_eq!(ask.content, "Bash");
    assert_eq!(ask.metadata["toolName"], "Bash");
    assert_eq!(ask.metadata["input"]["command"], "touch x.txt");
    let id = ask.metadata["requestId"].as_str().unwrap();
    assert!(crate::parser::claude::is_plain_id(id), "{id}");
    assert!(ask.metadata["toolUseId"]
        .as_str()
        .unwrap()
        .starts_with("toolu_"));
    // The answer written on stdin names the same request.
    let stdin =
        std::fs::read_to_string(fixture_dir().join("50_permission_allow.stdin.jsonl")).unwrap();
    assert!(stdin.contains(id));
}

#[test]
fn an_interrupt_while_a_permission_waits_withdraws_the_request() {
    let (messages, _) = parse_fixture("54_permission_interrupt.jsonl");
    let ask = messages
        .iter()
        .find(|m| m.metadata["eventType"] == "permission_request")
        .expect("a permission request");
    let cancel = messages
        .iter()
        .find(|m| m.metadata["subtype"] == "control_cancel_request")
        .expect("its cancellation");
    assert_eq!(cancel.metadata["requestId"], ask.metadata["requestId"]);
    // The interrupted turn ends with an error result; the next message is answered by the same process.
    let results: Vec<&ParsedMessage> = messages
        .iter()
        .filter(|m| m.message_type == MessageType::Result)
        .collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].outcome.as_ref().unwrap().is_error);
    assert_eq!(results[0].metadata["terminalReason"], "aborted_tools");
    assert!(!results[1].outcome.as_ref().unwrap().is_error);
}

#[test]
fn a_resume_of_an_unknown_session_fails_with_the_clis_reason() {
    let (messages, _) = parse_fixture("55_resume_missing_session.jsonl");
    let outcome = result_of(&messages).outcome.clone().unwrap();
    assert!(outcome.is_error);
    let error = outcome.error().unwrap();
    assert!(
        error
            .message
            .contains("No conversation found with session ID"),
        "{}",
        error.message
    );
}
