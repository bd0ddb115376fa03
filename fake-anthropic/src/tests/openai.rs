//! The Responses API side, over real HTTP, in the shapes the Codex CLI 0.169.0 reads.

use reqwest::Client;
use serde_json::{json, Value};

use super::{parse_sse, Sse};
use crate::{words, FakeAnthropic};

/// A request like the CLI's: a developer message, the environment context, then the prompt, with
/// the shell tool `exec_command` offered when `tools`.
fn request(prompt: &str, tools: bool) -> Value {
    let message = |role: &str, text: &str| {
        json!({"type": "message", "role": role,
               "content": [{"type": "input_text", "text": text}]})
    };
    let mut b = json!({
        "model": "gpt-5.5",
        "input": [
            message("developer", "You are Codex. [[scenario:drop]]"),
            message("user", "<environment_context>cwd</environment_context>"),
            message("user", prompt),
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "store": false,
        "stream": true,
    });
    if tools {
        b["tools"] = json!([
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "function", "name": "write_stdin", "parameters": {"type": "object"}},
            {"type": "web_search", "external_web_access": false},
        ]);
    }
    b
}

/// POSTs `body` to `/v1/responses` with the CLI's authentication.
async fn post(server: &FakeAnthropic, body: &Value) -> reqwest::Response {
    Client::new()
        .post(format!("{}/v1/responses", server.url()))
        .bearer_auth("sk-test")
        .header("accept", "text/event-stream")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The events of a streamed answer, checking the SSE headers and the numbering on the way.
async fn events(server: &FakeAnthropic, body: &Value) -> Vec<Sse> {
    let resp = post(server, body).await;
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    assert!(resp.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_fake_"));
    let events = parse_sse(&resp.text().await.unwrap());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.data["sequence_number"], i, "{}", e.name);
    }
    events
}

/// The event names, in order.
fn names(events: &[Sse]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

/// The concatenated `response.output_text.delta`s.
fn text(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.name == "response.output_text.delta")
        .map(|e| e.data["delta"].as_str().unwrap())
        .collect()
}

/// The events of one complete text message of `deltas` deltas.
fn message_events(deltas: usize) -> Vec<&'static str> {
    [
        vec!["response.output_item.added", "response.content_part.added"],
        vec!["response.output_text.delta"; deltas],
        vec![
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
        ],
    ]
    .concat()
}

/// The stream of a scripted answer must be exactly the reference's, or the CLI misreads it.
#[tokio::test]
async fn hello_streams_the_exact_responses_event_sequence() {
    let server = FakeAnthropic::start();
    let got = events(&server, &request("say hello [[scenario:hello]]", false)).await;
    let expected = [
        vec!["response.created", "response.in_progress"],
        message_events(7),
        vec!["response.completed"],
    ]
    .concat();
    assert_eq!(names(&got), expected);
    assert_eq!(text(&got), "Hello! This is the fake API answering.");
    let created = &got[0].data["response"];
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("resp_fake_") && id.len() == 34, "{id}");
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["model"], "gpt-5.5");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["usage"], Value::Null);
    let added = &got[2].data;
    assert_eq!(added["output_index"], 0);
    let item_id = added["item"]["id"].as_str().unwrap();
    assert!(item_id.starts_with("msg_fake_"));
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(got[4].data["item_id"], item_id);
    assert_eq!(got[4].data["delta"], "Hello!");
    assert_eq!(got[4].data["logprobs"], json!([]));
    let completed = &got.last().unwrap().data["response"];
    assert_eq!(completed["id"], id);
    assert_eq!(completed["status"], "completed");
    assert_eq!(
        completed["output"][0]["content"][0],
        json!({"type": "output_text", "text": "Hello! This is the fake API answering.",
               "annotations": [], "logprobs": []})
    );
    let usage = &completed["usage"];
    let input = usage["input_tokens"].as_u64().unwrap();
    assert!(input > 1);
    assert_eq!(usage["output_tokens"], 7);
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 0);
    assert_eq!(usage["total_tokens"], input + 7);
    // Recorded for tests, with the marker of the last user message (not the developer text).
    let reqs = server.responses_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/responses");
    assert_eq!(reqs[0].scenario.as_deref(), Some("hello"));
    assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-test"));
    assert!(reqs[0].is_streaming());
    assert_eq!(reqs[0].body.as_ref().unwrap()["model"], "gpt-5.5");
    assert_eq!(reqs[0].outcome, "stream hello items=1 deltas=7");
}

