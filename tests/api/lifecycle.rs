//! Terminating, purging, and restarting on the same database.

use std::time::Duration;

use agentstream_testkit::{assert_contiguous, assert_error, TestDir, TestServer};
use agentstream_wire::{AgentStatus, ServerEvent};

use crate::SERVER;

#[tokio::test]
async fn delete_mid_stream_terminates_and_keeps_a_contiguous_history() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(5000, 2).await;
    let mut ws = app.ws().await;
    ws.subscribe(agent.id, Some(0)).await;
    app.wait_messages(agent.id, 30).await;

    let r = app.delete_agent(agent.id, false).await;
    assert_eq!(r.status(), 204);
    // The DELETE returns once the runner is stopped and the status stored.
    assert_eq!(app.agent(agent.id).await.status, AgentStatus::Terminated);

    // Lifecycle events go to every connection at once, while the room's messages may still be in the
    // subscription's replay (a loaded machine): a message may follow the status on the socket, but
    // none is stored after it.
    let final_count = app.messages(agent.id, None).await.len();
    let mut saw_status = false;
    let mut saw_deleted = false;
    let mut delivered = Vec::new();
    while !(saw_status && saw_deleted && delivered.len() >= final_count) {
        match ws.next_event().await {
            ServerEvent::AgentMessage(m) => {
                assert!(
                    m.message.sequence_number as usize <= final_count,
                    "a message stored after the terminated status"
                );
                delivered.push(m.message);
            }
            ServerEvent::AgentStatus(s) if s.status == AgentStatus::Terminated => saw_status = true,
            ServerEvent::AgentDeleted(d) => {
                assert!(saw_status, "agent:deleted comes after agent:status");
                assert!(!d.purged);
                saw_deleted = true;
            }
            _ => {}
        }
    }
    let stored = app.messages(agent.id, None).await;
    assert_contiguous(&stored, 1);
    assert!(stored.len() < 5003, "the runner was stopped early");
    assert_eq!(delivered, stored);
    // Nothing more is written after termination.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.messages(agent.id, None).await.len(), stored.len());
    // DELETE again: still 204, status unchanged.
    let r = app.delete_agent(agent.id, false).await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.agent(agent.id).await.status, AgentStatus::Terminated);
}

#[tokio::test]
async fn delete_of_a_finished_agent_keeps_its_status() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(3, 0).await;
    app.wait_finished(agent.id).await;
    let r = app.delete_agent(agent.id, false).await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.agent(agent.id).await.status, AgentStatus::Completed);
    assert_eq!(app.messages(agent.id, None).await.len(), 6);
}

#[tokio::test]
async fn purge_mid_stream_removes_everything_and_the_server_stays_healthy() {
    let app = TestServer::spawn(SERVER).await;
    let keep = app.launch(10, 0).await;
    let agent = app.launch(5000, 1).await;
    let mut watcher = app.ws().await;
    app.wait_messages(agent.id, 20).await;
    let r = app.delete_agent(agent.id, true).await;
    assert_eq!(r.status(), 204);
    assert_error(
        app.client
            .get(app.url(&format!("/api/agents/{}", agent.id)))
            .send()
            .await
            .unwrap(),
        404,
        "agent_not_found",
    )
    .await;
    let r = app
        .client
        .get(app.url(&format!("/api/agents/{}/messages", agent.id)))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "agent_not_found").await;
    loop {
        if let ServerEvent::AgentDeleted(d) = watcher.next_event().await {
            assert_eq!(d.agent_id, agent.id);
            assert!(d.purged);
            break;
        }
    }
    let listed: Vec<agentstream_wire::Agent> = app.get_json("/api/agents").await;
    assert!(listed.iter().all(|a| a.id != agent.id));
    assert!(listed.iter().any(|a| a.id == keep.id));
    app.wait_finished(keep.id).await;
    assert_contiguous(&app.messages(keep.id, None).await, 1);
    app.assert_healthy().await;
    assert!(!app.log().contains("panicked"), "{}", app.log());
}

#[tokio::test]
async fn agents_are_listed_newest_first() {
    let app = TestServer::spawn(SERVER).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.launch(1, 0).await.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let listed: Vec<agentstream_wire::Agent> = app.get_json("/api/agents").await;
    let listed: Vec<_> = listed.iter().map(|a| a.id).collect();
    ids.reverse();
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn restart_on_the_same_file_keeps_history_and_interrupts_what_ran() {
    let dir = TestDir::new();
    let mut app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    let done = app.launch(50, 0).await;
    app.wait_finished(done.id).await;
    let done_history = app.messages(done.id, None).await;
    let running = app.launch(100_000, 5).await;
    app.wait_messages(running.id, 40).await;
    app.kill().await;

    let app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    let mut watcher = app.ws().await;
    assert_eq!(app.messages(done.id, None).await, done_history);
    assert_eq!(app.agent(done.id).await.status, AgentStatus::Completed);
    let interrupted = app.agent(running.id).await;
    assert_eq!(interrupted.status, AgentStatus::Interrupted);
    let history = app.messages(running.id, None).await;
    assert!(history.len() >= 40);
    assert_contiguous(&history, 1);
    // A subscriber can still read it all, and nothing more comes.
    watcher.subscribe(running.id, Some(0)).await;
    let mut replayed = Vec::new();
    while let Some(event) = watcher.try_next_event(Duration::from_millis(500)).await {
        if let ServerEvent::AgentMessage(m) = event {
            replayed.push(m.message);
        }
    }
    assert_eq!(replayed, history);
}

#[tokio::test]
async fn an_agent_deleted_behind_the_servers_back_stops_with_an_error() {
    let dir = TestDir::new();
    let app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    let agent = app.launch(100_000, 2).await;
    let mut ws = app.ws().await;
    ws.subscribe(agent.id, Some(0)).await;
    app.wait_messages(agent.id, 20).await;

    // Another process removes the row (and, by the cascade, its messages).
    let db = sea_orm::Database::connect(dir.database_url())
        .await
        .unwrap();
    use sea_orm::ConnectionTrait;
    let deleted = db
        .execute_unprepared(&format!("DELETE FROM agents WHERE id = '{}'", agent.id))
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
        // The server put the file in WAL mode (a property of the file, seen by every connection).
        let mode = db
            .query_one(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                "PRAGMA journal_mode",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mode.try_get_by_index::<String>(0).unwrap(), "wal");
    }

    loop {
        match ws.next_event().await {
            ServerEvent::AgentError(e) => {
                assert_eq!(e.agent_id, agent.id);
                assert_eq!(e.error.code, "agent_deleted");
                break;
            }
            ServerEvent::AgentComplete(c) => panic!("unexpected completion {c:?}"),
            _ => {}
        }
    }
    let r = app
        .client
        .get(app.url(&format!("/api/agents/{}", agent.id)))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "agent_not_found").await;
    // The runner stopped: nothing is written for it any more, and the server goes on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    use sea_orm::{EntityTrait, PaginatorTrait};
    assert_eq!(entity::AgentMessage::find().count(&db).await.unwrap(), 0);
    let next = app.launch(5, 0).await;
    assert_eq!(
        app.wait_finished(next.id).await.status,
        AgentStatus::Completed
    );
    assert!(!app.log().contains("panicked"));
}
