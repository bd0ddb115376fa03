//! The `agentstream` command itself: `--help`, `watch` (over WebSocket and, with `--sse`, over
//! Server-Sent Events, across a server restart), `send` and `answer`.

use agentstream_testkit::{assert_contiguous, joined, TestDir, TestServer, TEST_LEASE_MS, TIMEOUT};
use agentstream_wire::{Agent, AgentStatus, StoredMessage};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::SERVER;

#[tokio::test]
async fn help_documents_the_settings() {
    let out = tokio::process::Command::new(SERVER)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--port",
        "--host",
        "--database-url",
        "AGENTSTREAM__",
        "watch",
        "serve",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
}

#[tokio::test]
async fn watch_prints_the_answer_and_exits_when_the_agent_completes() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(40, 5).await;
    let out = tokio::process::Command::new(SERVER)
        .args(["watch", &agent.id.to_string(), "--url", &app.address])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stored = app.messages(agent.id, None).await;
    let text = joined(&stored, "content_delta");
    assert!(
        stdout.contains(&text),
        "watch output lacks the answer:\n{stdout}"
    );
    assert!(stdout.contains("[completed] 43 messages"), "{stdout}");

    // An unknown agent is a clear error, not a hang.
    let out = tokio::process::Command::new(SERVER)
        .args([
            "watch",
            &uuid::Uuid::new_v4().to_string(),
            "--url",
            &app.address,
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("agent_not_found"));
}

#[tokio::test]
async fn send_continues_an_agent_and_watches_the_answer_and_answer_allows_a_tool() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(5, 0).await;
    app.wait_finished(agent.id).await;
    let id = agent.id.to_string();
    let out = tokio::process::Command::new(SERVER)
        .args(["send", &id, "tell me more", "--url", &app.address])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[you] tell me more"), "{stdout}");
    // The answer, then the end (with the run's figures when the watch saw it end live).
    let stored = app.messages(agent.id, None).await;
    let answer = &stored.last().unwrap().content;
    assert!(stdout.contains(answer.as_str()), "{stdout}");
    assert!(stdout.contains("[completed]"), "{stdout}");

    // A permission request, shown by watch with its id, answered by `answer`.
    let asking = app
        .try_launch_synthetic(
            "ask",
            &agentstream_wire::SyntheticConfig {
                ask_permission: Some(true),
                tokens: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let asked = app.wait_permission_request(asking.id, 0).await;
    let request = agentstream_testkit::request_id(&asked);
    let answer = tokio::process::Command::new(SERVER)
        .args([
            "answer",
            &asking.id.to_string(),
            &request,
            "allow",
            "--url",
            &app.address,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        answer.status.success(),
        "{}",
        String::from_utf8_lossy(&answer.stderr)
    );
    app.wait_finished(asking.id).await;
    let watch = tokio::process::Command::new(SERVER)
        .args(["watch", &asking.id.to_string(), "--url", &app.address])
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&watch.stdout);
    assert!(
        shown.contains(&format!("[permission {request}] Bash")),
        "{shown}"
    );
    assert!(
        shown.contains("[permission answered] allow Bash"),
        "{shown}"
    );

    // Refusals are clear and exit non-zero.
    let out = tokio::process::Command::new(SERVER)
        .args(["interrupt", &id, "--url", &app.address])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_running"));
}

/// Runs `agentstream watch <args>` to its end, without an API token from this environment.
async fn watch(args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        TIMEOUT,
        tokio::process::Command::new(SERVER)
            .arg("watch")
            .args(args)
            .env_remove("AGENTSTREAM__AUTH__TOKEN")
            .output(),
    )
    .await
    .expect("watch ends")
    .expect("run watch")
}

/// The lines of `--json` output as frames: each line one `{"event", "data"}` object.
fn frames(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let frame: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON frame per line ({e}): {line}"));
            assert!(
                frame["event"].is_string() && frame["data"].is_object(),
                "{line}"
            );
            frame
        })
        .collect()
}

/// The stored messages the `agent:message` frames carry, in the order printed.
fn printed_messages(frames: &[Value]) -> Vec<StoredMessage> {
    frames
        .iter()
        .filter(|f| f["event"] == "agent:message")
        .map(|f| serde_json::from_value(f["data"]["message"].clone()).expect("a stored message"))
        .collect()
}

