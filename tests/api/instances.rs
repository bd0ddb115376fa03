//! Several instances on one PostgreSQL database: what one stores, every client of the others gets —
//! exactly once, in order, equal to the history. (On SQLite, which has one instance, they say NOT
//! APPLICABLE.)

use std::time::{Duration, Instant};

use agentstream_testkit::{assert_contiguous, on_postgres, TestDir, TestServer, TEST_LEASE_MS};
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

/// The agent's status as `server` stores it, once it is `status` (panics after `within`).
async fn wait_status_within(
    server: &TestServer,
    id: uuid::Uuid,
    status: AgentStatus,
    within: Duration,
) -> Duration {
    let begun = Instant::now();
    while server.agent(id).await.status != status {
        assert!(
            begun.elapsed() < within,
            "{id} is still {:?} after {within:?}",
            server.agent(id).await.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    begun.elapsed()
}

#[tokio::test]
async fn commands_sent_to_any_instance_reach_the_agents_owner() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let others = [dir.same_database(), dir.same_database()];
    let [a, b, c] = three(&dir, &others).await;

    // A follow-up through b to an agent of a: a stores it and runs the next turn.
    let agent = a.launch(20, 1).await;
    a.wait_finished(agent.id).await;
    let stored = b.send(agent.id, "and more").await;
    let history = c.wait_answer(agent.id, &stored).await;
    assert_contiguous(&history, 1);
    assert!(history.contains(&stored));
    assert!(a.log().contains("and more") || a.log().contains(&agent.id.to_string()));

    // An interrupt through c of a turn a runs; then a DELETE through b and a purge through c.
    let long = a.launch(100_000, 5).await;
    a.wait_messages(long.id, 20).await;
    assert_eq!(c.interrupt(long.id).await.status(), 202);
    assert_eq!(
        a.wait_finished(long.id).await.status,
        AgentStatus::Interrupted
    );
    let running = a.launch(100_000, 5).await;
    a.wait_messages(running.id, 20).await;
    assert_eq!(b.delete_agent(running.id, false).await.status(), 204);
    // The owner stopped it: terminated at once, and nothing more is written.
    assert_eq!(a.agent(running.id).await.status, AgentStatus::Terminated);
    let kept = a.messages(running.id, None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.messages(running.id, None).await, kept);
    assert_contiguous(&kept, 1);
    assert_eq!(c.delete_agent(running.id, true).await.status(), 204);
    assert_eq!(
        a.client
            .get(a.url(&format!("/api/agents/{}", running.id)))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // What the owner refuses, a non-owner answers the same: no turn under way.
    agentstream_testkit::assert_error(b.interrupt(long.id).await, 409, "not_running").await;
}

#[tokio::test]
async fn a_killed_instances_running_agents_are_interrupted_by_another_within_the_lease() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let others = [dir.same_database(), dir.same_database()];
    let [mut a, b, c] = three(&dir, &others).await;
    let finished = a.launch(10, 0).await;
    a.wait_finished(finished.id).await;
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(a.launch(100_000, 5).await.id);
    }
    let mut on_b = b.ws().await;
    let mut on_c = c.ws().await;
    for id in &agents {
        on_b.subscribe(*id, Some(0)).await;
        on_c.subscribe(*id, Some(0)).await;
        a.wait_messages(*id, 20).await;
    }
    a.kill().await;
    let killed = Instant::now();
    // Every client of b and c hears each agent end `interrupted` once the lease has run out (the time
    // it takes is the benchmark's to measure; a loaded test machine only bounds it).
    let within = Duration::from_millis(TEST_LEASE_MS) + Duration::from_secs(10);
    for ws in [&mut on_b, &mut on_c] {
        let mut ended = std::collections::HashSet::new();
        let mut messages: std::collections::HashMap<uuid::Uuid, Vec<_>> = Default::default();
        while ended.len() < agents.len() {
            let left = within.saturating_sub(killed.elapsed());
            match ws.try_next_event(left).await {
                Some(ServerEvent::AgentMessage(m)) => {
                    messages.entry(m.agent_id).or_default().push(m.message)
                }
                Some(ServerEvent::AgentStatus(s)) if s.status == AgentStatus::Interrupted => {
                    ended.insert(s.agent_id);
                }
                Some(_) => {}
                None => panic!("after {:?} only {ended:?} ended", killed.elapsed()),
            }
        }
        // Each client got its agents' whole histories, once each, in order.
        for id in &agents {
            let history = b.messages(*id, None).await;
            assert_contiguous(&history, 1);
            assert_eq!(messages.get(id), Some(&history), "{id}");
        }
    }
    for id in &agents {
        assert_eq!(c.agent(*id).await.status, AgentStatus::Interrupted);
    }
    assert_eq!(b.agent(finished.id).await.status, AgentStatus::Completed);
    // A taken-over agent is continued by its new owner (b), whoever is asked.
    let stored = c.send(agents[0], "go on").await;
    b.wait_messages(agents[0], stored.sequence_number as usize + 20)
        .await;
    assert_eq!(c.interrupt(agents[0]).await.status(), 202);
    assert_eq!(
        b.wait_finished(agents[0]).await.status,
        AgentStatus::Interrupted
    );
    let history = c.messages(agents[0], None).await;
    assert_contiguous(&history, 1);
    assert!(history.contains(&stored));
}

