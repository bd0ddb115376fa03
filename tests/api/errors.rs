//! Every REST error case answers with the protocol's JSON error form and the right status and code,
//! and none of them hurts the server.

use agentstream_testkit::{assert_error, TestServer};
use agentstream_wire::AgentTypeInfo;
use serde_json::json;
use uuid::Uuid;

use crate::SERVER;

#[tokio::test]
async fn bad_ids_unknown_agents_and_bad_queries() {
    let app = TestServer::spawn(SERVER).await;
    let c = &app.client;
    let unknown = Uuid::new_v4();
    for path in [
        "/api/agents/not-a-uuid",
        "/api/agents/not-a-uuid/messages",
        "/api/agents/123",
    ] {
        assert_error(
            c.get(app.url(path)).send().await.unwrap(),
            400,
            "invalid_id",
        )
        .await;
    }
    assert_error(
        c.delete(app.url("/api/agents/zzz")).send().await.unwrap(),
        400,
        "invalid_id",
    )
    .await;
    for path in [
        format!("/api/agents/{unknown}"),
        format!("/api/agents/{unknown}/messages"),
    ] {
        assert_error(
            c.get(app.url(&path)).send().await.unwrap(),
            404,
            "agent_not_found",
        )
        .await;
    }
    let r = c
        .delete(app.url(&format!("/api/agents/{unknown}")))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "agent_not_found").await;

    let agent = app.launch(2, 0).await;
    for since in ["abc", "-1", "1.5", "", "99999999999999999999999"] {
        let r = c
            .get(app.url(&format!("/api/agents/{}/messages?since={since}", agent.id)))
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "invalid_since").await;
    }
    for limit in ["0", "x", "-3", "100001"] {
        let r = c
            .get(app.url(&format!("/api/agents/{}/messages?limit={limit}", agent.id)))
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "invalid_limit").await;
    }
    let r = c
        .delete(app.url(&format!("/api/agents/{}?purge=maybe", agent.id)))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_query").await;
    assert_error(
        c.get(app.url("/api/nothing-here")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_error(
        c.put(app.url("/api/agents")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_error(
        c.post(app.url("/api/health")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn bad_launch_bodies() {
    let app = TestServer::builder()
        .env("AGENTSTREAM__AGENTS__MAX_PROMPT_BYTES", "1000")
        .spawn(SERVER)
        .await;
    let post_raw = |body: &'static str| {
        app.client
            .post(app.url("/api/agents"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        "",
        "not json",
        "[]",
        "{\"type\": \"synthetic\"",
        "{\"prompt\": \"x\"}",
        "null",
        "{\"type\": 5, \"prompt\": \"x\"}",
        "{\"type\": \"synthetic\", \"prompt\": [1]}",
        "{\"type\": \"synthetic\", \"prompt\": \"x\", \"extra\": 1}",
    ] {
        assert_error(post_raw(body).await.unwrap(), 400, "invalid_body").await;
    }
    // Deep nesting is refused as a bad body, not a crash.
    let deep = format!(
        "{{\"type\":\"synthetic\",\"prompt\":\"x\",\"configuration\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = app
        .client
        .post(app.url("/api/agents"))
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_body").await;

    assert_error(
        app.post_agent(&json!({"type": "robot", "prompt": "x"}))
            .await,
        400,
        "unknown_agent_type",
    )
    .await;
    assert_error(
        app.post_agent(&json!({"type": "", "prompt": "x"})).await,
        400,
        "unknown_agent_type",
    )
    .await;
    for config in [
        json!({"tokens": 0}),
        json!({"tokens": "many"}),
        json!({"tokens": -1}),
        json!({"tokens": 5, "speed": 1}),
        json!({"intervalMs": 99_999_999}),
        json!([1]),
        json!({"tokens": 2_000_000}),
    ] {
        let r = app
            .post_agent(&json!({"type": "synthetic", "prompt": "x", "configuration": config}))
            .await;
        assert_error(r, 400, "invalid_configuration").await;
    }
    let r = app
        .post_agent(&json!({"type": "synthetic", "prompt": "x".repeat(1001)}))
        .await;
    assert_error(r, 413, "payload_too_large").await;
    let r = app
        .post_agent(&json!({"type": "synthetic", "prompt": "a\u{0}b"}))
        .await;
    assert_error(r, 400, "invalid_body").await;
    // Bodies over the server limit (1 MiB by default) are refused before parsing.
    let huge = json!({"type": "synthetic", "prompt": "y".repeat(2 * 1024 * 1024)});
    assert_error(app.post_agent(&huge).await, 413, "payload_too_large").await;
    // Odd but valid Unicode is accepted and stored as is.
    let prompt = "héllo 👋 \u{202e}rtl \u{feff} 日本語";
    let r = app
        .post_agent(&json!({"type": "synthetic", "prompt": prompt, "configuration": {"tokens": 1}}))
        .await;
    assert_eq!(r.status(), 201);
    let agent: agentstream_wire::Agent = r.json().await.unwrap();
    assert_eq!(app.agent(agent.id).await.prompt, prompt);
    // A form content type (curl -d) still works.
    let r = app
        .client
        .post(app.url("/api/agents"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"type":"synthetic","prompt":"curl","configuration":{"tokens":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    app.assert_healthy().await;
}

#[tokio::test]
async fn too_many_running_agents_is_429() {
    let app = TestServer::builder()
        .env("AGENTSTREAM__AGENTS__MAX_RUNNING", "2")
        .spawn(SERVER)
        .await;
    let a = app.launch(1000, 50).await;
    let b = app.launch(1000, 50).await;
    let r = app
        .post_agent(&json!({"type": "synthetic", "prompt": "third"}))
        .await;
    assert_error(r, 429, "too_many_agents").await;
    // A slot frees up when one ends.
    let d = app.delete_agent(a.id, false).await;
    assert_eq!(d.status(), 204);
    let mut launched = false;
    for _ in 0..100 {
        let r = app
            .post_agent(
                &json!({"type": "synthetic", "prompt": "again", "configuration": {"tokens": 1}}),
            )
            .await;
        if r.status() == 201 {
            launched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(launched, "a launch succeeds once a slot is free");
    let _ = app.delete_agent(b.id, false).await;
}

#[tokio::test]
async fn a_type_whose_cli_is_missing_is_unavailable_and_names_the_setting() {
    let app = TestServer::builder()
        .env("AGENTSTREAM__GEMINI__CLI_PATH", "/nonexistent/gemini")
        .env("AGENTSTREAM__CLAUDE__CLI_PATH", "/nonexistent/claude")
        .env("AGENTSTREAM__CODEX__CLI_PATH", "/nonexistent/codex")
        .spawn(SERVER)
        .await;
    for (agent_type, setting) in [
        ("gemini-cli", "gemini.cli_path"),
        ("claude-code", "claude.cli_path"),
        ("codex", "codex.cli_path"),
    ] {
        let r = app
            .post_agent(&json!({"type": agent_type, "prompt": "hi"}))
            .await;
        let error = assert_error(r, 501, "agent_type_unavailable").await;
        assert!(error.message.contains(setting), "{error:?}");
    }
    // Nothing was stored.
    let agents: Vec<serde_json::Value> = app.get_json("/api/agents").await;
    assert!(agents.is_empty());
    // GET /api/agent-types says so before anyone tries.
    let types: Vec<AgentTypeInfo> = app.get_json("/api/agent-types").await;
    let gemini = types.iter().find(|t| t.agent_type == "gemini-cli").unwrap();
    assert!(!gemini.available);
    assert!(gemini
        .unavailable_reason
        .as_deref()
        .is_some_and(|r| r.contains("gemini.cli_path")));
    let synthetic = types.iter().find(|t| t.agent_type == "synthetic").unwrap();
    assert!(synthetic.available);
}

#[tokio::test]
async fn unknown_options_of_a_type_are_refused_by_name() {
    let app = TestServer::spawn(SERVER).await;
    for (agent_type, option) in [
        ("gemini-cli", "permissionMode"),
        ("claude-code", "approvalMode"),
        ("codex", "permissionMode"),
        ("synthetic", "model"),
    ] {
        let r = app
            .post_agent(
                &json!({"type": agent_type, "prompt": "hi", "configuration": {option: "x"}}),
            )
            .await;
        let error = assert_error(r, 400, "invalid_configuration").await;
        assert!(error.message.contains(option), "{agent_type}: {error:?}");
    }
}
