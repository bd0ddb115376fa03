//! Conversations with the real Claude CLI: follow-ups (after a turn, during one), interrupts, resumes
//! (after a DELETE, after the server is killed mid-turn), and permission prompts answered over REST.

use agentstream_testkit::{assert_contiguous, assert_error, request_id, sessions};
use agentstream_wire::{keys, AgentStatus, EventType, ServerEvent, StoredMessage};
use serde_json::json;
use uuid::Uuid;

use super::{of_event, Claude, Transport};

/// Every turn reported the same session.
fn one_session(history: &[StoredMessage], turns: usize) {
    let ids = sessions(history);
    assert_eq!(ids.len(), turns, "{ids:?}");
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
}

async fn two_turns(transport: Transport) {
    let Some(c) = Claude::start(transport).await else {
        return;
    };
    let agent = c.launch("say hello [[scenario:hello]]", json!({})).await;
    assert_eq!(
        c.app.wait_finished(agent.id).await.status,
        AgentStatus::Completed
    );
    let stored = c
        .app
        .send(agent.id, "once more [[scenario:hello chunk=3]]")
        .await;
    let history = c.app.wait_turns(agent.id, 2).await;
    assert_contiguous(&history, 1);
    assert!(history.contains(&stored));
    let results = of_event(&history, "result");
    assert!(
        results.iter().all(|r| r.content.starts_with("Hello!")),
        "{results:?}"
    );
    one_session(&history, 2);
    let agent = c.app.agent(agent.id).await;
    assert_eq!(agent.status, AgentStatus::Completed);
    // The second request carried the whole conversation: the first answer and the follow-up.
    let requests = c.fake.message_requests();
    assert_eq!(requests.len(), 2);
    c.assert_no_process_left().await;
}

async fn interrupt_then_follow_up(transport: Transport) {
    let Some(c) = Claude::start(transport).await else {
        return;
    };
    let agent = c
        .launch(
            "count slowly [[scenario:slow n=2000 delay_ms=20]]",
            json!({}),
        )
        .await;
    c.app.wait_messages(agent.id, 20).await;
    assert_eq!(c.app.interrupt(agent.id).await.status(), 202);
    let ended = c.app.wait_finished(agent.id).await;
    assert_eq!(ended.status, AgentStatus::Interrupted, "{ended:?}");
    let history = c.app.messages(agent.id, None).await;
    assert!(of_event(&history, "content_delta").len() < 2000);
    c.assert_no_process_left().await;

    // The CLI prints the cut turn's result if it can (the cli transport asks over its input; the
    // proxy's signals may kill it first on a loaded machine): the follow-up's answer is what counts.
    let follow_up = c.app.send(agent.id, "now briefly [[scenario:hello]]").await;
    let history = c.app.wait_answer(agent.id, &follow_up).await;
    assert_contiguous(&history, 1);
    one_session(&history, 2);
    let answer = of_event(&history, "result");
    assert!(
        answer
            .last()
            .is_some_and(|r| r.content.starts_with("Hello!")),
        "{answer:?}"
    );
    assert_eq!(c.app.agent(agent.id).await.status, AgentStatus::Completed);
}

#[tokio::test]
async fn cli_a_two_turn_conversation_continues_one_session() {
    two_turns(Transport::Cli).await;
}

#[tokio::test]
async fn proxy_a_two_turn_conversation_continues_one_session() {
    two_turns(Transport::Proxy).await;
}

#[tokio::test]
async fn cli_an_interrupted_turn_is_followed_by_an_answer_in_the_same_session() {
    interrupt_then_follow_up(Transport::Cli).await;
}

#[tokio::test]
async fn proxy_an_interrupted_turn_is_followed_by_an_answer_in_the_same_session() {
    interrupt_then_follow_up(Transport::Proxy).await;
}

