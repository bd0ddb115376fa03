//! The SSE sequence of each successful scenario, and the cut-short ones.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{body, parse_sse, post, shape, stream, streamed_text, times};
use crate::FakeAnthropic;

/// `message_start` + `ping`, the opening of every stream.
fn opening() -> Vec<String> {
    vec!["message_start".into(), "ping".into()]
}

/// `[content_block_stop, message_delta:REASON, message_stop]`.
fn closing(stop_reason: &str) -> Vec<String> {
    vec![
        "content_block_stop".into(),
        format!("message_delta:{stop_reason}"),
        "message_stop".into(),
    ]
}

/// The basic stream must have the real API's order, ids and usage, or the CLI misparses it.
#[tokio::test]
async fn hello_streams_the_real_event_sequence() {
    let server = FakeAnthropic::start();
    let events = stream(&server, "say hello [[scenario:hello]]", false).await;
    let expected = [
        opening(),
        vec!["start:text".into()],
        times("delta:text_delta", 7),
        closing("end_turn"),
    ]
    .concat();
    assert_eq!(shape(&events), expected);
    assert_eq!(
        streamed_text(&events),
        "Hello! This is the fake API answering."
    );
    let start = &events[0].data["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_01"));
    assert_eq!(start["model"], "claude-test-1");
    assert_eq!(start["content"], json!([]));
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 1);
    let delta = &events[events.len() - 2].data;
    assert_eq!(delta["usage"]["output_tokens"], 7);
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
}

/// `chunk=` controls the delta size, and unmarked prompts get the default scenario.
#[tokio::test]
async fn hello_chunk_and_default_scenario() {
    let server = FakeAnthropic::start();
    let events = stream(&server, "[[scenario:hello chunk=10]]", false).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.name == "content_block_delta")
            .count(),
        4
    );
    let events = stream(&server, "no marker here", false).await;
    assert_eq!(
        streamed_text(&events),
        "Hello! This is the fake API answering."
    );
    assert_eq!(server.requests()[1].scenario.as_deref(), Some("hello"));
}

/// `long` is how tests get many deltas; each word must be its own event.
#[tokio::test]
async fn long_sends_one_delta_per_word() {
    let server = FakeAnthropic::start();
    let events = stream(&server, "[[scenario:long n=2000]]", false).await;
    assert_eq!(events.len(), 2 + 1 + 2000 + 3);
    assert_eq!(events[3].data["delta"]["text"], "tok0 ");
    assert_eq!(events[27].data["delta"]["text"], "tok24\n");
    assert_eq!(events[2002].data["delta"]["text"], "tok1999\n");
}

/// A slow stream must not hold up other requests (sub-agents, parallel tests).
#[tokio::test]
async fn delays_do_not_block_other_requests() {
    let server = FakeAnthropic::start();
    let began = Instant::now();
    let slow = stream(&server, "[[scenario:long n=10 delay_ms=60]]", false);
    let quick = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let events = stream(&server, "[[scenario:hello]]", false).await;
        (events, began.elapsed())
    };
    let (slow_events, (quick_events, quick_done)) = tokio::join!(slow, quick);
    assert!(began.elapsed() >= Duration::from_millis(600));
    assert!(quick_done < Duration::from_millis(450), "{quick_done:?}");
    assert_eq!(slow_events.len(), 2 + 1 + 10 + 3);
    assert_eq!(quick_events.len(), 2 + 1 + 7 + 3);
}

/// `slow` exists so tests can interrupt a stream without spelling out a delay.
#[tokio::test]
async fn slow_is_long_with_a_default_delay() {
    let server = FakeAnthropic::start();
    let began = Instant::now();
    let events = stream(&server, "[[scenario:slow n=20]]", false).await;
    assert_eq!(events.len(), 2 + 1 + 20 + 3);
    assert!(began.elapsed() >= Duration::from_millis(200));
}

/// The tool input as the client would rebuild it from `input_json_delta`s.
fn tool_input(events: &[super::Sse]) -> Value {
    let pieces: Vec<&str> = events
        .iter()
        .filter(|e| e.data["delta"]["type"] == "input_json_delta")
        .map(|e| e.data["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(pieces[0], "", "the real API starts with an empty chunk");
    serde_json::from_str(&pieces.concat()).unwrap()
}

/// The first tool turn must stream a Bash call the CLI can rebuild and run.
#[tokio::test]
async fn tool_turn_one_calls_bash_with_streamed_json() {
    let server = FakeAnthropic::start();
    let events = stream(&server, "run [[scenario:tool cmd=ls%20-la]]", true).await;
    let s = shape(&events);
    assert_eq!(s[..3], ["message_start", "ping", "start:text"]);
    let tool_start = s.iter().position(|x| x == "start:tool_use").unwrap();
    assert_eq!(s[tool_start - 1], "content_block_stop");
    assert_eq!(s[s.len() - 3..], closing("tool_use"));
    let block = &events[tool_start].data;
    assert_eq!(block["index"], 1);
    assert_eq!(block["content_block"]["name"], "Bash");
    assert_eq!(block["content_block"]["input"], json!({}));
    assert!(block["content_block"]["id"]
        .as_str()
        .unwrap()
        .starts_with("toolu_01"));
    assert_eq!(
        tool_input(&events),
        json!({"command": "ls -la", "description": "Run a shell command"})
    );
}

/// The second tool turn must end the loop and show what the tool printed.
#[tokio::test]
async fn tool_turn_two_quotes_the_tool_result() {
    let server = FakeAnthropic::start();
    let mut b = body("run [[scenario:tool]]", true, true);
    b["messages"] = json!([
        {"role": "user", "content": "run [[scenario:tool]]"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "hi\n"}]},
    ]);
    let events = parse_sse(&post(&server, &b).await.text().await.unwrap());
    assert_eq!(streamed_text(&events), "The tool returned: hi. Done.");
    assert_eq!(shape(&events)[events.len() - 2], "message_delta:end_turn");
}

