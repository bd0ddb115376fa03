//! `codex` agents end to end: the REAL Codex CLI (npm `@openai/codex@0.169.0`, put in `.tools/codex` by
//! `scripts/install-tools`) run by the server as `codex app-server`, against the in-repo fake of
//! OpenAI's Responses API (`fake-anthropic` serves it too), through `cli_agents`. Agents run with
//! approval policy `never` and the `danger-full-access` sandbox unless a test says otherwise (the CLI
//! needs bubblewrap for its sandboxes, which a test machine may lack).
//!
//! Without the CLI these tests print a loud SKIPPED line and pass, unless
//! `AGENTSTREAM_REQUIRE_CODEX=1` (set by `.ci/run`).

use agentstream_testkit::{assert_contiguous, joined, of_event, process, request_id, result_of};
use agentstream_wire::{AgentStatus, MessageType, ServerEvent};
use serde_json::json;

use crate::cli_agents::{self, Cli, CliAgents, HELLO};

async fn start() -> Option<CliAgents> {
    CliAgents::start(Cli::Codex).await
}

#[tokio::test]
async fn a_short_answer_is_streamed_as_text_with_the_thread_and_its_usage() {
    let Some(c) = start().await else {
        return;
    };
    let (agent, messages, events) = c.run("say hello [[scenario:hello]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    assert_eq!(joined(&messages, "content_delta"), HELLO);
    let thread = agent.session_id.expect("the thread is the agent's session");
    let init = of_event(&messages, "system")
        .into_iter()
        .find(|m| m.metadata["subtype"] == "init")
        .expect("an init message");
    assert_eq!(init.metadata["sessionId"], thread.as_str());
    assert_eq!(agent.model.as_deref(), Some("gpt-5.5"));
    let result = result_of(&messages);
    assert_eq!(result.metadata["isError"], false);
    assert!(result.metadata["usage"].is_object(), "{result:?}");
    assert!(events
        .iter()
        .any(|e| matches!(e, ServerEvent::AgentComplete(c) if c.result.usage.is_some())));
    assert_eq!(c.stream_requests().len(), 1);
    c.assert_no_process_left().await;
}

#[tokio::test]
async fn an_api_error_fails_the_agent_with_the_clis_account_of_it() {
    let Some(c) = start().await else {
        return;
    };
    // A 400 is passed on with the API's own message; for a 500 the CLI says it in its own words
    // (its error kind `internalServerError`), and that is what the agent fails with.
    for (scenario, said) in [
        ("err400", "fake invalid request"),
        ("err500", "high demand"),
    ] {
        let (agent, messages, events) = c
            .run(&format!("fail [[scenario:{scenario}]]"), json!({}))
            .await;
        assert_eq!(agent.status, AgentStatus::Failed, "{scenario}");
        let error = agent.error.expect("the failure is on the agent");
        assert_eq!(error.code, "agent_failed");
        assert!(error.message.contains(said), "{scenario}: {error:?}");
        assert_eq!(result_of(&messages).metadata["subtype"], "failed");
        assert!(events
            .iter()
            .any(|e| matches!(e, ServerEvent::AgentError(_))));
    }
    c.assert_no_process_left().await;
}

#[tokio::test]
async fn a_failed_or_empty_response_fails_with_the_clis_error() {
    let Some(c) = start().await else {
        return;
    };
    for scenario in ["failed", "empty"] {
        let (agent, messages, _) = c
            .run(&format!("say nothing [[scenario:{scenario}]]"), json!({}))
            .await;
        let result = result_of(&messages);
        if agent.status == AgentStatus::Failed {
            let error = agent.error.expect("an error");
            assert!(!error.message.is_empty(), "{scenario}");
            assert_eq!(result.metadata["isError"], true, "{scenario}");
        } else {
            // An empty answer is a completed turn with nothing said, as the CLI reports it.
            assert_eq!(
                agent.status,
                AgentStatus::Completed,
                "{scenario}: {agent:?}"
            );
            assert_eq!(joined(&messages, "content_delta"), "", "{scenario}");
        }
    }
}

#[tokio::test]
async fn a_follow_up_during_a_turn_is_the_next_turn_of_the_same_process() {
    let Some(c) = start().await else {
        return;
    };
    let agent = c
        .launch("slowly [[scenario:slow n=200 delay_ms=20]]", json!({}))
        .await;
    c.app.wait_messages(agent.id, 10).await;
    let cli = c.marked.wait_process("app-server", &[c.app.pid()]).await;
    c.app.send(agent.id, "then this [[scenario:hello]]").await;
    // Stored during the first turn, the follow-up comes before that turn's result.
    let all = c.app.wait_turns(agent.id, 2).await;
    assert_contiguous(&all, 1);
    // Both turns completed, the first one whole: the follow-up waited for its end.
    let results: Vec<_> = all
        .iter()
        .filter(|m| m.message_type == MessageType::Result)
        .collect();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.iter().all(|r| r.metadata["isError"] == false));
    let text = joined(&all, "content_delta");
    assert!(
        text.starts_with(&fake_anthropic::words(200).concat()),
        "the first answer is whole"
    );
    assert!(text.ends_with(HELLO));
    // One process answered both.
    let threads: Vec<_> = of_event(&all, "system")
        .into_iter()
        .filter(|m| m.metadata["subtype"] == "init")
        .collect();
    assert_eq!(threads.len(), 1);
    assert!(process::is_zombie_or_gone(cli));
    assert_eq!(c.app.agent(agent.id).await.status, AgentStatus::Completed);
}

