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