#[tokio::test]
async fn cli_a_follow_up_sent_mid_turn_is_the_next_turn_of_the_same_process() {
    let Some(c) = Claude::start(Transport::Cli).await else {
        return;
    };
    let mut ws = c.app.ws().await;
    let agent = c
        .launch("count [[scenario:slow n=150 delay_ms=20]]", json!({}))
        .await;
    ws.subscribe(agent.id, Some(0)).await;
    c.app.wait_messages(agent.id, 10).await;
    let cli = c.wait_process("stream-json").await;
    c.app
        .send(agent.id, "and then hello [[scenario:hello]]")
        .await;
    let (messages, events) = ws.collect_until_complete(agent.id).await;
    assert_eq!(of_event(&messages, "result").len(), 2);
    let completes = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::AgentComplete(_)))
        .count();
    assert_eq!(completes, 1, "both turns in one run");
    let history = c.app.wait_turns(agent.id, 2).await;
    assert_contiguous(&history, 1);
    one_session(&history, 2);
    assert!(of_event(&history, "result")[1]
        .content
        .starts_with("Hello!"));
    // The same CLI process answered both (it exits once its last turn has ended).
    assert!(agentstream_testkit::process::is_zombie_or_gone(cli));
    c.assert_no_process_left().await;
}

#[tokio::test]
async fn cli_a_deleted_agent_resumes_its_session() {
    let Some(c) = Claude::start(Transport::Cli).await else {
        return;
    };
    let agent = c
        .launch("count [[scenario:slow n=2000 delay_ms=20]]", json!({}))
        .await;
    c.app.wait_messages(agent.id, 20).await;
    assert_eq!(c.app.delete_agent(agent.id, false).await.status(), 204);
    c.assert_no_process_left().await;
    c.app.send(agent.id, "hello again [[scenario:hello]]").await;
    let history = c.app.wait_turns(agent.id, 1).await;
    assert_contiguous(&history, 1);
    one_session(&history, 2);
    let agent = c.app.agent(agent.id).await;
    assert_eq!(agent.status, AgentStatus::Completed);
    assert!(c
        .fake
        .message_requests()
        .iter()
        .any(|r| r.scenario.as_deref() == Some("hello")));
}

#[tokio::test]
async fn cli_an_agent_cut_by_a_server_killed_mid_turn_resumes_after_the_restart() {
    let Some(mut c) = Claude::start(Transport::Cli).await else {
        return;
    };
    let agent = c
        .launch("count [[scenario:slow n=2000 delay_ms=20]]", json!({}))
        .await;
    c.app.wait_messages(agent.id, 20).await;
    let session = c.app.agent(agent.id).await.session_id.expect("a session");
    c.restart_after_kill().await;
    // The orphaned CLI dies of its broken pipe; the agent is `interrupted`.
    c.assert_no_process_left().await;
    assert_eq!(c.app.agent(agent.id).await.status, AgentStatus::Interrupted);
    let before = c.app.messages(agent.id, None).await;
    c.app.send(agent.id, "carry on [[scenario:hello]]").await;
    let history = c.app.wait_turns(agent.id, 1).await;
    assert_contiguous(&history, 1);
    assert_eq!(&history[..before.len()], &before[..]);
    one_session(&history, 2);
    let agent = c.app.agent(agent.id).await;
    assert_eq!(agent.status, AgentStatus::Completed);
    assert_eq!(agent.session_id.as_deref(), Some(session.as_str()));
}

/// Launches an agent whose model asks to run `touch <file>` in `dir`, and waits for its request.
async fn ask_to_touch(c: &Claude, dir: &std::path::Path, file: &str) -> (Uuid, StoredMessage) {
    let agent = c
        .launch(
            &format!("make a file [[scenario:tool cmd=touch%20{file}]]"),
            json!({"workingDirectory": dir.display().to_string()}),
        )
        .await;
    let asked = c.app.wait_permission_request(agent.id, 0).await;
    assert_eq!(asked.metadata[keys::TOOL_NAME], "Bash");
    assert_eq!(
        asked.metadata[keys::INPUT]["command"],
        format!("touch {file}")
    );
    let agent = c
        .app
        .wait_status(agent.id, |s| s == AgentStatus::AwaitingPermission)
        .await;
    (agent.id, asked)
}

