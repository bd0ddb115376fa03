//! Conversations with the synthetic agent: follow-ups (after a turn and during one), interrupts,
//! resumes (after a DELETE, after a kill -9 and restart, automatically at start-up), permission
//! requests answered over REST, and what each refuses.

use std::time::Duration;

use agentstream_testkit::{
    assert_contiguous, assert_error, request_id, sessions, TestDir, TestServer, TIMEOUT,
};
use agentstream_wire::{
    keys, AgentStatus, EventType, MessageType, ServerEvent, StoredMessage, SyntheticConfig,
};
use serde_json::json;
use uuid::Uuid;

use crate::SERVER;

fn of_type(messages: &[StoredMessage], event: EventType) -> Vec<&StoredMessage> {
    messages
        .iter()
        .filter(|m| EventType::of(&m.metadata) == Some(event))
        .collect()
}

async fn launch(app: &TestServer, configuration: SyntheticConfig) -> Uuid {
    app.try_launch_synthetic("hello", &configuration)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id
}

fn tokens(n: u64, interval_ms: u64) -> SyntheticConfig {
    SyntheticConfig {
        tokens: Some(n),
        interval_ms: Some(interval_ms),
        ..SyntheticConfig::default()
    }
}

#[tokio::test]
async fn a_follow_up_after_a_turn_continues_the_session_with_numbers_that_go_on() {
    let app = TestServer::spawn(SERVER).await;
    let id = launch(&app, tokens(5, 0)).await;
    let first = app.wait_finished(id).await;
    assert_eq!(first.status, AgentStatus::Completed);
    let before = app.messages(id, None).await;
    let mut ws = app.ws().await;
    ws.subscribe(id, None).await;
    // Subscribed without `since`: what comes after now.
    assert_eq!(
        ws.expect_subscribed().await.last_sequence,
        before.len() as i64
    );

    let stored = app.send(id, "and now the second part").await;
    assert_eq!(stored.sequence_number, before.len() as i64 + 1);
    assert_eq!(stored.message_type, MessageType::User);
    assert_eq!(stored.role.as_deref(), Some("user"));
    assert_eq!(stored.content, "and now the second part");
    assert_eq!(EventType::of(&stored.metadata), Some(EventType::UserInput));

    // Subscribers see the follow-up, the agent running again, its answer, and the turn's end (the
    // first turn's `agent:complete` may still be on its way: it was broadcast after its commit).
    let (mut live, mut events) = (Vec::new(), Vec::new());
    loop {
        let event = ws.next_event().await;
        match &event {
            ServerEvent::AgentMessage(m) => live.push(m.message.clone()),
            ServerEvent::AgentComplete(c) if c.result.last_sequence > stored.sequence_number => {
                break
            }
            _ => {}
        }
        events.push(event);
    }
    assert_eq!(live.first(), Some(&stored));
    assert!(events.iter().any(|e| matches!(e,
        ServerEvent::AgentStatus(s) if s.status == AgentStatus::Running)));
    let history = app.wait_turns(id, 2).await;
    assert_contiguous(&history, 1);
    assert_eq!(&history[before.len()..], &live[..]);
    let ids = sessions(&history);
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[0], ids[1],
        "the second turn continues the first's session"
    );
    let agent = app.agent(id).await;
    assert_eq!(agent.status, AgentStatus::Completed);
    assert!(agent.completed_at.is_some());
    assert_eq!(agent.session_id.as_deref(), Some(ids[0].as_str()));
}

#[tokio::test]
async fn a_follow_up_sent_during_a_turn_becomes_the_next_turn_of_the_same_run() {
    let app = TestServer::spawn(SERVER).await;
    let id = launch(&app, tokens(300, 5)).await;
    let mut ws = app.ws().await;
    ws.subscribe(id, Some(0)).await;
    app.wait_messages(id, 20).await;
    let stored = app.send(id, "one more thing").await;
    assert_eq!(app.agent(id).await.status, AgentStatus::Running);

    // One run: the first turn's result is not its end; one `agent:complete`, after the second turn.
    let (messages, events) = ws.collect_until_complete(id).await;
    assert_eq!(of_type(&messages, EventType::Result).len(), 2);
    let completes = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::AgentComplete(_)))
        .count();
    assert_eq!(completes, 1);
    let history = app.wait_turns(id, 2).await;
    assert_eq!(history, messages);
    assert_contiguous(&history, 1);
    let first_result = of_type(&history, EventType::Result)[0].sequence_number;
    assert!(
        stored.sequence_number < first_result,
        "stored during the first turn"
    );
    let second_init = history
        .iter()
        .filter(|m| m.metadata["subtype"] == "init")
        .nth(1)
        .expect("a second turn");
    assert!(second_init.sequence_number > first_result);
    assert_eq!(app.agent(id).await.status, AgentStatus::Completed);
}

