//! `GET /api/agents/{id}/export`: the JSONL file is the REST history line by line, the markdown
//! transcript shows the prompts, the streamed text once, permissions and results in order; the headers
//! name the file; bad formats, ids and agents get the error form.

use agentstream_testkit::{assert_error, joined, request_id, TestServer};
use agentstream_wire::{EventType, StoredMessage, SyntheticConfig};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::SERVER;

fn tokens(n: u64) -> SyntheticConfig {
    SyntheticConfig {
        tokens: Some(n),
        interval_ms: Some(0),
        ..SyntheticConfig::default()
    }
}

/// `GET /api/agents/{id}/export[?format=…]`: the response, checked to be a 200 attachment named
/// after the agent with `content_type`; its body.
async fn export(app: &TestServer, id: Uuid, format: Option<&str>, content_type: &str) -> String {
    let query = format.map_or_else(String::new, |f| format!("?format={f}"));
    let response = app
        .client
        .get(app.url(&format!("/api/agents/{id}/export{query}")))
        .send()
        .await
        .expect("GET export");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), content_type);
    let extension = if format == Some("jsonl") {
        "jsonl"
    } else {
        "md"
    };
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"agent-{id}.{extension}\"")
    );
    response.text().await.expect("export body")
}

async fn markdown(app: &TestServer, id: Uuid) -> String {
    export(app, id, None, "text/markdown; charset=utf-8").await
}

fn position(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not in the transcript:\n{text}"))
}

#[tokio::test]
async fn jsonl_is_the_rest_history_line_by_line() {
    let app = TestServer::spawn(SERVER).await;
    // Over two pages of the server's reads (1000 rows each).
    let agent = app.launch(2500, 0).await;
    app.wait_finished(agent.id).await;
    let rest = app
        .try_messages_body(agent.id, None)
        .await
        .expect("history");
    let history: Vec<Value> = serde_json::from_slice(&rest).expect("a JSON array");
    assert!(history.len() > 2500);
    let typed: Vec<StoredMessage> = serde_json::from_slice(&rest).expect("messages");

    let body = export(&app, agent.id, Some("jsonl"), "application/x-ndjson").await;
    assert!(body.ends_with('\n'));
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), history.len());
    for ((line, rest_value), rest_message) in lines.iter().zip(&history).zip(&typed) {
        let value: Value = serde_json::from_str(line).expect("each line one JSON object");
        assert_eq!(&value, rest_value);
        let message: StoredMessage = serde_json::from_str(line).expect("a message");
        assert_eq!(&message, rest_message);
    }
}

#[tokio::test]
async fn markdown_has_the_prompt_and_the_streamed_text_once() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app
        .try_launch_synthetic("Export *this* conversation", &tokens(40))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.wait_finished(agent.id).await;
    let history = app.messages(agent.id, None).await;
    let text = joined(&history, "content_delta");
    assert!(!text.trim().is_empty());

    let md = markdown(&app, agent.id).await;
    // Without `format`, or with it: the same transcript.
    let named = export(
        &app,
        agent.id,
        Some("markdown"),
        "text/markdown; charset=utf-8",
    )
    .await;
    assert_eq!(md, named);
    assert!(
        md.starts_with("# synthetic agent: Export \\*this\\* conversation\n"),
        "{md}"
    );
    assert!(md.contains("- **Status:** completed"), "{md}");
    assert!(md.contains("- **Model:** synthetic"), "{md}");
    assert!(
        md.contains("## You\n\nExport *this* conversation\n\n## Agent\n"),
        "{md}"
    );
    assert_eq!(md.matches(text.as_str()).count(), 1, "{md}");
    assert_eq!(md.matches("**Result:** success").count(), 1, "{md}");
    assert!(md.contains("40 output tokens"), "{md}");
    assert!(position(&md, &text) < position(&md, "**Result:**"));
}

