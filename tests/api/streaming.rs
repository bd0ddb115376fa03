//! Tokens flow from the runner through storage to subscribers: complete, contiguous, in order, and what
//! the WebSocket delivered is exactly what REST returns.

use agentstream_testkit::{assert_contiguous, TestServer};
use agentstream_wire::{AgentStatus, MessageType, ServerEvent};
use futures_util::future::join_all;

use crate::SERVER;

#[tokio::test]
async fn synthetic_200_tokens_reach_a_subscriber_exactly_once_in_order() {
    let app = TestServer::spawn(SERVER).await;
    let mut ws = app.ws().await;
    let agent = app.launch(200, 1).await;
    ws.subscribe(agent.id, Some(0)).await;
    let (delivered, events) = ws.collect_until_complete(agent.id).await;

    assert_contiguous(&delivered, 1);
    let tokens: Vec<_> = delivered
        .iter()
        .filter(|m| m.message_type == MessageType::Assistant)
        .collect();
    assert_eq!(tokens.len(), 200);
    assert!(tokens
        .iter()
        .all(|m| m.metadata["eventType"] == "content_delta"));

    let complete = events.iter().rev().find_map(|e| match e {
        ServerEvent::AgentComplete(c) => Some(c.clone()),
        _ => None,
    });
    let complete = complete.expect("agent:complete");
    assert_eq!(complete.result.status, AgentStatus::Completed);
    assert_eq!(complete.result.last_sequence, delivered.len() as i64);

    // What the socket showed is exactly what is stored.
    let stored = app.messages(agent.id, None).await;
    assert_eq!(stored, delivered);
    let agent = app.agent(agent.id).await;
    assert_eq!(agent.status, AgentStatus::Completed);
    assert!(agent.started_at.is_some() && agent.completed_at.is_some());
}

#[tokio::test]
async fn since_returns_exactly_the_tail() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(30, 0).await;
    app.wait_finished(agent.id).await;
    let all = app.messages(agent.id, None).await;
    assert_eq!(all.len(), 33, "init + 30 tokens + usage + result");
    assert_contiguous(&all, 1);
    for since in [0, 1, 17, 32, 33, 1000] {
        let tail = app.messages(agent.id, Some(since)).await;
        let expected: Vec<_> = all
            .iter()
            .filter(|m| m.sequence_number > since)
            .cloned()
            .collect();
        assert_eq!(tail, expected, "since={since}");
    }
    let page: Vec<agentstream_wire::StoredMessage> = app
        .get_json(&format!(
            "/api/agents/{}/messages?since=10&limit=5",
            agent.id
        ))
        .await;
    assert_eq!(page, all[10..15].to_vec());
}

#[tokio::test]
async fn subscribe_with_since_replays_exactly_the_tail_of_a_finished_agent() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(20, 0).await;
    app.wait_finished(agent.id).await;
    let all = app.messages(agent.id, None).await;
    for since in [0i64, 5, 23] {
        let mut ws = app.ws().await;
        ws.subscribe(agent.id, Some(since)).await;
        let s = ws.expect_subscribed().await;
        assert_eq!(s.agent_id, agent.id);
        assert_eq!(s.last_sequence, all.len() as i64);
        assert_eq!(s.status, Some(AgentStatus::Completed));
        let mut got = Vec::new();
        while let Some(event) = ws
            .try_next_event(std::time::Duration::from_millis(300))
            .await
        {
            match event {
                ServerEvent::AgentMessage(m) => got.push(m.message),
                other => panic!("unexpected {other:?}"),
            }
        }
        let expected: Vec<_> = all
            .iter()
            .filter(|m| m.sequence_number > since)
            .cloned()
            .collect();
        assert_eq!(got, expected, "since={since}");
    }
}