#[tokio::test]
async fn an_interrupt_ends_the_turn_and_a_follow_up_continues_the_session() {
    let app = TestServer::spawn(SERVER).await;
    let id = launch(&app, tokens(2000, 2)).await;
    app.wait_messages(id, 30).await;
    let r = app.interrupt(id).await;
    assert_eq!(r.status(), 202);
    let agent = app.wait_finished(id).await;
    assert_eq!(agent.status, AgentStatus::Interrupted);
    let history = app.messages(id, None).await;
    let tokens_streamed = of_type(&history, EventType::ContentDelta).len();
    assert!(tokens_streamed < 2000, "the turn stopped early");
    let result = history.last().expect("a result");
    assert_eq!(result.message_type, MessageType::Result);
    assert_eq!(result.metadata["isError"], true);
    assert_eq!(result.metadata["terminalReason"], "aborted_streaming");

    // No turn under way now.
    assert_error(app.interrupt(id).await, 409, "not_running").await;

    app.send(id, "go on, briefly").await;
    let history = app.wait_turns(id, 2).await;
    assert_contiguous(&history, 1);
    let ids = sessions(&history);
    assert_eq!((ids.len(), &ids[0]), (2, &ids[1]));
    assert_eq!(app.agent(id).await.status, AgentStatus::Completed);
}

#[tokio::test]
async fn a_terminated_agent_is_continued_by_a_follow_up() {
    let app = TestServer::spawn(SERVER).await;
    let id = launch(&app, tokens(2000, 2)).await;
    app.wait_messages(id, 20).await;
    assert_eq!(app.delete_agent(id, false).await.status(), 204);
    assert_eq!(app.agent(id).await.status, AgentStatus::Terminated);
    let stored = app.send(id, "start again").await;
    let history = app.wait_turns(id, 1).await;
    assert_contiguous(&history, 1);
    assert!(history.iter().any(|m| m == &stored));
    let ids = sessions(&history);
    assert_eq!((ids.len(), &ids[0]), (2, &ids[1]));
    let agent = app.agent(id).await;
    assert_eq!(agent.status, AgentStatus::Completed);
    assert_eq!(agent.error, None);
}

#[tokio::test]
async fn an_agent_cut_by_a_kill_9_is_continued_after_the_restart_in_the_same_session() {
    let dir = TestDir::new();
    let mut app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    // Long enough to be cut; the resumed turn (the same configuration) then takes 2 s.
    let id = launch(&app, tokens(400, 5)).await;
    app.wait_messages(id, 40).await;
    app.kill().await;

    let app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    assert_eq!(app.agent(id).await.status, AgentStatus::Interrupted);
    let before = app.messages(id, None).await;
    let stored = app.send(id, "where were we?").await;
    assert_eq!(stored.sequence_number, before.len() as i64 + 1);
    let history = app.wait_turns(id, 1).await;
    assert_contiguous(&history, 1);
    assert_eq!(&history[..before.len()], &before[..]);
    let ids = sessions(&history);
    assert_eq!((ids.len(), &ids[0]), (2, &ids[1]));
    assert_eq!(app.agent(id).await.status, AgentStatus::Completed);
}

