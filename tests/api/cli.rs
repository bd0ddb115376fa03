//! The `agentstream` command itself: `--help` and `watch`.

use agentstream_testkit::{joined, TestServer};

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