/// `long n=2000` is 2000 one-word deltas whose text is exactly `words(2000)`.
#[tokio::test]
async fn long_2000_streams_the_exact_text() {
    let server = FakeAnthropic::start();
    let got = events(&server, &request("count [[scenario:long n=2000]]", false)).await;
    assert_eq!(got.len(), 2 + 2000 + 5 + 1);
    let expected = words(2000).concat();
    assert_eq!(text(&got), expected);
    assert_eq!(got[4].data["delta"], "tok0 ");
    assert_eq!(got[4 + 24].data["delta"], "tok24\n");
    let done = got
        .iter()
        .find(|e| e.name == "response.output_text.done")
        .unwrap();
    assert_eq!(done.data["text"], expected.as_str());
    let usage = &got.last().unwrap().data["response"]["usage"];
    assert_eq!(usage["output_tokens"], 2000);
}

/// Turn 1 calls `exec_command`; the next request, carrying its output, gets text quoting it.
#[tokio::test]
async fn tool_calls_exec_command_then_quotes_its_output() {
    let server = FakeAnthropic::start();
    let first = request("run it [[scenario:tool cmd=echo%20hi]]", true);
    let got = events(&server, &first).await;
    let expected = [
        vec!["response.created", "response.in_progress"],
        message_events(3),
        vec!["response.output_item.added"],
        vec!["response.function_call_arguments.delta"; 3],
        vec![
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ],
    ]
    .concat();
    assert_eq!(names(&got), expected);
    assert_eq!(text(&got), "I'll run the tool now.");
    let added = &got[10].data;
    assert_eq!(added["output_index"], 1);
    assert_eq!(added["item"]["type"], "function_call");
    assert_eq!(added["item"]["name"], "exec_command");
    assert_eq!(added["item"]["arguments"], "");
    let arguments: String = got
        .iter()
        .filter(|e| e.name == "response.function_call_arguments.delta")
        .map(|e| e.data["delta"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, r#"{"cmd": "echo hi"}"#);
    let call = got[got.len() - 2].data["item"].clone();
    assert_eq!(call["status"], "completed");
    assert_eq!(call["arguments"], arguments.as_str());
    assert!(call["call_id"].as_str().unwrap().starts_with("call_fake_"));
    let completed = &got.last().unwrap().data["response"];
    assert_eq!(completed["output"][1], call);
    assert_eq!(completed["usage"]["output_tokens"], 3);
    // Turn 2: the CLI sends the call and its output back.
    let mut second = first.clone();
    second["input"].as_array_mut().unwrap().extend([
        call.clone(),
        json!({"type": "function_call_output", "id": "fco_1", "call_id": call["call_id"],
               "output": "Chunk ID: c6416b\nWall time: 0.0000 seconds\nProcess exited with code 0\nOriginal token count: 1\nOutput:\nhi\n"}),
    ]);
    let got = events(&server, &second).await;
    assert_eq!(
        names(&got),
        [
            vec!["response.created", "response.in_progress"],
            message_events(11),
            vec!["response.completed"],
        ]
        .concat()
    );
    assert_eq!(
        text(&got),
        "The tool returned: Chunk ID: c6416b\nWall time: 0.0000 seconds\nProcess exited with code 0\nOriginal token count: 1\nOutput:\nhi. Done."
    );
    // Without a shell tool offered, turn 1 is the text alone.
    let plain = events(&server, &request("[[scenario:tool]]", false)).await;
    assert_eq!(text(&plain), "I'll run the tool now.");
    let outcomes: Vec<String> = server
        .responses_requests()
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            r#"stream tool turn 1: exec_command {"cmd": "echo hi"} items=2 deltas=3"#,
            "stream tool turn 2 items=1 deltas=11",
            "stream tool: no shell tool offered items=1 deltas=3",
        ]
    );
}

