//! Non-streaming fallback, side endpoints, request recording and lifecycle.

use serde_json::{json, Value};

use super::{body, post};
use crate::{FakeAnthropic, Options};

/// The non-streaming fallback must return one complete message.
#[tokio::test]
async fn non_streaming_returns_one_message() {
    let server = FakeAnthropic::start();
    let resp = post(&server, &body("[[scenario:hello]]", false, false)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["role"], "assistant");
    assert!(msg["id"].as_str().unwrap().starts_with("msg_01"));
    assert_eq!(
        msg["content"],
        json!([{"type": "text", "text": "Hello! This is the fake API answering."}])
    );
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(msg["usage"]["output_tokens"], 7);
}

/// After a broken stream the CLI's non-streaming retry must get the full answer.
#[tokio::test]
async fn non_streaming_fallbacks_of_broken_streams_are_complete() {
    let server = FakeAnthropic::start();
    for name in ["midstream_error", "drop"] {
        let prompt = format!("[[scenario:{name} n=4]]");
        let msg: Value = post(&server, &body(&prompt, false, false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(msg["content"][0]["text"], "tok0 tok1 tok2 tok3 ");
    }
    let msg: Value = post(&server, &body("[[scenario:tool]]", false, true))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["content"][1]["type"], "tool_use");
    assert_eq!(msg["content"][1]["input"]["command"], "echo hi");
    let msg: Value = post(&server, &body("[[scenario:thinking]]", false, false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(msg["content"][0]["type"], "thinking");
    assert!(msg["content"][0]["signature"].as_str().is_some());
}

/// count_tokens and models answer, and unknown routes get a JSON 404.
#[tokio::test]
async fn side_endpoints_and_unknown_paths() {
    let server = FakeAnthropic::start();
    let client = reqwest::Client::new();
    let count: Value = client
        .post(format!("{}/v1/messages/count_tokens", server.url()))
        .json(&json!({"messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(count["input_tokens"].as_u64().unwrap() >= 1);
    let models: Value = client
        .get(format!("{}/v1/models", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["type"], "model");
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/v1/messages"),
        ("DELETE", "/v1/models"),
    ] {
        let resp = client
            .request(method.parse().unwrap(), format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], "not_found_error");
    }
}

/// Tests assert on what the CLI sent, so requests must be recorded in full.
#[tokio::test]
async fn requests_are_recorded_with_their_scenario() {
    let server = FakeAnthropic::start();
    let mut b = body("x", true, false);
    b["messages"] = json!([
        {"role": "user", "content": "first [[scenario:long n=3]]"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "then [[scenario:hello chunk=50]]"}]},
    ]);
    post(&server, &b).await.text().await.unwrap();
    let reqs = server.message_requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_str()),
        ("POST", "/v1/messages", "beta=true")
    );
    assert_eq!(r.header("X-API-Key"), Some("test"));
    assert_eq!(r.scenario.as_deref(), Some("hello"));
    assert!(r.is_streaming());
    assert_eq!(r.body.as_ref().unwrap()["model"], "claude-test-1");
}

/// The default scenario is configurable, and only loopback hosts are accepted.
#[tokio::test]
async fn default_scenario_option_and_loopback_only() {
    let options = Options {
        default_scenario: "long".to_owned(),
        ..Options::default()
    };
    let server = FakeAnthropic::start_with(options).unwrap();
    let events = super::stream(&server, "no marker", false).await;
    assert_eq!(events.len(), 2 + 1 + 2000 + 3);
    let outside = Options {
        host: "0.0.0.0".to_owned(),
        ..Options::default()
    };
    assert!(matches!(
        FakeAnthropic::start_with(outside),
        Err(crate::Error::NotLoopback(_))
    ));
}

/// Tests share one server across tasks, so it must be `Send + Sync`.
#[test]
fn server_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FakeAnthropic>();
}

/// Stopping must not wait for a slow stream to finish, or test teardown would hang.
#[tokio::test]
async fn stop_cuts_open_streams_quickly() {
    let server = FakeAnthropic::start();
    let resp = post(&server, &body("[[scenario:slow n=1000]]", true, false)).await;
    assert_eq!(resp.status(), 200);
    let began = std::time::Instant::now();
    server.stop();
    assert!(
        began.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert!(resp.text().await.is_err(), "the open stream is cut");
}

/// The server must work without a runtime and free its port on stop.
#[test]
fn works_from_a_plain_thread_and_stops() {
    let server = FakeAnthropic::start();
    let addr = server.addr();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    server.stop();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "port is closed after stop"
    );
}