#[tokio::test]
async fn a_frozen_instance_that_wakes_up_past_its_lease_cannot_write_any_more() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let others = [dir.same_database(), dir.same_database()];
    let [a, b, _c] = three(&dir, &others).await;
    let agent = a.launch(1_000_000, 1).await;
    let mut on_b = b.ws().await;
    on_b.subscribe(agent.id, Some(0)).await;
    a.wait_messages(agent.id, 100).await;
    a.signal("STOP");
    wait_status_within(
        &b,
        agent.id,
        AgentStatus::Interrupted,
        Duration::from_millis(TEST_LEASE_MS) + Duration::from_secs(10),
    )
    .await;
    let declared = b.messages(agent.id, None).await;
    a.signal("CONT");
    // It wakes up with a runner still producing and writes queued: the database refuses them all.
    tokio::time::sleep(Duration::from_millis(TEST_LEASE_MS + 1000)).await;
    let after = b.messages(agent.id, None).await;
    assert_eq!(after, declared, "a late write landed");
    assert_contiguous(&after, 1);
    assert_eq!(b.agent(agent.id).await.status, AgentStatus::Interrupted);
    assert!(a.log().contains("lease was taken over"), "{}", a.log());
    // b's client got the history, once, in order, and then the interruption.
    let mut seen = Vec::new();
    loop {
        match on_b.try_next_event(Duration::from_secs(5)).await {
            Some(ServerEvent::AgentMessage(m)) => seen.push(m.message),
            Some(ServerEvent::AgentStatus(s)) if s.status == AgentStatus::Interrupted => break,
            Some(_) => {}
            None => panic!("no interruption after {} messages", seen.len()),
        }
    }
    assert_eq!(seen, after);
    // a has claimed a new lease and works again.
    a.assert_healthy().await;
    let fresh = a.launch(50, 0).await;
    assert_eq!(
        a.wait_finished(fresh.id).await.status,
        AgentStatus::Completed
    );
    assert_eq!(b.messages(fresh.id, None).await.len(), 53);
}

#[tokio::test]
async fn two_instances_with_the_same_id_refuse_to_run_together() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let other = dir.same_database();
    let first = TestServer::builder()
        .dir(&dir)
        .env("AGENTSTREAM__INSTANCE__ID", "twin")
        .spawn(SERVER)
        .await;
    let begun = Instant::now();
    let second = TestServer::builder()
        .dir(&other)
        .env("AGENTSTREAM__INSTANCE__ID", "twin")
        .try_spawn(SERVER)
        .await;
    let Err(failure) = second else {
        panic!("a second instance with the id of a running one started")
    };
    assert_eq!(failure.code(), Some(1), "{failure}");
    assert!(failure.to_string().contains("\"twin\""), "{failure}");
    // It waited for the lease to be renewed before it said so, no longer.
    assert!(begun.elapsed() < Duration::from_millis(TEST_LEASE_MS) + Duration::from_secs(10));
    first.assert_healthy().await;
}

