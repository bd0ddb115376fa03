//! The parser against real Claude Code output: every line of every captured run in
//! `backend/tests/fixtures/claude/` parses without loss, and the messages tell the same story as the
//! CLI's own final `result`. [`codex`]: the same for the Codex CLI's runs in `backend/tests/fixtures/codex/`.

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

/// The Codex CLI's captured runs (`backend/tests/fixtures/codex/`) through [`super::codex::CodexLines`].
mod codex {
    use std::path::{Path, PathBuf};

    use agentstream_wire::{keys, EventType, MessageType};
    use serde_json::Value;

    use crate::parser::codex::CodexLines;
    use crate::parser::{event_types, ParsedMessage, RunOutcome};

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex")
    }

    /// The output files of one mode (`_as_`: `codex app-server`, `_exec_`: `codex exec --json`).
    fn outputs(mode: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.contains(mode) && name.ends_with(".jsonl") && !name.ends_with(".stdin.jsonl")
            })
            .collect();
        files.sort();
        files
    }

    /// The lines of a file, as the runner splits them (a line that is not UTF-8 decoded lossily).
    fn lines(path: &Path) -> Vec<String> {
        let bytes = std::fs::read(path).unwrap();
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    /// Holds a stored message to what every parser's messages keep.
    fn check(m: &ParsedMessage, line: &str, path: &Path) {
        assert_eq!(m.raw, line, "{}", path.display());
        let event = EventType::of(&m.metadata)
            .unwrap_or_else(|| panic!("no event type: {}: {line}", path.display()));
        assert_eq!(
            m.message_type,
            event.message_type(),
            "{}: {line}",
            path.display()
        );
        assert!(event_types(m.message_type).contains(&event.as_str()));
        assert_ne!(
            m.message_type,
            MessageType::Error,
            "{}: {line}",
            path.display()
        );
    }

    /// Every stored message of an app-server case.
    fn parse_case(case: &str) -> Vec<ParsedMessage> {
        let path = fixture_dir().join(format!("{case}.jsonl"));
        let mut parser = CodexLines::new();
        lines(&path)
            .iter()
            .filter_map(|line| {
                let m = parser.parse_line(line);
                if let Some(m) = &m {
                    check(m, line, &path);
                }
                m
            })
            .collect()
    }

    fn of(messages: &[ParsedMessage], event: EventType) -> Vec<&ParsedMessage> {
        messages
            .iter()
            .filter(|m| EventType::of(&m.metadata) == Some(event))
            .collect()
    }

    fn joined(messages: &[ParsedMessage], event: EventType) -> String {
        of(messages, event)
            .iter()
            .map(|m| m.content.as_str())
            .collect()
    }

    fn outcomes(messages: &[ParsedMessage]) -> Vec<&RunOutcome> {
        messages.iter().filter_map(|m| m.outcome.as_ref()).collect()
    }

    fn last_outcome(messages: &[ParsedMessage]) -> &RunOutcome {
        outcomes(messages).pop().expect("a result")
    }

    /// Whether a line the parser did not store is one the table says is not stored.
    fn is_noise(line: &str) -> bool {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return false;
        };
        let method = v["method"].as_str().unwrap_or_default();
        let item_type = v["params"]["item"]["type"].as_str().unwrap_or_default();
        matches!(
            method,
            "thread/status/changed"
                | "account/rateLimits/updated"
                | "remoteControl/status/changed"
                | "thread/goal/cleared"
                | "serverRequest/resolved"
                | "item/commandExecution/outputDelta"
                | "item/reasoning/summaryPartAdded"
                | "turn/started"
                // The thread the answer to `thread/start` already announced.
                | "thread/started"
        ) || (method == "item/started"
            && matches!(item_type, "agentMessage" | "reasoning" | "userMessage"))
            || (v.get("method").is_none() && v.get("id").is_some() && v.get("result").is_some())
    }

    #[test]
    fn every_line_of_every_app_server_run_is_stored_as_what_it_is() {
        let files = outputs("_as_");
        assert!(files.len() >= 40, "{} app-server fixtures", files.len());
        let mut stored = 0;
        for path in &files {
            let mut parser = CodexLines::new();
            let mut inits = 0;
            for line in lines(path) {
                match parser.parse_line(&line) {
                    Some(m) => {
                        check(&m, &line, path);
                        // Every line of the real CLI has a known shape.
                        assert_ne!(
                            EventType::of(&m.metadata),
                            Some(EventType::Unknown),
                            "{}: {line}",
                            path.display()
                        );
                        inits += usize::from(m.session.is_some());
                        stored += 1;
                    }
                    None => assert!(is_noise(&line), "{}: dropped {line}", path.display()),
                }
            }
            // One session per run that got as far as a thread.
            let text = std::fs::read_to_string(path).unwrap();
            let has_thread = text.contains(r#"{"thread":{"id""#);
            assert_eq!(inits, usize::from(has_thread), "{}", path.display());
        }
        assert!(stored > 3000, "{stored}");
    }

    #[test]
    fn every_line_of_every_exec_run_parses_and_keeps_its_line() {
        let files = outputs("_exec_");
        assert!(files.len() >= 30, "{} exec fixtures", files.len());
        for path in &files {
            let mut parser = CodexLines::new();
            for line in lines(path) {
                if let Some(m) = parser.parse_line(&line) {
                    check(&m, &line, path);
                }
            }
        }
    }

    #[test]
    fn hello_streams_its_answer_and_completes() {
        let messages = parse_case("40_as_hello");
        let answer = "Hello! This is the fake API answering.";
        assert_eq!(joined(&messages, EventType::ContentDelta), answer);
        assert_eq!(joined(&messages, EventType::AssistantMessage), answer);
        let session = messages
            .iter()
            .find_map(|m| m.session.as_ref())
            .expect("the session");
        assert_eq!(session.model.as_deref(), Some("gpt-5.5"));
        assert_eq!(session.session_id.len(), 36);
        let prompt = of(&messages, EventType::UserMessage);
        assert_eq!(prompt[0].content, "say hello [[scenario:hello]]");
        let results: Vec<&ParsedMessage> = messages
            .iter()
            .filter(|m| m.message_type == MessageType::Result)
            .collect();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].content, answer);
        let done = results[0].outcome.as_ref().unwrap();
        assert!(!done.is_error);
        assert_eq!(done.subtype.as_deref(), Some("completed"));
        assert!(done.duration_ms.is_some());
        assert!(done.usage.as_ref().unwrap()["total"]["outputTokens"].is_u64());
    }

    #[test]
    fn a_long_answer_is_its_2000_chunks_in_order() {
        let case = outputs("_as_")
            .into_iter()
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("42_"))
            .unwrap();
        let case = case.file_stem().unwrap().to_str().unwrap().to_owned();
        let messages = parse_case(&case);
        let deltas = of(&messages, EventType::ContentDelta);
        assert_eq!(deltas.len(), 2000);
        let whole = of(&messages, EventType::AssistantMessage);
        assert_eq!(joined(&messages, EventType::ContentDelta), whole[0].content);
        assert!(!last_outcome(&messages).is_error);
    }

    #[test]
    fn a_command_is_a_tool_card_with_its_input_and_output() {
        let messages = parse_case("43_as_tool_echo_never_full_access");
        let used = of(&messages, EventType::ToolUse);
        let results = of(&messages, EventType::ToolResult);
        assert_eq!((used.len(), results.len()), (1, 1));
        assert_eq!(used[0].content, "exec_command");
        assert_eq!(
            used[0].metadata[keys::INPUT]["command"],
            "/bin/bash -lc 'echo hi'"
        );
        assert!(used[0].metadata[keys::INPUT]["cwd"].is_string());
        assert_eq!(
            used[0].metadata[keys::TOOL_USE_ID],
            results[0].metadata[keys::TOOL_USE_ID]
        );
        assert_eq!(results[0].content, "hi\n");
        assert_eq!(results[0].metadata[keys::IS_ERROR], false);
        assert!(!last_outcome(&messages).is_error);
        // A command that exits 2.
        let messages = parse_case("50_as_tool_failing_command");
        let failed = of(&messages, EventType::ToolResult);
        assert_eq!(failed[0].metadata[keys::IS_ERROR], true);
        assert_eq!(failed[0].metadata["exitCode"], 2);
        assert!(!failed[0].content.is_empty());
    }

    #[test]
    fn an_approval_is_a_permission_request_the_runner_can_answer() {
        let messages = parse_case("44_as_tool_approval_accept");
        let asks = of(&messages, EventType::PermissionRequest);
        assert_eq!(asks.len(), 1);
        let ask = asks[0];
        assert_eq!(ask.message_type, MessageType::Tool);
        assert_eq!(ask.metadata[keys::TOOL_NAME], "exec_command");
        assert_eq!(
            ask.metadata[keys::INPUT]["command"],
            "/bin/bash -lc 'touch y.txt'"
        );
        assert!(ask.metadata[keys::INPUT]["reason"].is_string());
        // Named by the command's item, which its tool card carries too.
        let used = of(&messages, EventType::ToolUse);
        assert_eq!(
            ask.metadata[keys::REQUEST_ID],
            used[0].metadata[keys::TOOL_USE_ID]
        );
        assert!(crate::parser::claude::is_plain_id(
            ask.metadata[keys::REQUEST_ID].as_str().unwrap()
        ));
        // The runner's answer carried the JSON-RPC id.
        let rpc_id = &ask.metadata["rpcId"];
        let stdin =
            std::fs::read_to_string(fixture_dir().join("44_as_tool_approval_accept.stdin.jsonl"))
                .unwrap();
        assert!(stdin
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["id"] == *rpc_id && v["result"]["decision"] == "accept"));
        // Each approval of a run has its own id, though JSON-RPC ids restart in every process.
        let messages = parse_case("47_as_tool_approval_accept_for_session");
        let asks = of(&messages, EventType::PermissionRequest);
        assert!(!asks.is_empty());
        // Declined: the card's result is an error.
        let messages = parse_case("45_as_tool_approval_decline");
        let results = of(&messages, EventType::ToolResult);
        assert_eq!(results[0].metadata[keys::IS_ERROR], true);
        assert_eq!(results[0].metadata["status"], "declined");
    }

    #[test]
    fn reasoning_chunks_join_into_the_thinking_block() {
        let messages = parse_case("51_as_reasoning");
        let whole = messages
            .iter()
            .find(|m| m.metadata[keys::BLOCK_TYPE] == "thinking")
            .expect("a thinking block");
        assert_eq!(joined(&messages, EventType::ThinkingDelta), whole.content);
        assert!(whole.content.contains("Raw chain of thought"));
    }

    #[test]
    fn a_failed_turn_fails_with_the_apis_message() {
        for case in [
            "52_as_err500_retries1",
            "54_as_err400",
            "55_as_err401",
            "57_as_response_failed",
            "58_as_response_incomplete",
            "60_as_midstream_error",
            "61_as_connection_dropped",
            "61b_as_stream_idle_timeout",
        ] {
            let messages = parse_case(case);
            let done = last_outcome(&messages);
            assert!(done.is_error, "{case}");
            assert_eq!(done.subtype.as_deref(), Some("failed"), "{case}");
            let error = done.error().unwrap();
            assert!(!error.message.is_empty(), "{case}");
            // The same as the run's last error line.
            let last = of(&messages, EventType::System)
                .into_iter()
                .rfind(|m| m.metadata[keys::SUBTYPE] == "error")
                .unwrap_or_else(|| panic!("{case}: an error line"));
            assert_eq!(error.message, last.content, "{case}");
        }
        let messages = parse_case("52_as_err500_retries1");
        assert!(last_outcome(&messages)
            .error()
            .unwrap()
            .message
            .contains("high demand"));
        assert!(messages
            .iter()
            .any(|m| m.metadata[keys::SUBTYPE] == "api_retry"));
    }

    #[test]
    fn a_retry_names_the_partial_answer_it_abandons() {
        let messages = parse_case("60_as_midstream_error");
        let retry = messages
            .iter()
            .find(|m| m.metadata[keys::SUBTYPE] == "api_retry")
            .unwrap();
        let abandoned = retry.metadata["abandonedMessageIds"][0].clone();
        assert!(abandoned.is_string());
        let partial = of(&messages, EventType::ContentDelta)
            .into_iter()
            .filter(|m| m.metadata[keys::MESSAGE_ID] == abandoned)
            .count();
        assert_eq!(partial, 25);
    }

    #[test]
    fn an_interrupted_turn_ends_interrupted_and_the_next_one_completes() {
        let case = outputs("_as_")
            .into_iter()
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("62_"))
            .unwrap();
        let messages = parse_case(case.file_stem().unwrap().to_str().unwrap());
        let results = outcomes(&messages);
        assert_eq!(results.len(), 2);
        assert!(results[0].is_error);
        assert_eq!(results[0].subtype.as_deref(), Some("interrupted"));
        assert!(!results[1].is_error);
        // Cancelling an approval interrupts the turn too.
        let messages = parse_case("46_as_tool_approval_cancel");
        assert_eq!(
            last_outcome(&messages).subtype.as_deref(),
            Some("interrupted")
        );
    }

    #[test]
    fn two_turns_give_two_results_and_usage_grows() {
        let messages = parse_case("63_as_two_turns");
        let results = outcomes(&messages);
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| !r.is_error));
        let total = |r: &RunOutcome| r.usage.as_ref().unwrap()["total"]["totalTokens"].as_u64();
        assert!(total(results[1]) > total(results[0]));
    }

    #[test]
    fn a_resumed_thread_is_announced_by_the_answer_to_thread_resume() {
        let resumed = parse_case("64_as_resume_thread");
        let session = resumed
            .iter()
            .find_map(|m| m.session.clone())
            .expect("a session");
        let first = parse_case("63_as_two_turns");
        let original = first.iter().find_map(|m| m.session.clone()).unwrap();
        assert_eq!(session.session_id, original.session_id);
        assert!(!last_outcome(&resumed).is_error);
        // A thread that is not there: the error answer says so.
        let messages = parse_case("65_as_resume_unknown_thread");
        let error = of(&messages, EventType::System)
            .into_iter()
            .find(|m| m.metadata[keys::SUBTYPE] == "error")
            .unwrap();
        assert!(error.content.contains("no rollout found for thread id"));
        assert!(messages.iter().all(|m| m.session.is_none()));
    }
}
