//! `gemini-cli` agents end to end: the REAL Gemini CLI (npm `@google/gemini-cli@0.61.0`, put in
//! `.tools/gemini` by `scripts/install-tools`) spawned by the server, against the in-repo fake of
//! Google's Generative Language API (`fake-anthropic` serves it too), through `cli_agents`.
//!
//! Without the CLI these tests print a loud SKIPPED line and pass, unless
//! `AGENTSTREAM_REQUIRE_GEMINI=1` (set by `.ci/run`).

use agentstream_testkit::{joined, of_event, result_of};
use agentstream_wire::{AgentStatus, ServerEvent};
use serde_json::json;

use crate::cli_agents::{self, Cli, CliAgents, HELLO};

/// The model every agent names (see the module's comment).
const MODEL: &str = "gemini-2.5-flash";

async fn start() -> Option<CliAgents> {
    CliAgents::start(Cli::Gemini).await
}

#[tokio::test]
async fn a_short_answer_is_streamed_as_text_with_the_session_and_its_usage() {
    let Some(g) = start().await else {
        return;
    };
    let (agent, messages, events) = g.run("say hello [[scenario:hello]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    assert_eq!(joined(&messages, "content_delta"), HELLO);
    assert_eq!(messages[0].metadata["subtype"], "init");
    assert_eq!(
        of_event(&messages, "user_message")[0].content,
        "say hello [[scenario:hello]]"
    );
    let session = agent
        .session_id
        .expect("the session id is kept on the agent");
    assert_eq!(messages[0].metadata["sessionId"], session.as_str());
    assert_eq!(agent.model.as_deref(), Some(MODEL));
    let result = result_of(&messages);
    assert_eq!(result.metadata["isError"], false);
    assert!(
        result.metadata["usage"]["output_tokens"].as_u64() > Some(0),
        "{result:?}"
    );
    // The completion carries the CLI's token counts.
    let complete = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::AgentComplete(c) => Some(c),
            _ => None,
        })
        .expect("agent:complete");
    assert!(complete.result.usage.is_some(), "{complete:?}");
    assert_eq!(g.stream_requests().len(), 1);
    g.assert_no_process_left().await;
}

#[tokio::test]
async fn an_api_error_fails_the_agent_with_the_apis_message() {
    let Some(g) = start().await else {
        return;
    };
    let (agent, _, events) = g.run("fail [[scenario:err500]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Failed);
    let error = agent.error.expect("the failure is on the agent");
    assert_eq!(error.code, "agent_failed");
    assert!(
        error.message.contains("Internal error encountered."),
        "{error:?}"
    );
    assert!(events.iter().any(
        |e| matches!(e, ServerEvent::AgentError(a) if a.error.message.contains("Internal error"))
    ));
    g.assert_no_process_left().await;
}

#[tokio::test]
async fn an_empty_or_blocked_reply_fails_with_the_clis_error_line() {
    let Some(g) = start().await else {
        return;
    };
    for scenario in ["empty", "safety"] {
        let (agent, messages, _) = g
            .run(&format!("say nothing [[scenario:{scenario}]]"), json!({}))
            .await;
        // The CLI exits 0: the failure is read from its output.
        assert_eq!(agent.status, AgentStatus::Failed, "{scenario}: {agent:?}");
        let said = of_event(&messages, "system")
            .into_iter()
            .rfind(|m| m.metadata["subtype"] == "error")
            .unwrap_or_else(|| panic!("{scenario}: no error line in {messages:#?}"))
            .content
            .clone();
        assert!(!said.is_empty());
        assert_eq!(agent.error.expect("an error").message, said, "{scenario}");
    }
}

#[tokio::test]
async fn two_thousand_text_deltas_arrive_in_order_and_exact() {
    cli_agents::two_thousand_deltas_in_order(Cli::Gemini).await;
}

#[tokio::test]
async fn a_shell_command_round_trip_is_shown_as_tool_messages() {
    // In the default approval mode the CLI does not offer its shell tool at all.
    cli_agents::shell_command_round_trip(
        Cli::Gemini,
        json!({"approvalMode": "yolo"}),
        "run_shell_command",
    )
    .await;
}

#[tokio::test]
async fn a_delete_mid_stream_terminates_it_and_leaves_no_process() {
    cli_agents::delete_mid_stream_leaves_no_process(Cli::Gemini).await;
}

#[tokio::test]
async fn a_follow_up_resumes_the_session_with_its_history() {
    cli_agents::follow_up_resumes_with_history(Cli::Gemini).await;
}

#[tokio::test]
async fn an_interrupt_ends_the_turn_and_a_follow_up_continues_the_session() {
    cli_agents::interrupt_then_follow_up(Cli::Gemini).await;
}

#[tokio::test]
async fn a_cli_that_prints_nothing_is_stopped_by_its_idle_timeout() {
    cli_agents::silence_ends_with_the_idle_timeout(Cli::Gemini).await;
}

#[tokio::test]
async fn what_the_cli_prints_that_is_not_its_json_is_kept_as_system_messages() {
    cli_agents::other_output_is_kept_as_system_messages(Cli::Gemini).await;
}
