//! Server-Sent Events (`GET /api/agents/{id}/events`, `GET /api/events`), read as a client reads them:
//! the exact stream (history, then live, each message once and in order, `id:` its sequence number), a
//! reconnect with `Last-Event-ID` (or `?since=`) at every kind of position, bad positions, auth, and a
//! client too slow for its stream.

use std::time::Duration;

use agentstream_testkit::sse::{SseEvent, SseItem};
use agentstream_testkit::{assert_error, TestServer};
use agentstream_wire::{AgentStatus, StoredMessage};
use serde_json::json;
use uuid::Uuid;

use crate::SERVER;

/// The stored messages carried by `events`' `agent:message`s, each checked against its `id:`.
fn messages(events: &[SseEvent]) -> Vec<StoredMessage> {
    events
        .iter()
        .filter(|e| e.event == "agent:message")
        .map(|e| {
            let m: StoredMessage =
                serde_json::from_value(e.data["message"].clone()).expect("a stored message");
            assert_eq!(
                e.id.as_deref(),
                Some(m.sequence_number.to_string().as_str())
            );
            m
        })
        .collect()
}

#[tokio::test]
async fn a_streaming_agent_is_its_history_then_live_each_message_once_in_order() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(300, 5).await;
    // Joined while it streams: part of it comes from the history, the rest live.
    app.wait_messages(agent.id, 50).await;
    let mut stream = app
        .sse(&format!("/api/agents/{}/events", agent.id), &[])
        .await;
    let first = stream.next_event().await;
    assert_eq!(first.event, "subscribed");
    assert_eq!(first.data["recovered"], true);
    let events = stream.events_until("agent:complete").await;
    let got = messages(&events);
    let stored = app.messages(agent.id, None).await;
    assert_eq!(got, stored, "exactly the history, once, in order");
    assert_eq!(got.len(), 303);
    assert!(events
        .iter()
        .any(|e| e.event == "agent:status" && e.data["status"] == "completed"));
    // What is not this agent's is not in its stream.
    let other = app.launch(5, 0).await;
    app.wait_finished(other.id).await;
    match stream.next_within(Duration::from_millis(500)).await {
        None | Some(SseItem::Comment(_)) => {}
        Some(item) => panic!("another agent's event in the stream: {item:?}"),
    }
}

#[tokio::test]
async fn a_reconnect_after_any_position_gets_exactly_the_rest() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(120, 0).await;
    app.wait_finished(agent.id).await;
    let stored = app.messages(agent.id, None).await;
    let last = stored.len() as i64;
    let path = format!("/api/agents/{}/events", agent.id);
    for position in [0, 1, 60, last - 1, last, last + 10] {
        let header = position.to_string();
        for (how, headers, url) in [
            (
                "Last-Event-ID",
                vec![("Last-Event-ID", header.as_str())],
                path.clone(),
            ),
            ("since", vec![], format!("{path}?since={position}")),
        ] {
            let mut stream = app.sse(&url, &headers).await;
            let subscribed = stream.next_event().await;
            assert_eq!(subscribed.event, "subscribed");
            assert_eq!(subscribed.data["lastSequence"], last);
            let resumes_at = position.min(last).to_string();
            assert_eq!(subscribed.id.as_deref(), Some(resumes_at.as_str()));
            assert_eq!(
                subscribed.data["recovered"],
                position <= last,
                "{how} {position}"
            );
            let mut got = Vec::new();
            while let Some(item) = stream.next_within(Duration::from_millis(300)).await {
                if let SseItem::Event(e) = item {
                    got.push(e);
                }
            }
            let expected: Vec<_> = stored
                .iter()
                .filter(|m| m.sequence_number > position)
                .cloned()
                .collect();
            assert_eq!(messages(&got), expected, "{how} {position}");
        }
    }
}