/// The transcript of a two-turn agent whose second prompt was `follow_up`: the first prompt, the
/// first turn's text, the follow-up, the second turn's text, in order, each text once and each turn
/// with its result line.
fn assert_two_turns(md: &str, history: &[StoredMessage], prompt: &str, follow_up: &str) {
    let first_result = history
        .iter()
        .find(|m| EventType::of(&m.metadata) == Some(EventType::Result))
        .expect("a first result")
        .sequence_number;
    let (before, after): (Vec<StoredMessage>, Vec<StoredMessage>) = history
        .iter()
        .cloned()
        .partition(|m| m.sequence_number < first_result);
    let (first, second) = (
        joined(&before, "content_delta"),
        joined(&after, "content_delta"),
    );
    assert!(!first.is_empty() && !second.is_empty());
    let opening = format!("## You\n\n{prompt}");
    let heading = format!("## You\n\n{follow_up}");
    let split = position(md, &heading);
    let (one, two) = md.split_at(split);
    assert!(position(one, &opening) < position(one, &first), "{md}");
    assert_eq!(one.matches(first.as_str()).count(), 1, "{md}");
    assert_eq!(two.matches(second.as_str()).count(), 1, "{md}");
    // The first turn's text is whole before the follow-up, even when it was sent mid-turn.
    assert!(!two.contains(first.as_str()) || first == second, "{md}");
    assert_eq!(md.matches("**Result:** success").count(), 2, "{md}");
    assert_eq!(md.matches("## You\n\n").count(), 2, "{md}");
}

#[tokio::test]
async fn a_follow_up_shows_both_turns_in_order() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app
        .try_launch_synthetic("the first part", &tokens(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.wait_finished(agent.id).await;
    let follow_up = app.send(agent.id, "and now the second part").await;
    let history = app.wait_answer(agent.id, &follow_up).await;
    let md = markdown(&app, agent.id).await;
    assert_two_turns(&md, &history, "the first part", "and now the second part");
}

#[tokio::test]
async fn a_follow_up_sent_mid_turn_comes_after_the_whole_first_answer() {
    let app = TestServer::spawn(SERVER).await;
    let config = SyntheticConfig {
        interval_ms: Some(5),
        ..tokens(300)
    };
    let agent = app
        .try_launch_synthetic("a long answer", &config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.wait_messages(agent.id, 20).await;
    app.send(agent.id, "one more thing").await;
    let history = app.wait_turns(agent.id, 2).await;
    let md = markdown(&app, agent.id).await;
    assert_two_turns(&md, &history, "a long answer", "one more thing");
}

#[tokio::test]
async fn a_permission_request_and_its_answer_are_one_line_each() {
    let app = TestServer::spawn(SERVER).await;
    let config = SyntheticConfig {
        ask_permission: Some(true),
        ..tokens(3)
    };
    let agent = app
        .try_launch_synthetic("ask first", &config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let asked = app.wait_permission_request(agent.id, 0).await;
    let r = app
        .answer_permission(agent.id, &request_id(&asked), &json!({"decision": "allow"}))
        .await;
    assert_eq!(r.status(), 200);
    let history = app.wait_turns(agent.id, 1).await;
    assert!(history
        .iter()
        .any(|m| EventType::of(&m.metadata) == Some(EventType::PermissionResponse)));

    let md = markdown(&app, agent.id).await;
    let order = [
        "### Tool: Bash\n\n```json\n",
        "**Permission requested:** Bash with `{\"command\":\"echo turn 1\"",
        "**Permission answered:** Allowed (Bash)\n",
        "**Result of Bash:**\n\n```\nsynthetic tool output\n```\n",
        "**Result:** success",
    ]
    .map(|needle| position(&md, needle));
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{md}");
    assert_eq!(md.matches("### Tool: Bash").count(), 1, "{md}");
    assert_eq!(md.matches("**Permission requested:**").count(), 1, "{md}");
    assert_eq!(md.matches("**Permission answered:**").count(), 1, "{md}");
}

#[tokio::test]
async fn bad_formats_ids_and_agents_get_the_error_form() {
    let app = TestServer::spawn(SERVER).await;
    let c = &app.client;
    let agent = app.launch(2, 0).await;
    for format in ["xml", "", "JSONL", "md"] {
        let r = c
            .get(app.url(&format!("/api/agents/{}/export?format={format}", agent.id)))
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "invalid_query").await;
    }
    let unknown = Uuid::new_v4();
    for query in ["", "?format=jsonl", "?format=markdown"] {
        let r = c
            .get(app.url(&format!("/api/agents/{unknown}/export{query}")))
            .send()
            .await
            .unwrap();
        assert_error(r, 404, "agent_not_found").await;
    }
    let r = c
        .get(app.url("/api/agents/not-a-uuid/export"))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_id").await;
    let r = c
        .post(app.url(&format!("/api/agents/{}/export", agent.id)))
        .send()
        .await
        .unwrap();
    assert_error(r, 405, "method_not_allowed").await;
    app.assert_healthy().await;
}