#[tokio::test]
async fn with_resume_interrupted_the_server_continues_what_a_restart_cut_off() {
    let dir = TestDir::new();
    let mut app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    let cut = launch(&app, tokens(100_000, 5)).await;
    let done = launch(&app, tokens(3, 0)).await;
    app.wait_finished(done).await;
    app.wait_messages(cut, 40).await;
    app.kill().await;

    let app = TestServer::builder()
        .dir(&dir)
        .env("AGENTSTREAM__AGENTS__RESUME_INTERRUPTED", "true")
        .spawn(SERVER)
        .await;
    // Resumed: the server's own follow-up, then another (long) turn, which DELETE ends.
    let told = tokio::time::timeout(TIMEOUT, async {
        loop {
            let history = app.messages(cut, None).await;
            if let Some(m) = of_type(&history, EventType::UserInput).first() {
                return (*m).clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the cut agent was not resumed");
    assert_eq!(told.metadata[keys::ORIGIN], "restart");
    assert!(told.content.contains("cut off"), "{}", told.content);
    app.wait_status(cut, |s| s == AgentStatus::Running).await;
    assert_eq!(app.delete_agent(cut, false).await.status(), 204);
    assert_contiguous(&app.messages(cut, None).await, 1);
    // What had ended is left alone.
    assert_eq!(app.messages(done, None).await.len(), 6);
    assert_eq!(app.agent(done).await.status, AgentStatus::Completed);
}

#[tokio::test]
async fn permission_requests_are_answered_over_rest_first_answer_wins() {
    let app = TestServer::spawn(SERVER).await;
    let config = SyntheticConfig {
        ask_permission: Some(true),
        ..tokens(3, 0)
    };
    let id = launch(&app, config).await;
    let asked = app.wait_permission_request(id, 0).await;
    assert_eq!(asked.message_type, MessageType::Tool);
    assert_eq!(asked.metadata[keys::TOOL_NAME], "Bash");
    assert_eq!(asked.metadata[keys::INPUT]["command"], "echo turn 1");
    let request = request_id(&asked);
    app.wait_status(id, |s| s == AgentStatus::AwaitingPermission)
        .await;

    // Two clients answer at once: one wins, the other is told it came too late.
    let allow = json!({"decision": "allow"});
    let deny = json!({"decision": "deny"});
    let (a, b) = tokio::join!(
        app.answer_permission(id, &request, &allow),
        app.answer_permission(id, &request, &deny),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let (winner, loser) = if a.status() == 200 { (a, b) } else { (b, a) };
    assert_error(loser, 409, "permission_not_pending").await;
    let answer: StoredMessage = winner.json().await.unwrap();
    assert_eq!(
        EventType::of(&answer.metadata),
        Some(EventType::PermissionResponse)
    );
    assert_eq!(answer.metadata[keys::REQUEST_ID], request.as_str());
    assert_eq!(answer.message_type, MessageType::User);

    let history = app.wait_turns(id, 1).await;
    assert_contiguous(&history, 1);
    let decision = answer.metadata[keys::DECISION].as_str().unwrap().to_owned();
    let tool_result = of_type(&history, EventType::ToolResult)[0];
    assert_eq!(tool_result.metadata["isError"], decision == "deny");
    assert_eq!(app.agent(id).await.status, AgentStatus::Completed);
    // Answered, and its turn is over: still 409; an id never asked: 404.
    assert_error(
        app.answer_permission(id, &request, &allow).await,
        409,
        "permission_not_pending",
    )
    .await;
    assert_error(
        app.answer_permission(id, "no-such-request", &allow).await,
        404,
        "permission_not_found",
    )
    .await;

    // The next turn asks again; a deny with a reason reaches the agent.
    app.send(id, "again").await;
    let asked = app
        .wait_permission_request(id, answer.sequence_number)
        .await;
    let r = app
        .answer_permission(
            id,
            &request_id(&asked),
            &json!({"decision": "deny", "message": "not today"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let history = app.wait_turns(id, 2).await;
    assert_contiguous(&history, 1);
    let denied = of_type(&history, EventType::ToolResult)[1];
    assert_eq!(denied.metadata["isError"], true);
    assert_eq!(denied.content, "not today");
}

#[tokio::test]
async fn an_interrupt_withdraws_a_waiting_permission_request() {
    let app = TestServer::spawn(SERVER).await;
    let config = SyntheticConfig {
        ask_permission: Some(true),
        ..tokens(3, 0)
    };
    let id = launch(&app, config).await;
    let asked = app.wait_permission_request(id, 0).await;
    assert_eq!(app.interrupt(id).await.status(), 202);
    assert_eq!(app.wait_finished(id).await.status, AgentStatus::Interrupted);
    let r = app
        .answer_permission(id, &request_id(&asked), &json!({"decision": "allow"}))
        .await;
    assert_error(r, 409, "permission_not_pending").await;
    let history = app.messages(id, None).await;
    assert_contiguous(&history, 1);
    assert_eq!(
        history.last().unwrap().metadata["terminalReason"],
        "aborted_tools"
    );
}

#[tokio::test]
async fn fifty_agents_each_take_three_follow_ups_at_once() {
    let app = TestServer::spawn(SERVER).await;
    let mut agents = Vec::new();
    for _ in 0..50 {
        agents.push(launch(&app, tokens(20, 1)).await);
    }
    let sends = agents.iter().flat_map(|&id| {
        let app = &app;
        (0..3).map(move |k| async move { (id, app.try_send(id, &format!("follow-up {k}")).await) })
    });
    for (id, sent) in futures_util::future::join_all(sends).await {
        sent.unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    for &id in &agents {
        let history = app.wait_turns(id, 4).await;
        assert_contiguous(&history, 1);
        let mut inputs: Vec<&str> = of_type(&history, EventType::UserInput)
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        inputs.sort();
        assert_eq!(
            inputs,
            ["follow-up 0", "follow-up 1", "follow-up 2"],
            "{id}"
        );
        assert_eq!(of_type(&history, EventType::ContentDelta).len(), 80, "{id}");
        assert_eq!(app.agent(id).await.status, AgentStatus::Completed, "{id}");
    }
}

#[tokio::test]
async fn what_a_conversation_refuses() {
    let app = TestServer::builder()
        .env("AGENTSTREAM__AGENTS__MAX_PROMPT_BYTES", "64")
        .spawn(SERVER)
        .await;
    let id = launch(&app, tokens(3, 0)).await;
    app.wait_finished(id).await;
    let app = &app;
    let post = |body: serde_json::Value| async move { app.post_message_body(id, &body).await };
    assert_error(post(json!({"content": ""})).await, 400, "invalid_body").await;
    assert_error(post(json!({"content": "  \n"})).await, 400, "invalid_body").await;
    assert_error(
        post(json!({"content": "a\u{0}b"})).await,
        400,
        "invalid_body",
    )
    .await;
    assert_error(
        post(json!({"content": "x", "extra": 1})).await,
        400,
        "invalid_body",
    )
    .await;
    assert_error(post(json!({"text": "x"})).await, 400, "invalid_body").await;
    assert_error(
        post(json!({"content": "x".repeat(65)})).await,
        413,
        "payload_too_large",
    )
    .await;
    let unknown = Uuid::now_v7();
    assert_error(
        app.post_message_body(unknown, &json!({"content": "x"}))
            .await,
        404,
        "agent_not_found",
    )
    .await;
    assert_error(app.interrupt(unknown).await, 404, "agent_not_found").await;
    let r = app
        .client
        .post(app.url("/api/agents/not-a-uuid/messages"))
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_id").await;
    let allow = json!({"decision": "allow"});
    assert_error(
        app.answer_permission(unknown, "r1", &allow).await,
        404,
        "agent_not_found",
    )
    .await;
    assert_error(
        app.answer_permission(id, "r1", &json!({"decision": "maybe"}))
            .await,
        400,
        "invalid_body",
    )
    .await;
    assert_error(
        app.answer_permission(id, "r1", &json!({"decision": "allow", "updatedInput": [1]}))
            .await,
        400,
        "invalid_body",
    )
    .await;
    assert_error(
        app.answer_permission(id, "r%20x", &allow).await,
        404,
        "permission_not_found",
    )
    .await;
    // Nothing of it was stored.
    assert_eq!(app.messages(id, None).await.len(), 6);

    // A purged agent is gone.
    assert_eq!(app.delete_agent(id, true).await.status(), 204);
    assert_error(post(json!({"content": "x"})).await, 404, "agent_not_found").await;
}

#[tokio::test]
async fn an_agent_that_never_started_a_session_cannot_be_continued() {
    let app = TestServer::builder()
        .fake_cli("echo 'cannot start' >&2; exit 3")
        .spawn(SERVER)
        .await;
    let r = app
        .post_agent(&json!({"type": "claude-code", "prompt": "hi"}))
        .await;
    assert_eq!(r.status(), 201);
    let agent: agentstream_wire::Agent = r.json().await.unwrap();
    assert_eq!(
        app.wait_finished(agent.id).await.status,
        AgentStatus::Failed
    );
    let r = app
        .post_message_body(agent.id, &json!({"content": "try again"}))
        .await;
    assert_error(r, 409, "no_session").await;
    assert!(
        of_type(&app.messages(agent.id, None).await, EventType::UserInput).is_empty(),
        "a refused follow-up is not stored"
    );
}
