//! Black-box tests of the server over real HTTP, through the public API only.

mod errors;
mod gemini;
mod misc;
mod openai;
mod streaming;

use reqwest::Client;
use serde_json::{json, Value};

use crate::FakeAnthropic;

/// One parsed SSE event: its `event:` name and its JSON data.
#[derive(Debug, Clone)]
struct Sse {
    /// `event:` line.
    name: String,
    /// `data:` line, parsed.
    data: Value,
}

/// Splits an SSE body into events; panics (test failure) on a malformed frame.
fn parse_sse(body: &str) -> Vec<Sse> {
    assert!(
        body.ends_with("\n\n"),
        "body must end with a complete frame"
    );
    body.split_terminator("\n\n")
        .map(|frame| {
            let mut lines = frame.lines();
            let name = lines.next().unwrap().strip_prefix("event: ").unwrap();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            assert!(lines.next().is_none(), "frame has extra lines: {frame:?}");
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "event name and type agree");
            Sse {
                name: name.to_owned(),
                data,
            }
        })
        .collect()
}

/// A compact label per event, e.g. `content_block_delta:text_delta`.
fn shape(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e.name.as_str() {
            "content_block_start" => format!(
                "start:{}",
                e.data["content_block"]["type"].as_str().unwrap()
            ),
            "content_block_delta" => format!("delta:{}", e.data["delta"]["type"].as_str().unwrap()),
            "message_delta" => format!(
                "message_delta:{}",
                e.data["delta"]["stop_reason"].as_str().unwrap()
            ),
            other => other.to_owned(),
        })
        .collect()
}

/// The same label repeated `n` times (for readable expectations).
fn times(label: &str, n: usize) -> Vec<String> {
    vec![label.to_owned(); n]
}

/// Concatenated `text_delta`s of the stream.
fn streamed_text(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.data["delta"]["type"] == "text_delta")
        .map(|e| e.data["delta"]["text"].as_str().unwrap())
        .collect()
}

/// A Messages request body with one user message and, optionally, tools.
fn body(prompt: &str, stream: bool, tools: bool) -> Value {
    let mut b = json!({
        "model": "claude-test-1",
        "max_tokens": 1024,
        "stream": stream,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
    });
    if tools {
        b["tools"] = json!([{"name": "Bash", "input_schema": {"type": "object"}}]);
    }
    b
}

/// POSTs `body` to `/v1/messages?beta=true` as the CLI does.
async fn post(server: &FakeAnthropic, body: &Value) -> reqwest::Response {
    Client::new()
        .post(format!("{}/v1/messages?beta=true", server.url()))
        .header("x-api-key", "test")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Streams `prompt` and returns the parsed events, checking the SSE headers on the way.
async fn stream(server: &FakeAnthropic, prompt: &str, tools: bool) -> Vec<Sse> {
    let resp = post(server, &body(prompt, true, tools)).await;
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    assert!(resp.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_011C"));
    parse_sse(&resp.text().await.unwrap())
}