#[tokio::test]
async fn an_approval_request_is_answered_from_the_api() {
    let Some(c) = start().await else {
        return;
    };
    let agent = c
        .launch(
            "create y [[scenario:tool cmd=touch%20y.txt escalate=1]]",
            json!({"approvalPolicy": "on-request", "sandbox": "read-only"}),
        )
        .await;
    let asked = c.app.wait_permission_request(agent.id, 0).await;
    // The status is stored in a write of its own, right after the request's message.
    c.app
        .wait_status(agent.id, |s| s == AgentStatus::AwaitingPermission)
        .await;
    assert!(asked.metadata["input"]["command"]
        .as_str()
        .is_some_and(|cmd| cmd.contains("touch y.txt")));
    let r = c
        .app
        .answer_permission(agent.id, &request_id(&asked), &json!({"decision": "allow"}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let agent = c.app.wait_finished(agent.id).await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    assert!(
        c.work.path().join("y.txt").exists(),
        "the allowed command ran"
    );
}

#[tokio::test]
async fn two_thousand_text_deltas_arrive_in_order_and_exact() {
    cli_agents::two_thousand_deltas_in_order(Cli::Codex).await;
}

#[tokio::test]
async fn a_shell_command_round_trip_is_shown_as_tool_messages() {
    cli_agents::shell_command_round_trip(Cli::Codex, json!({}), "exec_command").await;
}

#[tokio::test]
async fn a_delete_mid_stream_terminates_it_and_leaves_no_process() {
    cli_agents::delete_mid_stream_leaves_no_process(Cli::Codex).await;
}

#[tokio::test]
async fn a_follow_up_after_the_run_resumes_the_thread_with_its_history() {
    cli_agents::follow_up_resumes_with_history(Cli::Codex).await;
}

#[tokio::test]
async fn an_interrupt_ends_the_turn_and_a_follow_up_continues_the_thread() {
    cli_agents::interrupt_then_follow_up(Cli::Codex).await;
}

#[tokio::test]
async fn a_cli_that_prints_nothing_is_stopped_by_its_idle_timeout() {
    cli_agents::silence_ends_with_the_idle_timeout(Cli::Codex).await;
}

#[tokio::test]
async fn what_the_cli_prints_that_is_not_its_json_is_kept_as_system_messages() {
    cli_agents::other_output_is_kept_as_system_messages(Cli::Codex).await;
}
