//! Faults of what the server depends on: a full database, a database gone read-only, a database locked by
//! someone else, a Claude proxy that answers 500 or goes silent. The agent
//! that cannot write fails with a clear error; the server stays up; nothing stored is damaged.

use std::time::Duration;

use agentstream_testkit::{assert_contiguous, on_sqlite, TestDir, TestServer};
use agentstream_wire::{AgentStatus, ServerEvent};
use sea_orm::sqlx::{self, Connection, SqliteConnection};

use crate::SERVER;

/// Holds SQLite's write lock on the server's database for `hold`, from another connection.
async fn lock_database(dir: &std::path::Path, hold: Duration) {
    let url = format!("sqlite://{}/agent.db", dir.display());
    let mut conn = SqliteConnection::connect(&url)
        .await
        .expect("open the database");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .expect("take the write lock");
    tokio::time::sleep(hold).await;
    sqlx::query("COMMIT")
        .execute(&mut conn)
        .await
        .expect("release the write lock");
}

#[tokio::test]
async fn a_full_database_fails_the_writing_agent_and_keeps_everything_stored() {
    if !on_sqlite("database.max_size_bytes caps a SQLite file") {
        return;
    }
    let app = TestServer::builder()
        .env("AGENTSTREAM__DATABASE__MAX_SIZE_BYTES", "1048576")
        .spawn(SERVER)
        .await;
    let small = app.launch(50, 0).await;
    app.wait_finished(small.id).await;
    let before = app.messages(small.id, None).await;

    let big = app.launch(100_000, 0).await;
    let mut ws = app.ws().await;
    ws.subscribe(big.id, Some(0)).await;
    let ended = app.wait_finished(big.id).await;
    assert_eq!(ended.status, AgentStatus::Failed, "{ended:?}");
    let error = ended.error.expect("an error on the agent");
    assert_eq!(error.code, "storage_error", "{error:?}");
    // Its subscribers were told why.
    loop {
        match ws.next_event().await {
            ServerEvent::AgentError(e) if e.agent_id == big.id => {
                assert_eq!(e.error.code, "storage_error");
                break;
            }
            _ => {}
        }
    }
    // What was stored is intact and readable; the server is up.
    assert_eq!(app.messages(small.id, None).await, before);
    let kept = app.messages(big.id, None).await;
    assert!(
        !kept.is_empty() && kept.len() < 100_000,
        "{} kept",
        kept.len()
    );
    assert_contiguous(&kept, 1);
    app.assert_healthy().await;
    assert!(
        app.log().contains("full"),
        "the log should say the database is full"
    );
}

#[tokio::test]
async fn a_lock_held_shorter_than_the_busy_timeout_only_delays_the_writes() {
    if !on_sqlite("SQLite's file lock and busy timeout") {
        return;
    }
    let app = TestServer::builder()
        .env("AGENTSTREAM__DATABASE__BUSY_TIMEOUT_MS", "5000")
        .spawn(SERVER)
        .await;
    let dir = app.dir().to_path_buf();
    let agent = app.launch(3_000, 0).await;
    app.wait_messages(agent.id, 10).await;
    lock_database(&dir, Duration::from_millis(1500)).await;
    let ended = app.wait_finished(agent.id).await;
    assert_eq!(ended.status, AgentStatus::Completed, "{ended:?}");
    let history = app.messages(agent.id, None).await;
    assert_eq!(history.len(), 3_003);
    assert_contiguous(&history, 1);
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_fails_the_agent_not_the_server() {
    if !on_sqlite("SQLite's file lock and busy timeout") {
        return;
    }
    let app = TestServer::builder()
        .env("AGENTSTREAM__DATABASE__BUSY_TIMEOUT_MS", "100")
        .spawn(SERVER)
        .await;
    let dir = app.dir().to_path_buf();
    let agent = app.launch(1_000_000, 1).await;
    app.wait_messages(agent.id, 10).await;
    lock_database(&dir, Duration::from_millis(1500)).await;
    let ended = app.wait_finished(agent.id).await;
    assert_eq!(ended.status, AgentStatus::Failed, "{ended:?}");
    assert_eq!(ended.error.expect("error").code, "storage_error");
    assert_contiguous(&app.messages(agent.id, None).await, 1);
    // Once the lock is gone, the server works as before.
    let next = app.launch(100, 0).await;
    assert_eq!(
        app.wait_finished(next.id).await.status,
        AgentStatus::Completed
    );
    assert_eq!(app.messages(next.id, None).await.len(), 103);
}

/// A fake proxy on 127.0.0.1 that accepts connections, reads the request and then answers only
/// `reply` (possibly nothing) and stays silent, holding the connection open.
async fn silent_proxy(reply: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(reply.as_bytes()).await;
            held.push(socket);
        }
    });
    url
}

