//! The Generative Language API side, over real HTTP, in the shapes the Gemini CLI 0.61 reads.

use reqwest::Client;
use serde_json::{json, Value};

use crate::FakeAnthropic;

/// A request of one user turn (and a tool declaration when `tools`).
fn request(prompt: &str, tools: bool) -> Value {
    let mut b = json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]});
    if tools {
        b["tools"] = json!([{"functionDeclarations": [{"name": "run_shell_command"}]}]);
    }
    b
}

async fn call(server: &FakeAnthropic, action: &str, body: &Value) -> reqwest::Response {
    Client::new()
        .post(format!(
            "{}/v1beta/models/gemini-test:{action}",
            server.url()
        ))
        .header("x-goog-api-key", "test-key")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The chunks of a streamed answer (`data: {json}` frames).
async fn chunks(server: &FakeAnthropic, body: &Value) -> Vec<Value> {
    let resp = call(server, "streamGenerateContent?alt=sse", body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    text.split_terminator("\r\n\r\n")
        .map(|frame| serde_json::from_str(frame.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

fn text_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_answer_streams_as_chunks_and_ends_with_its_finish_reason_and_usage() {
    let server = FakeAnthropic::start();
    let got = chunks(&server, &request("hi [[scenario:hello chunk=4]]", false)).await;
    assert_eq!(text_of(&got), "Hello! This is the fake API answering.");
    assert_eq!(got.len(), 10);
    let last = got.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 10);
    assert!(got[..9]
        .iter()
        .all(|c| c["candidates"][0].get("finishReason").is_none()));
    let long = chunks(&server, &request("[[scenario:long n=300]]", false)).await;
    assert_eq!(long.len(), 300);
    let requests = server.requests();
    assert_eq!(requests[0].scenario.as_deref(), Some("hello"));
    assert_eq!(
        requests[0].path,
        "/v1beta/models/gemini-test:streamGenerateContent"
    );
}

#[tokio::test]
async fn a_tool_is_called_when_offered_and_its_result_quoted_after() {
    let server = FakeAnthropic::start();
    let got = chunks(&server, &request("[[scenario:tool cmd=ls%20-l]]", true)).await;
    let call = &got[1]["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "run_shell_command");
    assert_eq!(call["args"]["command"], "ls -l");
    // Not offered: a plain answer.
    let plain = chunks(&server, &request("[[scenario:tool]]", false)).await;
    assert!(text_of(&plain).starts_with("Hello!"));
    // The result comes back: text quoting it.
    let mut back = request("[[scenario:tool]]", true);
    back["contents"].as_array_mut().unwrap().extend([
        json!({"role": "model", "parts": [{"functionCall": {"name": "run_shell_command"}}]}),
        json!({"role": "user", "parts": [{"functionResponse": {"name": "run_shell_command",
            "response": {"output": "hi"}}}]}),
    ]);
    let answer = text_of(&chunks(&server, &back).await);
    assert!(
        answer.starts_with("The tool returned: {\"output\":\"hi\"}"),
        "{answer}"
    );
}

#[tokio::test]
async fn side_requests_get_an_object_of_their_schema() {
    let server = FakeAnthropic::start();
    let mut body = request("[[scenario:long]]", false);
    body["generationConfig"] = json!({"responseJsonSchema": {"type": "object",
        "properties": {"next_speaker": {}, "reasoning": {}, "model_choice": {}}}});
    let resp = call(&server, "generateContent", &body).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let text = answer["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    let object: Value = serde_json::from_str(text).unwrap();
    assert_eq!(object["next_speaker"], "user");
    assert_eq!(object["model_choice"], "flash");
}

#[tokio::test]
async fn errors_empty_and_blocked_replies_and_a_cut_stream() {
    let server = FakeAnthropic::start();
    let resp = call(
        &server,
        "streamGenerateContent?alt=sse",
        &request("[[scenario:err500]]", false),
    )
    .await;
    assert_eq!(resp.status(), 500);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["error"]["status"], "INTERNAL");
    // `fail_first`: only the first attempts fail.
    let once = request("[[scenario:err429 fail_first=1]]", false);
    assert_eq!(call(&server, "generateContent", &once).await.status(), 429);
    assert_eq!(call(&server, "generateContent", &once).await.status(), 200);
    for (name, finish) in [("empty", "STOP"), ("safety", "SAFETY")] {
        let got = chunks(&server, &request(&format!("[[scenario:{name}]]"), false)).await;
        assert_eq!(text_of(&got), "", "{name}");
        assert_eq!(got.last().unwrap()["candidates"][0]["finishReason"], finish);
    }
    let counted: Value = call(&server, "countTokens", &request("x", false))
        .await
        .json()
        .await
        .unwrap();
    assert!(counted["totalTokens"].as_u64().unwrap() > 0);
    // `drop`: the body ends before its last chunk, with an error.
    let resp = call(
        &server,
        "streamGenerateContent?alt=sse",
        &request("[[scenario:drop n=10]]", false),
    )
    .await;
    assert!(resp.text().await.is_err(), "the stream must be cut");
}