#[tokio::test]
async fn watch_sse_prints_what_watch_prints_and_fails_as_it_does() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(40, 5).await;
    app.wait_finished(agent.id).await;
    let id = agent.id.to_string();
    let over_ws = watch(&[&id, "--url", &app.address]).await;
    let over_sse = watch(&[&id, "--url", &app.address, "--sse"]).await;
    for out in [&over_ws, &over_sse] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&over_sse.stdout);
    assert_eq!(text, String::from_utf8_lossy(&over_ws.stdout));
    let stored = app.messages(agent.id, None).await;
    assert!(text.contains(&joined(&stored, "content_delta")), "{text}");
    assert!(text.ends_with("[completed]\n"), "{text}");
    // From a later point, the same rest.
    let tail_ws = watch(&[&id, "--url", &app.address, "--since", "30"]).await;
    let tail_sse = watch(&[&id, "--url", &app.address, "--since", "30", "--sse"]).await;
    assert_eq!(tail_sse.stdout, tail_ws.stdout);
    assert!(tail_sse.stdout.len() < over_sse.stdout.len());

    // An unknown agent: the same error and exit code.
    let unknown = uuid::Uuid::new_v4().to_string();
    let out = watch(&[&unknown, "--url", &app.address, "--sse"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("agent_not_found"), "{stderr}");
    assert!(
        stderr.contains(&format!("no agent with id {unknown}")),
        "{stderr}"
    );
    // No server there: an error at once, not a wait.
    let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", nothing.local_addr().unwrap());
    drop(nothing);
    let out = watch(&[&id, "--url", &closed, "--sse"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A server with a token: none or a wrong one is the WebSocket mode's error, the right one is sent.
    let token = "s3cret-token-for-tests-0123456789";
    let guarded = TestServer::builder()
        .env("AGENTSTREAM__AUTH__TOKEN", token)
        .spawn(SERVER)
        .await
        .with_token(token);
    let agent = guarded.launch(5, 0).await;
    guarded.wait_finished(agent.id).await;
    let id = agent.id.to_string();
    for wrong in [
        &[][..],
        &["--token", "not-the-token-at-all-0123456789ab"][..],
    ] {
        let ws = watch(&[&[&id, "--url", &guarded.address][..], wrong].concat()).await;
        let sse = watch(&[&[&id, "--url", &guarded.address, "--sse"][..], wrong].concat()).await;
        assert_eq!(sse.status.code(), Some(2));
        assert_eq!(ws.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&sse.stderr);
        assert!(stderr.contains("API token"), "{stderr}");
        assert_eq!(stderr, String::from_utf8_lossy(&ws.stderr));
    }
    let out = watch(&[&id, "--url", &guarded.address, "--sse", "--token", token]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn watch_sse_json_prints_one_frame_per_line_each_message_once_in_order() {
    let app = TestServer::spawn(SERVER).await;
    // Watched while it streams: the history, then live.
    let agent = app.launch(200, 5).await;
    app.wait_messages(agent.id, 20).await;
    let id = agent.id.to_string();
    let out = watch(&[&id, "--url", &app.address, "--sse", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = frames(&out.stdout);
    assert_eq!(live[0]["event"], "subscribed");
    assert_eq!(live[0]["data"]["agentId"], id.as_str());
    let printed = printed_messages(&live);
    assert_contiguous(&printed, 1);
    assert_eq!(printed, app.messages(agent.id, None).await);
    assert_eq!(live.last().unwrap()["event"], "agent:complete");

    // The same frames as over the WebSocket (the messages; each frame's send time differs).
    let over_ws = watch(&[&id, "--url", &app.address, "--json"]).await;
    let over_sse = watch(&[&id, "--url", &app.address, "--json", "--sse"]).await;
    let (ws, sse) = (frames(&over_ws.stdout), frames(&over_sse.stdout));
    assert_eq!(sse[0], ws[0], "the same subscribed frame");
    assert_eq!(printed_messages(&sse), printed_messages(&ws));
    assert_eq!(sse.len(), ws.len());
}

/// `serve` on `port` with the data of `dir`: a server restarted where its clients had it (the testkit's
/// servers listen on a port the kernel picks). Killed when dropped.
async fn serve_on(dir: &TestDir, port: u16, env: &[(&str, &str)]) -> tokio::process::Child {
    let log = std::fs::File::create(dir.path().join("restarted.log")).expect("a log file");
    let mut child = tokio::process::Command::new(SERVER)
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--database-url")
        .arg(dir.database_url())
        .arg("--config-dir")
        .arg(dir.path().join("no-config"))
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("run the server");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let listening = tokio::time::timeout(TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(" listening on ") {
                return true;
            }
        }
        false
    })
    .await;
    let log = || std::fs::read_to_string(dir.path().join("restarted.log")).unwrap_or_default();
    assert_eq!(listening, Ok(true), "the restarted server:\n{}", log());
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

#[tokio::test]
async fn watch_sse_resumes_after_a_server_restart_without_a_gap_or_a_copy() {
    let dir = TestDir::new();
    // The same instance before and after (on PostgreSQL its agents are its own at once again).
    let lease = TEST_LEASE_MS.to_string();
    let env = [
        ("AGENTSTREAM__INSTANCE__ID", "t-watch-sse"),
        ("AGENTSTREAM__INSTANCE__LEASE_MS", lease.as_str()),
    ];
    let mut app = TestServer::builder()
        .dir(&dir)
        .envs(&env)
        .spawn(SERVER)
        .await;
    let agent = app.launch(400, 10).await;
    let id = agent.id.to_string();
    let mut watcher = tokio::process::Command::new(SERVER)
        .args(["watch", &id, "--url", &app.address, "--sse", "--json"])
        .env_remove("AGENTSTREAM__AUTH__TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run watch");
    // Its output is read as it comes, so that it never waits on a full pipe.
    let mut stdout = BufReader::new(watcher.stdout.take().expect("piped")).lines();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut shown = 0;
    tokio::time::timeout(TIMEOUT, async {
        while shown < 60 {
            let line = rx.recv().await.expect("watch printed nothing more");
            shown += usize::from(line.contains(r#""event":"agent:message""#));
            lines.push(line);
        }
    })
    .await
    .expect("the watch shows the stream");

    // Mid-stream (60 of 403 messages, 10 ms apart), the server dies and comes back on the same port.
    let (port, base) = (app.port, app.address.clone());
    app.kill().await;
    drop(app);
    let _restarted = serve_on(&dir, port, &env).await;
    tokio::time::timeout(TIMEOUT, async {
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
    })
    .await
    .expect("the watch ends after the restart");
    let status = tokio::time::timeout(TIMEOUT, watcher.wait())
        .await
        .expect("the watch exits")
        .expect("wait for watch");
    let mut stderr = String::new();
    if let Some(mut err) = watcher.stderr.take() {
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr).await;
    }
    // A server restart leaves the agent interrupted (agents.resume_interrupted is off), which the
    // watch ends with, as over the WebSocket: exit code 1.
    assert_eq!(status.code(), Some(1), "{stderr}");

    let stdout = lines.join("\n");
    let shown = frames(stdout.as_bytes());
    let printed = printed_messages(&shown);
    let stored: Vec<StoredMessage> = reqwest::get(format!("{base}/api/agents/{id}/messages"))
        .await
        .expect("GET messages")
        .json()
        .await
        .expect("messages");
    let now: Agent = reqwest::get(format!("{base}/api/agents/{id}"))
        .await
        .expect("GET agent")
        .json()
        .await
        .expect("an agent");
    assert_eq!(now.status, AgentStatus::Interrupted);
    assert!(
        stored.len() < 403,
        "the server was killed after the agent ended"
    );
    // Every message exactly once, in order, and each as stored: nothing lost or repeated across the cut.
    assert_contiguous(&printed, 1);
    assert_eq!(printed, stored);
    // Two streams: the first, cut; the second, resumed after the restart, which found the agent
    // interrupted.
    let subscribed: Vec<&Value> = shown
        .iter()
        .filter(|f| f["event"] == "subscribed")
        .collect();
    assert_eq!(subscribed.len(), 2, "{stdout}");
    assert_eq!(subscribed[1]["data"]["status"], "interrupted");
    assert_eq!(subscribed[1]["data"]["lastSequence"], stored.len());
}

#[tokio::test]
async fn watch_sse_cut_as_a_slow_consumer_resumes_where_it_was() {
    // A small backlog: a watch whose output nobody reads passes it quickly, and the server cuts it.
    let app = TestServer::builder()
        .env("AGENTSTREAM__WEBSOCKET__MAX_QUEUED_BYTES", "65536")
        .spawn(SERVER)
        .await;
    let agent = app.launch(20_000, 0).await;
    let id = agent.id.to_string();
    let mut watcher = tokio::process::Command::new(SERVER)
        .args(["watch", &id, "--url", &app.address, "--sse", "--json"])
        .env_remove("AGENTSTREAM__AUTH__TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run watch");
    // Its output is not read while the agent streams: the watch blocks on the full pipe, and stops
    // reading its stream.
    let done = app.wait_finished(agent.id).await;
    assert_eq!(done.status, AgentStatus::Completed);
    let mut stdout = Vec::new();
    let mut stderr = String::new();
    let (mut out, mut err) = (
        watcher.stdout.take().unwrap(),
        watcher.stderr.take().unwrap(),
    );
    let status = tokio::time::timeout(TIMEOUT, async {
        use tokio::io::AsyncReadExt;
        let (a, b) = tokio::join!(
            out.read_to_end(&mut stdout),
            err.read_to_string(&mut stderr)
        );
        a.and(b).expect("read the watch's output");
        watcher.wait().await.expect("wait for watch")
    })
    .await
    .expect("the watch ends");
    assert!(status.success(), "{stderr}");
    let shown = frames(&stdout);
    let printed = printed_messages(&shown);
    assert_contiguous(&printed, 1);
    assert_eq!(printed, app.messages(agent.id, None).await);
    let streams = shown.iter().filter(|f| f["event"] == "subscribed").count();
    assert!(streams >= 2, "the watch was never cut ({streams} stream)");
}