#[tokio::test]
async fn subscribing_mid_stream_with_since_has_no_gap_and_no_duplicate() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(400, 2).await;
    // Subscribers join at different moments, each from a different position.
    let mut clients = Vec::new();
    for since in [0i64, 10, 50, 120] {
        app.wait_messages(agent.id, since as usize + 5).await;
        let mut ws = app.ws().await;
        ws.subscribe(agent.id, Some(since)).await;
        clients.push((since, ws));
    }
    let results = join_all(clients.into_iter().map(|(since, mut ws)| async move {
        let (messages, _) = ws.collect_until_complete(agent.id).await;
        (since, messages)
    }))
    .await;
    let stored = app.messages(agent.id, None).await;
    assert_eq!(stored.len(), 403);
    for (since, messages) in results {
        let expected: Vec<_> = stored
            .iter()
            .filter(|m| m.sequence_number > since)
            .cloned()
            .collect();
        assert_eq!(messages, expected, "subscriber since={since}");
    }
}

#[tokio::test]
async fn subscribe_without_since_gets_what_comes_after_now() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(300, 2).await;
    app.wait_messages(agent.id, 20).await;
    let mut ws = app.ws().await;
    ws.subscribe(agent.id, None).await;
    let last = ws.expect_subscribed().await.last_sequence;
    assert!(last >= 20);
    let (messages, _) = ws.collect_until_complete(agent.id).await;
    assert_contiguous(&messages, last + 1);
    assert_eq!(messages.last().map(|m| m.sequence_number), Some(303));
}

#[tokio::test]
async fn fifty_concurrent_agents_each_number_from_one_without_holes() {
    let app = TestServer::spawn(SERVER).await;
    let launches = join_all((0..50).map(|_| app.launch(40, 0))).await;
    for agent in &launches {
        let done = app.wait_finished(agent.id).await;
        assert_eq!(done.status, AgentStatus::Completed);
    }
    for agent in &launches {
        let messages = app.messages(agent.id, None).await;
        assert_eq!(messages.len(), 43);
        assert_contiguous(&messages, 1);
        assert!(messages.iter().all(|m| m.agent_id == agent.id));
        let tokens = messages
            .iter()
            .filter(|m| m.message_type == MessageType::Assistant)
            .count();
        assert_eq!(tokens, 40);
    }
    let ids: std::collections::HashSet<_> = launches.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), 50);
}

#[tokio::test]
async fn every_connection_hears_of_agents_created_and_their_status() {
    let app = TestServer::spawn(SERVER).await;
    let mut watcher = app.ws().await;
    let agent = app.launch(3, 0).await;
    let mut created = false;
    let mut statuses = Vec::new();
    while statuses.last() != Some(&AgentStatus::Completed) {
        match watcher.next_event().await {
            ServerEvent::AgentCreated(c) if c.agent.id == agent.id => {
                assert_eq!(c.agent.status, AgentStatus::Initializing);
                created = true;
            }
            ServerEvent::AgentStatus(s) if s.agent_id == agent.id => statuses.push(s.status),
            ServerEvent::AgentMessage(_) => panic!("messages go only to the agent's room"),
            _ => {}
        }
    }
    assert!(created);
    assert_eq!(statuses, vec![AgentStatus::Running, AgentStatus::Completed]);
}

#[tokio::test]
async fn a_long_history_streams_whole_across_pages() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(2500, 0).await;
    app.wait_finished(agent.id).await;
    let all = app.messages(agent.id, None).await;
    assert_eq!(all.len(), 2503);
    assert_contiguous(&all, 1);
    // The same rows as limited pages would give.
    let first: Vec<agentstream_wire::StoredMessage> = app
        .get_json(&format!("/api/agents/{}/messages?limit=1500", agent.id))
        .await;
    assert_eq!(first, all[..1500].to_vec());
    assert_eq!(app.messages(agent.id, Some(999)).await, all[999..].to_vec());
    assert_eq!(app.messages(agent.id, Some(2503)).await, Vec::new());
}