#[tokio::test]
async fn a_proxy_answering_500_fails_the_agent_with_its_status_and_body() {
    let url = silent_proxy(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 18\r\n\r\nthe CLI is missing",
    )
    .await;
    let app = TestServer::builder().claude_proxy(&url).spawn(SERVER).await;
    let ended = app.run_claude_to_end("hi").await;
    assert_eq!(ended.status, AgentStatus::Failed);
    let error = ended.error.expect("an error");
    assert_eq!(error.code, "proxy_http_error", "{error:?}");
    assert!(
        error.message.contains("500") && error.message.contains("the CLI is missing"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_proxy_that_goes_silent_fails_the_agent_after_the_read_timeout() {
    for (reply, what) in [
        ("", "no headers"),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            "headers, then nothing",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n2b\r\ndata: {\"type\":\"system\",\"subtype\":\"hello\"}\n\n\r\n",
            "one event, then nothing",
        ),
    ] {
        let url = silent_proxy(reply).await;
        let app =
            TestServer::builder().claude_proxy(&url).env("AGENTSTREAM__CLAUDE__PROXY_READ_TIMEOUT_MS", "500").spawn(SERVER)
                .await;
        let ended = app.run_claude_to_end("hi").await;
        assert_eq!(ended.status, AgentStatus::Failed, "{what}: {ended:?}");
        let error = ended.error.expect("an error");
        assert_eq!(error.code, "proxy_timeout", "{what}: {error:?}");
        assert!(error.message.contains("claude.proxy_read_timeout_ms"), "{error:?}");
        let kept = app.messages(ended.id, None).await;
        assert_contiguous(&kept, 1);
        if what.starts_with("one event") {
            assert_eq!(kept.len(), 1, "the event before the silence is kept");
        }
        app.assert_healthy().await;
    }
}

/// Sets or clears the immutable flag (`chattr ±i`): every write to the file fails from then on, even
/// through descriptors opened before — a database gone read-only under a running server.
fn immutable(path: &std::path::Path, on: bool) -> bool {
    let flag = if on { "+i" } else { "-i" };
    std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

/// Files made immutable, made writable again when dropped (even by a failing test: an immutable file
/// could not be deleted).
struct ReadOnly(Vec<std::path::PathBuf>);

impl ReadOnly {
    fn new(files: &[std::path::PathBuf]) -> ReadOnly {
        let guard = ReadOnly(files.to_vec());
        for f in files {
            assert!(immutable(f, true), "chattr +i {} (e2fsprogs)", f.display());
        }
        guard
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        for f in &self.0 {
            immutable(f, false);
        }
    }
}

#[tokio::test]
async fn a_database_gone_read_only_fails_the_writing_agent_and_keeps_the_server_up() {
    if !on_sqlite("a SQLite file made read-only") {
        return;
    }
    // On the target folder's file system (ext4 here), which supports the immutable flag.
    let dir = TestDir::new_in(env!("CARGO_TARGET_TMPDIR"));
    let app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    let done = app.launch(30, 0).await;
    app.wait_finished(done.id).await;
    let before = app.messages(done.id, None).await;

    let agent = app.launch(1_000_000, 1).await;
    let mut ws = app.ws().await;
    ws.subscribe(agent.id, Some(0)).await;
    app.wait_messages(agent.id, 20).await;
    let read_only = ReadOnly::new(&[dir.path().join("agent.db"), dir.path().join("agent.db-wal")]);
    // The agent's subscribers hear why it stops, although nothing can be stored.
    let error = loop {
        match ws.next_event().await {
            ServerEvent::AgentError(e) if e.agent_id == agent.id => break e.error,
            _ => {}
        }
    };
    drop(read_only);
    assert_eq!(error.code, "storage_error", "{error:?}");
    // Writable again: the final status goes in (it is retried), the server never went down.
    let ended = app.wait_finished(agent.id).await;
    assert_eq!(ended.status, AgentStatus::Failed, "{ended:?}");
    assert_eq!(ended.error.expect("error").code, "storage_error");
    assert_contiguous(&app.messages(agent.id, None).await, 1);
    assert_eq!(app.messages(done.id, None).await, before);
    let next = app.launch(50, 0).await;
    assert_eq!(
        app.wait_finished(next.id).await.status,
        AgentStatus::Completed
    );
}

#[tokio::test]
async fn an_unreachable_database_at_start_is_a_clear_error_that_hides_the_password() {
    // Port 1: nothing listens there.
    for (url, reason) in [
        (
            "postgres://agent:hunter2@127.0.0.1:1/agents",
            "Connection refused",
        ),
        (
            "sqlite:///proc/no-such-folder/agent.db",
            "/proc/no-such-folder",
        ),
    ] {
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::process::Command::new(SERVER)
                .args(["serve", "--port", "0", "--database-url", url])
                .env("AGENTSTREAM__SERVER__STATIC_DIR", "/nonexistent")
                .output(),
        )
        .await
        .expect("it gives up at once")
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot "), "{stderr}");
        assert!(stderr.contains(reason), "{stderr}");
        assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    }
}

#[tokio::test]
async fn health_names_the_instance_and_turns_503_when_the_database_is_gone() {
    let dir = TestDir::new();
    let app = TestServer::builder()
        .dir(&dir)
        .env("AGENTSTREAM__INSTANCE__ID", "edge-7")
        .spawn(SERVER)
        .await;
    let postgres = agentstream_testkit::backend() == agentstream_testkit::Backend::Postgres;
    let mut expected = serde_json::json!({"status": "ok", "instance": "edge-7", "database": "up"});
    if postgres {
        // It listens to the other instances before it serves anything.
        expected["listener"] = "up".into();
        expected["lease"] = "held".into();
    }
    let health: serde_json::Value = app.get_json("/api/health").await;
    assert_eq!(health, expected);
    assert!(app.log().contains("edge-7"), "the log names the instance");
    if !postgres {
        eprintln!("NOT APPLICABLE on SQLite: a database that goes away under a running server");
        return;
    }
    // The database is dropped under the server (its connections are ended with it).
    drop(dir);
    let r = app.client.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let health: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (&health["status"], &health["database"]),
        (
            &serde_json::json!("unavailable"),
            &serde_json::json!("down")
        )
    );
}

#[tokio::test]
async fn postgres_gone_mid_run_fails_the_writing_agent_and_everything_recovers_when_it_returns() {
    if !agentstream_testkit::on_postgres("a database that goes away under running servers") {
        return;
    }
    let dir = TestDir::new();
    let other = dir.same_database();
    // A lease longer than the outage: the instances keep their agents through it.
    let start = |dir: &TestDir, id: &str| {
        TestServer::builder()
            .dir(dir)
            .env("AGENTSTREAM__INSTANCE__ID", id)
            .env("AGENTSTREAM__INSTANCE__LEASE_MS", "15000")
            .spawn(SERVER)
    };
    let a = start(&dir, "a").await;
    let b = start(&other, "b").await;
    let agent = a.launch(1_000_000, 2).await;
    let mut on_b = b.ws().await;
    on_b.subscribe(agent.id, Some(0)).await;
    a.wait_messages(agent.id, 50).await;

    dir.set_reachable(false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = a.client.get(a.url("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    tokio::time::sleep(Duration::from_secs(2)).await;
    dir.set_reachable(true).await;

    // The writing agent failed with storage_error (its final status stored once the database is back).
    let failed = a.wait_finished(agent.id).await;
    assert_eq!(failed.status, AgentStatus::Failed, "{failed:?}");
    assert_eq!(
        failed.error.as_ref().map(|e| e.code.as_str()),
        Some("storage_error")
    );
    let history = a.messages(agent.id, None).await;
    assert_contiguous(&history, 1);
    // b's client got what was stored, once each, in order, and the failure.
    let mut seen = Vec::new();
    loop {
        match on_b.try_next_event(Duration::from_secs(20)).await {
            Some(ServerEvent::AgentMessage(m)) => seen.push(m.message),
            Some(ServerEvent::AgentStatus(s)) if s.status == AgentStatus::Failed => break,
            Some(_) => {}
            None => panic!("b's client: {} messages, then nothing", seen.len()),
        }
    }
    assert!(
        seen == history,
        "{} seen, {} stored",
        seen.len(),
        history.len()
    );
    // Both serve again: healthy, a launch on one is watched from the other.
    for server in [&a, &b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !server.is_healthy().await {
            assert!(std::time::Instant::now() < deadline, "{}", server.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let fresh = a.launch(100, 0).await;
    on_b.subscribe(fresh.id, Some(0)).await;
    let (messages, _) = on_b.collect_until_complete(fresh.id).await;
    assert_eq!(messages, a.messages(fresh.id, None).await);
    assert_eq!(messages.len(), 103);
}