/// HTTP errors use OpenAI's JSON shape; `fail_first=K` fails K attempts per marker, then hello.
#[tokio::test]
async fn errors_have_the_openai_shape_and_fail_first_recovers() {
    let server = FakeAnthropic::start();
    let body = request("[[scenario:err500 fail_first=2]]", false);
    for attempt in 1..=2 {
        let resp = post(&server, &body).await;
        assert_eq!(resp.status(), 500, "attempt {attempt}");
        assert!(resp.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_fake_"));
        let error: Value = resp.json().await.unwrap();
        assert_eq!(
            error,
            json!({"error": {"message": "The server had an error while processing your request.",
                             "type": "server_error", "param": null, "code": "server_error"}})
        );
    }
    let got = events(&server, &body).await;
    assert_eq!(text(&got), "Hello! This is the fake API answering.");
    let cases = [
        ("err400", 400, "invalid_request_error"),
        ("err401", 401, "invalid_api_key"),
        ("err503", 503, "server_error"),
    ];
    for (name, status, code) in cases {
        let resp = post(&server, &request(&format!("[[scenario:{name}]]"), false)).await;
        assert_eq!(resp.status(), status, "{name}");
        // The CLI shows a 400's body verbatim: it keeps the reference's separators.
        let raw = resp.text().await.unwrap();
        assert!(raw.starts_with(r#"{"error": {"message": "#), "{raw}");
        let error: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(error["error"]["code"], code, "{name}");
    }
    let resp = post(
        &server,
        &request("[[scenario:err429 retry_after=2]]", false),
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let resp = post(&server, &request("[[scenario:long n=many]]", false)).await;
    assert_eq!(resp.status(), 400);
    let error: Value = resp.json().await.unwrap();
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("n=many"));
    let outcomes: Vec<String> = server
        .responses_requests()
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        outcomes[..3],
        [
            "error 500 (attempt 1)",
            "error 500 (attempt 2)",
            "stream hello items=1 deltas=7"
        ]
    );
}

/// The endings the CLI reports differently: no output, failed, incomplete, refusal, an `error`
/// event, a cut connection, and a reasoning item before the text.
#[tokio::test]
async fn empty_failed_incomplete_refusal_and_broken_streams() {
    let server = FakeAnthropic::start();
    let got = events(&server, &request("[[scenario:empty]]", false)).await;
    assert_eq!(
        names(&got),
        [
            "response.created",
            "response.in_progress",
            "response.completed"
        ]
    );
    assert_eq!(got[2].data["response"]["output"], json!([]));
    let got = events(&server, &request("[[scenario:failed]]", false)).await;
    assert_eq!(
        names(&got),
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
    let failed = &got[2].data["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({"code": "server_error", "message": "The model failed to generate a response (fake)."})
    );
    let got = events(&server, &request("[[scenario:incomplete]]", false)).await;
    let last = got.last().unwrap();
    assert_eq!(last.name, "response.incomplete");
    assert_eq!(
        last.data["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(text(&got), words(30).concat());
    let got = events(&server, &request("[[scenario:refusal]]", false)).await;
    let refusal: String = got
        .iter()
        .filter(|e| e.name == "response.refusal.delta")
        .map(|e| e.data["delta"].as_str().unwrap())
        .collect();
    assert_eq!(refusal, "I can't help with that.");
    assert_eq!(
        got[3].data["part"],
        json!({"type": "refusal", "refusal": ""})
    );
    let got = events(
        &server,
        &request("[[scenario:midstream_error n=10]]", false),
    )
    .await;
    assert_eq!(
        names(&got),
        [
            vec![
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
            ],
            vec!["response.output_text.delta"; 5],
            vec!["error"],
        ]
        .concat()
    );
    assert_eq!(got.last().unwrap().data["message"], "fake mid-stream error");
    let got = events(&server, &request("[[scenario:reasoning]]", false)).await;
    assert_eq!(got[2].data["item"]["type"], "reasoning");
    assert_eq!(text(&got), "Hello from a reasoning model!");
    let usage = &got.last().unwrap().data["response"]["usage"];
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 6 + 4);
    assert_eq!(usage["output_tokens"], 6 + 4 + 5);
    let resp = post(&server, &request("[[scenario:drop n=10]]", false)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.is_err(), "the stream must be cut");
}

/// `GET /v1/models` answers an OpenAI client in OpenAI's shape; Anthropic's clients keep theirs.
#[tokio::test]
async fn models_lists_a_model_in_the_shape_of_the_client() {
    let server = FakeAnthropic::start();
    let client = Client::new();
    let url = format!("{}/v1/models", server.url());
    let openai: Value = client
        .get(&url)
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        openai,
        json!({"object": "list", "data": [{"id": "gpt-fake", "object": "model",
                                           "created": 1_700_000_000, "owned_by": "fake"}]})
    );
    let anthropic: Value = client
        .get(&url)
        .bearer_auth("oauth-token")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model");
    let outcomes: Vec<String> = server.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["openai models list", "models list"]);
}
