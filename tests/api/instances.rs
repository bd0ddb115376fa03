//! Several instances on one PostgreSQL database: what one stores, every client of the others gets —
//! exactly once, in order, equal to the history. (On SQLite, which has one instance, they say NOT
//! APPLICABLE.)

use agentstream_testkit::{assert_contiguous, on_postgres, TestDir, TestServer};
use agentstream_wire::{AgentStatus, ServerEvent};

use crate::SERVER;

/// Three instances, `a`, `b` and `c`, on the database of `dir`.
async fn three(dir: &TestDir, others: &[TestDir; 2]) -> [TestServer; 3] {
    let start = |dir: &TestDir, id: &str| {
        TestServer::builder()
            .dir(dir)
            .env("AGENTSTREAM__INSTANCE__ID", id)
            .spawn(SERVER)
    };
    [
        start(dir, "a").await,
        start(&others[0], "b").await,
        start(&others[1], "c").await,
    ]
}

#[tokio::test]
async fn an_agent_launched_on_one_instance_reaches_the_clients_of_the_others_exactly_once_in_order()
{
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let others = [dir.same_database(), dir.same_database()];
    let [a, b, c] = three(&dir, &others).await;
    let agent = a.launch(2000, 1).await;
    let (mut on_b, mut on_c) = (b.ws().await, c.ws().await);
    on_b.subscribe(agent.id, Some(0)).await;
    on_c.subscribe(agent.id, Some(0)).await;
    let (from_b, events_b) = on_b.collect_until_complete(agent.id).await;
    let (from_c, _) = on_c.collect_until_complete(agent.id).await;
    let history = a.messages(agent.id, None).await;
    assert_eq!(history.len(), 2003);
    assert_contiguous(&history, 1);
    assert_eq!(from_b, history, "b: exactly once, in order");
    assert_eq!(from_c, history, "c: exactly once, in order");
    assert!(events_b.iter().any(|e| matches!(e,
        ServerEvent::AgentComplete(done) if done.result.last_sequence == 2003)));
    // The same history through every instance's REST.
    assert_eq!(b.messages(agent.id, None).await, history);
}

#[tokio::test]
async fn thirty_agents_spread_over_three_instances_are_each_watched_from_another() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let others = [dir.same_database(), dir.same_database()];
    let servers = three(&dir, &others).await;
    let mut watched = Vec::new();
    for i in 0..30 {
        let owner = &servers[i % 3];
        let watcher = &servers[(i + 1) % 3];
        let agent = owner.launch(300, 2).await;
        let mut ws = watcher.ws().await;
        ws.subscribe(agent.id, Some(0)).await;
        watched.push((agent.id, owner, ws));
    }
    for (id, owner, mut ws) in watched {
        let (messages, _) = ws.collect_until_complete(id).await;
        assert_eq!(messages, owner.messages(id, None).await, "{id}");
        assert_eq!(messages.len(), 303, "{id}");
    }
}

#[tokio::test]
async fn lifecycle_events_reach_every_instance() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let others = [dir.same_database(), dir.same_database()];
    let [a, b, _c] = three(&dir, &others).await;
    let mut on_b = b.ws().await;
    let agent = a.launch(5, 0).await;
    a.wait_finished(agent.id).await;
    assert_eq!(a.delete_agent(agent.id, true).await.status(), 204);
    let (mut created, mut completed, mut deleted) = (false, false, false);
    while !(created && completed && deleted) {
        match on_b.next_event().await {
            ServerEvent::AgentCreated(c) if c.agent.id == agent.id => created = true,
            ServerEvent::AgentStatus(s) if s.agent_id == agent.id => {
                assert!(created, "created first");
                completed |= s.status == AgentStatus::Completed;
            }
            ServerEvent::AgentDeleted(d) if d.agent_id == agent.id => {
                assert!(completed && d.purged);
                deleted = true;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_listener_cut_by_the_database_catches_up_without_a_hole() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let others = [dir.same_database(), dir.same_database()];
    let [a, b, _c] = three(&dir, &others).await;
    let agent = a.launch(3000, 2).await;
    let mut on_b = b.ws().await;
    on_b.subscribe(agent.id, Some(0)).await;
    a.wait_messages(agent.id, 200).await;
    // PostgreSQL ends every listening connection of this database, twice during the stream.
    let db = sea_orm::Database::connect(dir.database_url())
        .await
        .unwrap();
    use sea_orm::ConnectionTrait;
    for _ in 0..2 {
        let ended = db
            .query_all(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            ))
            .await
            .unwrap();
        assert!(!ended.is_empty(), "a listening connection");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let mut messages = Vec::new();
    loop {
        match on_b
            .try_next_event(std::time::Duration::from_secs(20))
            .await
        {
            Some(ServerEvent::AgentMessage(m)) => messages.push(m.message),
            Some(ServerEvent::AgentComplete(c)) if c.agent_id == agent.id => break,
            Some(_) => {}
            None => panic!(
                "b got {} messages (last {:?}), then nothing; its log:\n{}",
                messages.len(),
                messages.last().map(|m| m.sequence_number),
                b.log()
            ),
        }
    }
    let history = a.messages(agent.id, None).await;
    assert_eq!(messages, history);
    assert_eq!(history.len(), 3003);
}

#[tokio::test]
async fn notifications_that_are_not_ours_are_ignored() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let others = [dir.same_database(), dir.same_database()];
    let [a, b, _c] = three(&dir, &others).await;
    // Connected before: whatever the listener passed on would reach it.
    let mut on_b = b.ws().await;
    let db = sea_orm::Database::connect(dir.database_url())
        .await
        .unwrap();
    use sea_orm::ConnectionTrait;
    let unknown = uuid::Uuid::now_v7();
    for payload in [
        "not json at all".to_owned(),
        r#"{"something":"else"}"#.to_owned(),
        format!(r#"{{"instance":"x","messages":[["{unknown}",1,99]],"events":[[null,"{{}}"]]}}"#),
        format!(r#"{{"instance":"x","created":["{unknown}"]}}"#),
    ] {
        db.execute(sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT pg_notify('agentstream', $1)",
            [payload.into()],
        ))
        .await
        .unwrap();
    }
    // The instances go on showing each other's agents, and no client got anything of it.
    let agent = a.launch(200, 1).await;
    on_b.subscribe(agent.id, Some(0)).await;
    let (messages, events) = on_b.collect_until_complete(agent.id).await;
    assert_eq!(messages, a.messages(agent.id, None).await);
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, ServerEvent::AgentCreated(c) if c.agent.id == unknown)),
        "{events:?}"
    );
    b.assert_healthy().await;
}
