//! HTTP error scenarios, `fail_first`, and bad requests.

use serde_json::Value;

use super::{body, post, stream, streamed_text};
use crate::FakeAnthropic;

/// Sends `prompt` and returns status, headers and the JSON error body.
async fn error_of(
    server: &FakeAnthropic,
    prompt: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = post(server, &body(prompt, true, false)).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

/// Each error scenario must use the real status, JSON shape and headers.
#[tokio::test]
async fn each_error_scenario_has_its_status_and_type() {
    let server = FakeAnthropic::start();
    let cases = [
        ("err500", 500, "api_error"),
        ("err529", 529, "overloaded_error"),
        ("err401", 401, "authentication_error"),
        ("err429", 429, "rate_limit_error"),
        ("err400", 400, "invalid_request_error"),
    ];
    for (name, status, kind) in cases {
        let (got, headers, json) = error_of(&server, &format!("[[scenario:{name}]]")).await;
        assert_eq!(got, status, "{name}");
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["type"], kind);
        assert!(json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(json["request_id"].as_str().unwrap().starts_with("req_"));
        assert_eq!(headers["request-id"].to_str().unwrap(), json["request_id"]);
        assert_eq!(headers.contains_key("x-should-retry"), status == 529);
    }
}

/// Without `fail_first`, retries must keep failing so the CLI gives up.
#[tokio::test]
async fn errors_without_fail_first_fail_every_time() {
    let server = FakeAnthropic::start();
    for _ in 0..3 {
        assert_eq!(error_of(&server, "[[scenario:err500]]").await.0, 500);
    }
}

/// `retry_after=` must reach the CLI as a `retry-after` header.
#[tokio::test]
async fn retry_after_is_sent_as_a_header() {
    let server = FakeAnthropic::start();
    let (status, headers, _) = error_of(&server, "[[scenario:err429 retry_after=3]]").await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
}

/// `fail_first=K` fails K attempts per marker, then answers normally.
#[tokio::test]
async fn fail_first_fails_k_times_then_answers_hello() {
    let server = FakeAnthropic::start();
    let prompt = "[[scenario:err529 fail_first=2]]";
    assert_eq!(error_of(&server, prompt).await.0, 529);
    assert_eq!(error_of(&server, prompt).await.0, 529);
    let events = stream(&server, prompt, false).await;
    assert_eq!(
        streamed_text(&events),
        "Hello! This is the fake API answering."
    );
    // A different marker has its own count.
    assert_eq!(
        error_of(&server, "[[scenario:err529 fail_first=1]]")
            .await
            .0,
        529
    );
    let outcomes: Vec<String> = server.requests().into_iter().map(|r| r.outcome).collect();
    assert!(outcomes[2].starts_with("stream hello"), "{outcomes:?}");
}

/// Attempt counters belong to one server, so parallel tests do not interfere.
#[tokio::test]
async fn fail_first_counters_are_per_server() {
    let prompt = "[[scenario:err500 fail_first=1]]";
    let first = FakeAnthropic::start();
    assert_eq!(error_of(&first, prompt).await.0, 500);
    let second = FakeAnthropic::start();
    assert_eq!(error_of(&second, prompt).await.0, 500);
    assert_eq!(post(&first, &body(prompt, true, false)).await.status(), 200);
}

/// Bad scenario parameters and bodies must give a clear 400, not a panic.
#[tokio::test]
async fn bad_scenario_parameters_and_bodies_are_400() {
    let server = FakeAnthropic::start();
    let (status, _, json) = error_of(&server, "[[scenario:long n=many]]").await;
    assert_eq!(status, 400);
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("n=many"));
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let json: Value = resp.json().await.unwrap();
    assert_eq!(json["error"]["type"], "invalid_request_error");
}