#[tokio::test]
async fn bad_positions_unknown_agents_and_methods_get_the_error_form() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(3, 0).await;
    let path = format!("/api/agents/{}/events", agent.id);
    for bad in ["abc", "-1", "1.5"] {
        let r = app.sse_response(&path, &[("Last-Event-ID", bad)]).await;
        assert_error(r, 400, "invalid_since").await;
        let r = app.sse_response(&format!("{path}?since={bad}"), &[]).await;
        assert_error(r, 400, "invalid_since").await;
    }
    let r = app.sse_response(&format!("{path}?since="), &[]).await;
    assert_error(r, 400, "invalid_since").await;
    // An empty Last-Event-ID is no id (browsers never send one): the whole history.
    let mut stream = app.sse(&path, &[("Last-Event-ID", "")]).await;
    assert_eq!(stream.next_event().await.id.as_deref(), Some("0"));
    let r = app
        .sse_response(&format!("/api/agents/{}/events", Uuid::new_v4()), &[])
        .await;
    assert_error(r, 404, "agent_not_found").await;
    let r = app.sse_response("/api/agents/not-an-id/events", &[]).await;
    assert_error(r, 400, "invalid_id").await;
    let r = app.client.post(app.url(&path)).send().await.unwrap();
    assert_error(r, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn the_streams_need_the_token_which_the_url_may_carry() {
    const TOKEN: &str = "sse-test-token-0123456789abcdef0123456789";
    let app = TestServer::builder()
        .env("AGENTSTREAM__AUTH__TOKEN", TOKEN)
        .spawn(SERVER)
        .await;
    for path in [
        "/api/events".to_owned(),
        format!("/api/agents/{}/events", Uuid::new_v4()),
    ] {
        let r = app.sse_response(&path, &[]).await;
        assert_error(r, 401, "unauthorized").await;
        let r = app
            .sse_response(&format!("{path}?token=wrong-{TOKEN}"), &[])
            .await;
        assert_error(r, 401, "unauthorized").await;
    }
    // A browser's EventSource cannot send a header: the token may be in the URL, as on /ws.
    let mut lifecycle = app.sse(&format!("/api/events?token={TOKEN}"), &[]).await;
    let app = app.with_token(TOKEN);
    let agent = app.launch(3, 0).await;
    let created = lifecycle.next_event().await;
    assert_eq!(created.event, "agent:created");
    let mut stream = app
        .sse(&format!("/api/agents/{}/events", agent.id), &[])
        .await;
    assert_eq!(stream.next_event().await.event, "subscribed");
    // Elsewhere in /api the URL's token is refused, as before.
    let r = reqwest::get(app.url(&format!("/api/agents?token={TOKEN}")))
        .await
        .unwrap();
    assert_error(r, 401, "unauthorized").await;
}

#[tokio::test]
async fn lifecycle_events_of_every_agent_reach_the_global_stream() {
    let app = TestServer::spawn(SERVER).await;
    let mut lifecycle = app.sse("/api/events", &[]).await;
    let agent = app.launch(5, 0).await;
    app.wait_finished(agent.id).await;
    assert_eq!(app.delete_agent(agent.id, true).await.status(), 204);
    let events = lifecycle.events_until("agent:deleted").await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"agent:created"));
    assert!(events
        .iter()
        .any(|e| e.event == "agent:status" && e.data["status"] == "completed"));
    assert_eq!(events.last().unwrap().data["agentId"], agent.id.to_string());
    // Only lifecycle events: no message of the agent.
    assert!(
        events.iter().all(|e| e.event != "agent:message"),
        "{names:?}"
    );
    assert!(events.iter().all(|e| e.id.is_none()));
}

#[tokio::test]
async fn a_client_too_slow_for_its_stream_is_cut_and_recovers_with_its_last_id() {
    // A small backlog: a client that stops reading passes it quickly.
    let app = TestServer::builder()
        .env("AGENTSTREAM__WEBSOCKET__MAX_QUEUED_BYTES", "65536")
        .spawn(SERVER)
        .await;
    let agent = app.launch(20_000, 0).await;
    let mut stream = app
        .sse(&format!("/api/agents/{}/events", agent.id), &[])
        .await;
    assert_eq!(stream.next_event().await.event, "subscribed");
    // It reads nothing while the agent streams.
    let done = app.wait_finished(agent.id).await;
    assert_eq!(done.status, AgentStatus::Completed);
    let mut got = Vec::new();
    let mut cut = false;
    loop {
        match stream.next().await {
            SseItem::Event(e) => got.push(e),
            SseItem::Comment(c) => cut |= c.starts_with("slow_consumer"),
            SseItem::End => break,
        }
    }
    assert!(cut, "the stream said why it ended");
    // Counted where the registry cut it, before the stream said so.
    // (WebSocket, SSE)
    assert_eq!(crate::metrics::slow_consumer_cuts(&app).await, (0.0, 1.0));
    let before = messages(&got);
    let stored = app.messages(agent.id, None).await;
    assert!(before.len() < stored.len(), "it was cut before the end");
    assert_eq!(
        before[..],
        stored[..before.len()],
        "what came before the cut is exact"
    );
    // Reconnecting with its last id gives exactly the rest.
    let last = before.last().map_or(0, |m| m.sequence_number).to_string();
    let mut again = app
        .sse(
            &format!("/api/agents/{}/events", agent.id),
            &[("Last-Event-ID", &last)],
        )
        .await;
    let mut rest = Vec::new();
    while let Some(item) = again.next_within(Duration::from_millis(500)).await {
        if let SseItem::Event(e) = item {
            rest.push(e);
        }
    }
    assert_eq!(messages(&rest), stored[before.len()..].to_vec());
    assert_eq!(
        json!(stored.len()),
        json!(before.len() + messages(&rest).len())
    );
}