/// Side requests without tools must not get a tool call they cannot handle.
#[tokio::test]
async fn tool_without_tools_answers_hello() {
    let server = FakeAnthropic::start();
    let events = stream(&server, "[[scenario:tool]]", false).await;
    assert_eq!(
        streamed_text(&events),
        "Hello! This is the fake API answering."
    );
}

/// `read` and `subagent` must call the Read and Agent tools with the scripted inputs.
#[tokio::test]
async fn read_and_subagent_call_their_tools() {
    let server = FakeAnthropic::start();
    let events = stream(&server, "[[scenario:read file=/tmp/a%20b.txt]]", true).await;
    assert_eq!(tool_input(&events), json!({"file_path": "/tmp/a b.txt"}));
    let events = stream(&server, "[[scenario:subagent]]", true).await;
    let input = tool_input(&events);
    assert_eq!(input["prompt"], "Say hi [[scenario:hello chunk=4]]");
    assert_eq!(input["subagent_type"], "general-purpose");
}

/// Thinking blocks need thinking deltas, a signature delta, then the text block.
#[tokio::test]
async fn thinking_streams_thinking_then_signature_then_text() {
    let server = FakeAnthropic::start();
    let events = stream(&server, "[[scenario:thinking]]", false).await;
    let expected = [
        opening(),
        vec!["start:thinking".into()],
        times("delta:thinking_delta", 6),
        vec![
            "delta:signature_delta".into(),
            "content_block_stop".into(),
            "start:text".into(),
        ],
        times("delta:text_delta", 5),
        closing("end_turn"),
    ]
    .concat();
    assert_eq!(shape(&events), expected);
    assert_eq!(
        events[2].data["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
}

/// `max_tokens`, `refusal` and `empty` drive the CLI's special stop-reason paths.
#[tokio::test]
async fn stop_reason_scenarios() {
    let server = FakeAnthropic::start();
    let events = stream(&server, "[[scenario:max_tokens]]", false).await;
    assert_eq!(shape(&events)[events.len() - 2], "message_delta:max_tokens");
    assert_eq!(events.len(), 2 + 1 + 30 + 3);
    let events = stream(&server, "[[scenario:refusal]]", false).await;
    assert_eq!(shape(&events)[events.len() - 2], "message_delta:refusal");
    let events = stream(&server, "[[scenario:empty]]", false).await;
    assert_eq!(
        shape(&events),
        [
            "message_start",
            "ping",
            "message_delta:end_turn",
            "message_stop"
        ]
    );
}

/// A mid-stream `error` event must follow half the deltas and end the body cleanly.
#[tokio::test]
async fn midstream_error_sends_an_error_event_and_ends_cleanly() {
    let server = FakeAnthropic::start();
    let events = stream(&server, "[[scenario:midstream_error n=40]]", false).await;
    let expected = [
        opening(),
        vec!["start:text".into()],
        times("delta:text_delta", 20),
        vec!["error".into()],
    ]
    .concat();
    assert_eq!(shape(&events), expected);
    let err = &events[events.len() - 1].data["error"];
    assert_eq!(
        *err,
        json!({"type": "overloaded_error", "message": "Overloaded"})
    );
}

/// `drop` must look like a broken connection to an HTTP client, after some deltas.
#[tokio::test]
async fn drop_fails_the_body_for_an_http_client() {
    let server = FakeAnthropic::start();
    let resp = post(&server, &body("[[scenario:drop n=40]]", true, false)).await;
    assert_eq!(resp.status(), 200);
    let mut chunks = resp.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(item) = chunks.next().await {
        match item {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end with an error, not cleanly");
    let text = String::from_utf8(received).unwrap();
    assert_eq!(
        text.matches("text_delta").count(),
        20,
        "deltas before the cut arrive"
    );
    assert!(!text.contains("message_stop"));
}

/// At the TCP level, `drop` must close without the chunked body's terminator.
#[tokio::test]
async fn drop_closes_the_connection_without_the_last_chunk() {
    let server = FakeAnthropic::start();
    let payload = body("[[scenario:drop n=10]]", true, false).to_string();
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!(
        "POST /v1/messages?beta=true HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{payload}",
        payload.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "the server must close the connection");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert_eq!(text.matches("text_delta").count(), 5);
    assert!(!text.ends_with("0\r\n\r\n"), "no terminating chunk: {text}");
}