#[tokio::test]
async fn cli_an_allowed_tool_runs_and_a_denied_one_does_not() {
    let Some(c) = Claude::start(Transport::Cli).await else {
        return;
    };
    let work = tempfile::TempDir::new().unwrap();

    let (id, asked) = ask_to_touch(&c, work.path(), "allowed.txt").await;
    let r = c
        .app
        .answer_permission(id, &request_id(&asked), &json!({"decision": "allow"}))
        .await;
    assert_eq!(r.status(), 200);
    let history = c.app.wait_turns(id, 1).await;
    assert_contiguous(&history, 1);
    assert_eq!(c.app.agent(id).await.status, AgentStatus::Completed);
    assert!(work.path().join("allowed.txt").exists(), "the tool ran");
    let result = of_event(&history, "tool_result");
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].metadata["isError"], false);

    let (id, asked) = ask_to_touch(&c, work.path(), "denied.txt").await;
    let r = c
        .app
        .answer_permission(
            id,
            &request_id(&asked),
            &json!({"decision": "deny", "message": "not in this folder"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let history = c.app.wait_turns(id, 1).await;
    assert_contiguous(&history, 1);
    assert!(
        !work.path().join("denied.txt").exists(),
        "the tool did not run"
    );
    let refused = of_event(&history, "tool_result");
    assert_eq!(refused[0].metadata["isError"], true);
    assert!(
        refused[0].content.contains("not in this folder"),
        "{refused:?}"
    );
    // The answers are in the history, after their requests.
    let answers = of_event(&history, "permission_response");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].metadata[keys::DECISION], "deny");
    c.assert_no_process_left().await;
}

#[tokio::test]
async fn cli_two_clients_answering_one_permission_get_200_and_409() {
    let Some(c) = Claude::start(Transport::Cli).await else {
        return;
    };
    let work = tempfile::TempDir::new().unwrap();
    let (id, asked) = ask_to_touch(&c, work.path(), "x.txt").await;
    let request = request_id(&asked);
    let (allow, deny) = (json!({"decision": "allow"}), json!({"decision": "deny"}));
    let (a, b) = tokio::join!(
        c.app.answer_permission(id, &request, &allow),
        c.app.answer_permission(id, &request, &deny),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let loser = if a.status() == 409 { a } else { b };
    assert_error(loser, 409, "permission_not_pending").await;
    let history = c.app.wait_turns(id, 1).await;
    assert_eq!(of_event(&history, "permission_response").len(), 1);
    assert_eq!(
        EventType::of(&history.last().unwrap().metadata),
        Some(EventType::Result)
    );
}

#[tokio::test]
async fn cli_a_tool_allowed_always_is_not_asked_again_in_later_turns() {
    let Some(c) = Claude::start(Transport::Cli).await else {
        return;
    };
    let work = tempfile::TempDir::new().unwrap();
    let (id, asked) = ask_to_touch(&c, work.path(), "first.txt").await;
    let r = c
        .app
        .answer_permission(
            id,
            &request_id(&asked),
            &json!({"decision": "allow", "always": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    c.app.wait_turns(id, 1).await;
    assert!(work.path().join("first.txt").exists());
    // The next turn is a new process resuming the session: Bash is allowed in it from the start.
    c.app
        .send(id, "another [[scenario:tool cmd=touch%20second.txt]]")
        .await;
    let history = c.app.wait_turns(id, 2).await;
    assert_contiguous(&history, 1);
    assert!(work.path().join("second.txt").exists(), "the tool ran");
    assert_eq!(
        of_event(&history, "permission_request").len(),
        1,
        "asked once"
    );
    assert_eq!(c.app.agent(id).await.status, AgentStatus::Completed);
}

#[tokio::test]
async fn cli_a_resume_whose_session_is_gone_fails_with_the_clis_message() {
    let Some(c) = Claude::start(Transport::Cli).await else {
        return;
    };
    let agent = c.launch("say hello [[scenario:hello]]", json!({})).await;
    assert_eq!(
        c.app.wait_finished(agent.id).await.status,
        AgentStatus::Completed
    );
    std::fs::remove_dir_all(c.home.path().join(".claude/projects")).unwrap();
    c.app
        .send(agent.id, "still there? [[scenario:hello]]")
        .await;
    let history = c.app.wait_turns(agent.id, 2).await;
    assert_contiguous(&history, 1);
    let agent = c.app.agent(agent.id).await;
    assert_eq!(agent.status, AgentStatus::Failed);
    let error = agent.error.expect("the CLI's reason");
    assert!(error.message.contains("No conversation found"), "{error:?}");
    c.assert_no_process_left().await;
}