#[tokio::test]
async fn a_rolling_restart_under_load_leaves_no_hole_no_duplicate_and_nothing_running() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let dirs = [
        dir.same_database(),
        dir.same_database(),
        dir.same_database(),
    ];
    let ids = ["r0", "r1", "r2"];
    let start = |i: usize| {
        TestServer::builder()
            .dir(&dirs[i])
            .env("AGENTSTREAM__INSTANCE__ID", ids[i])
            .spawn(SERVER)
    };
    let mut servers = [start(0).await, start(1).await, start(2).await];
    // Agents stream on every instance; each is watched by a client of the next one.
    let mut agents = Vec::new();
    for i in 0..9 {
        let agent = servers[i % 3].launch(4000, 2).await;
        agents.push((agent.id, (i + 1) % 3));
    }
    let mut watchers = Vec::new();
    for (id, watcher) in &agents {
        let mut ws = servers[*watcher].ws().await;
        ws.subscribe(*id, Some(0)).await;
        watchers.push(Watcher {
            id: *id,
            on: *watcher,
            ws: Some(ws),
            seen: Vec::new(),
        });
    }
    for restarted in 0..3 {
        // Each watcher reads a while, and those on the instance about to stop move to another one,
        // where they subscribe again from what they have.
        for w in watchers.iter_mut() {
            w.read_for(Duration::from_millis(300)).await;
        }
        servers[restarted].signal("TERM");
        servers[restarted].wait_exit().await;
        for w in watchers.iter_mut().filter(|w| w.on == restarted) {
            w.on = (restarted + 1) % 3;
            w.read_for(Duration::from_millis(100)).await;
            w.resubscribe(&servers[w.on]).await;
        }
        servers[restarted] = start(restarted).await;
    }
    // Every agent ends: completed, or interrupted by its instance's stop — none left running.
    for w in watchers.iter_mut() {
        let server = &servers[w.on];
        let agent = server.wait_finished(w.id).await;
        assert!(
            matches!(
                agent.status,
                AgentStatus::Completed | AgentStatus::Interrupted
            ),
            "{agent:?}"
        );
        let history = server.messages(w.id, None).await;
        assert_contiguous(&history, 1);
        // The watcher gets the rest (through a new socket if its own was closed meanwhile).
        let deadline = Instant::now() + Duration::from_secs(20);
        while w.seen.len() < history.len() && Instant::now() < deadline {
            if w.ws.is_none() {
                w.resubscribe(server).await;
            }
            w.read_for(Duration::from_millis(500)).await;
        }
        assert!(
            w.seen == history,
            "{}: {} seen (last {}), {} stored",
            w.id,
            w.seen.len(),
            w.last(),
            history.len()
        );
    }
}

/// A client watching one agent through one instance, moving to another when it stops.
struct Watcher {
    id: uuid::Uuid,
    on: usize,
    ws: Option<agentstream_testkit::WsClient>,
    seen: Vec<agentstream_wire::StoredMessage>,
}

impl Watcher {
    /// Reads what comes for `d` (until the socket closes).
    async fn read_for(&mut self, d: Duration) {
        use agentstream_testkit::Incoming;
        let until = tokio::time::Instant::now() + d;
        loop {
            let Some(ws) = self.ws.as_mut() else { return };
            let text = match ws.next_incoming(until).await {
                Ok(Some(Incoming::Text(text))) => text,
                Ok(None) => return,
                Ok(Some(Incoming::Close(_) | Incoming::End)) | Err(_) => {
                    self.ws = None;
                    return;
                }
            };
            let event: ServerEvent = serde_json::from_str(&text).expect("an event");
            match event {
                ServerEvent::AgentMessage(m) if m.agent_id == self.id => {
                    let n = m.message.sequence_number;
                    assert_eq!(n, self.last() + 1, "{}: a hole or a duplicate", self.id);
                    self.seen.push(m.message);
                }
                _ => {}
            }
        }
    }

    fn last(&self) -> i64 {
        self.seen.last().map_or(0, |m| m.sequence_number)
    }

    async fn resubscribe(&mut self, server: &TestServer) {
        let mut ws = server.ws().await;
        ws.subscribe(self.id, Some(self.last())).await;
        self.ws = Some(ws);
    }
}

#[tokio::test]
async fn instances_started_together_on_a_new_database_all_start() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    dir.create_database().await.expect("the database");
    let others = [
        dir.same_database(),
        dir.same_database(),
        dir.same_database(),
    ];
    let start = |dir: &TestDir| TestServer::builder().dir(dir).try_spawn(SERVER);
    // They migrate the new database at the same moment: one does, the others wait for it.
    let (a, b, c, d) = tokio::join!(
        start(&dir),
        start(&others[0]),
        start(&others[1]),
        start(&others[2])
    );
    for server in [a, b, c, d] {
        let server = server.unwrap_or_else(|e| panic!("{e}"));
        server.assert_healthy().await;
    }
}
