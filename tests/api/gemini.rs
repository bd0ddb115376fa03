//! `gemini-cli` agents end to end: the REAL Gemini CLI (npm `@google/gemini-cli@0.61.0`, put in
//! `.tools/gemini` by `scripts/install-tools`) spawned by the server, against the in-repo fake of
//! Google's Generative Language API (`fake-anthropic` serves it too).
//!
//! The CLI runs with a HOME of the test's own, whose `.gemini/settings.json` picks API-key auth (the
//! base URL alone makes the CLI pick an auth type it then rejects), turns telemetry and updates off,
//! and lets the CLI try each request once. Each agent names its model: with none, the CLI first asks a
//! router model, and retries that call five times whatever the settings say.
//!
//! Without the CLI these tests print a loud SKIPPED line and pass, unless
//! `AGENTSTREAM_REQUIRE_GEMINI=1` (set by `.ci/run`).

use std::path::PathBuf;

use agentstream_testkit::{
    agent_clis, assert_contiguous, joined, of_event, process, result_of, TestServer,
};
use agentstream_wire::{Agent, AgentStatus, MessageType, ServerEvent, StoredMessage};
use fake_anthropic::FakeAnthropic;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::SERVER;

/// The model every agent names (see the module's comment).
const MODEL: &str = "gemini-2.5-flash";

/// A fake API and a server wired to the real CLI.
struct Gemini {
    app: TestServer,
    fake: FakeAnthropic,
    marked: process::Marked,
    /// The CLI's HOME (its settings, its sessions under `.gemini/tmp`).
    _home: agent_clis::GeminiHome,
    /// The folder the agents work in.
    work: TempDir,
}

impl Gemini {
    /// `None` (after saying so loudly) when the CLI is not installed.
    async fn start() -> Option<Gemini> {
        Self::start_with(None, &[]).await
    }

    /// With `cli` instead of the installed CLI (a wrapper around it), and more server settings.
    async fn start_with(cli: Option<PathBuf>, env: &[(&str, &str)]) -> Option<Gemini> {
        let installed = agent_clis::gemini_cli()?;
        let cli = cli.unwrap_or(installed);
        let fake = FakeAnthropic::start();
        let home = agent_clis::GeminiHome::new().unwrap();
        let work = TempDir::new().unwrap();
        let marked = process::Marked::new();
        let server_env = home.server_env(&cli, &fake.url());
        let mut all: Vec<(&str, &str)> = server_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.push(marked.env());
        all.extend_from_slice(env);
        let app = TestServer::builder().envs(&all).spawn(SERVER).await;
        Some(Gemini {
            app,
            fake,
            marked,
            _home: home,
            work,
        })
    }

    /// The configuration an agent is launched with: the test's model and folder, then `extra`.
    fn configuration(&self, extra: Value) -> Value {
        let mut config = json!({"model": MODEL, "workingDirectory": self.work.path()});
        if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
            config.extend(extra);
        }
        config
    }

    async fn launch(&self, prompt: &str, extra: Value) -> Agent {
        let body = json!({"type": "gemini-cli", "prompt": prompt,
                          "configuration": self.configuration(extra)});
        let r = self.app.post_agent(&body).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        r.json().await.unwrap()
    }

    /// Runs an agent to its end, watching it over the WebSocket; returns the agent, what the socket
    /// delivered, and every event.
    async fn run(
        &self,
        prompt: &str,
        extra: Value,
    ) -> (Agent, Vec<StoredMessage>, Vec<ServerEvent>) {
        let body = json!({"type": "gemini-cli", "prompt": prompt,
                          "configuration": self.configuration(extra)});
        self.app.run_watched(&body).await
    }

    /// Launches an agent that streams 2,000 chunks slowly, and waits until it has stored ten.
    async fn launch_slow(&self) -> Agent {
        let agent = self
            .launch("slowly [[scenario:slow n=2000 delay_ms=20]]", json!({}))
            .await;
        self.app.wait_messages(agent.id, 10).await;
        agent
    }

    /// Waits until none of this test's processes is left.
    async fn assert_no_process_left(&self) {
        self.marked.assert_none_left(&[self.app.pid()]).await
    }

    /// The streamed model requests the fake received.
    fn stream_requests(&self) -> Vec<Value> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(":streamGenerateContent"))
            .filter_map(|r| r.body)
            .collect()
    }
}

#[tokio::test]
async fn a_short_answer_is_streamed_as_text_with_the_session_and_its_usage() {
    let Some(g) = Gemini::start().await else {
        return;
    };
    let (agent, messages, events) = g.run("say hello [[scenario:hello]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    assert_eq!(
        joined(&messages, "content_delta"),
        "Hello! This is the fake API answering."
    );
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
async fn two_thousand_text_deltas_arrive_in_order_and_exact() {
    let Some(g) = Gemini::start().await else {
        return;
    };
    let (agent, messages, _) = g.run("count [[scenario:long n=2000]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    let tokens = of_event(&messages, "content_delta");
    // One message per chunk of the API's stream, in its order, nothing lost or repeated.
    let expected = fake_anthropic::words(2000);
    assert_eq!(
        tokens
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        expected
    );
    assert!(tokens
        .windows(2)
        .all(|w| w[0].sequence_number + 1 == w[1].sequence_number));
}

#[tokio::test]
async fn a_shell_command_round_trip_is_shown_as_tool_messages() {
    let Some(g) = Gemini::start().await else {
        return;
    };
    let (agent, messages, _) = g
        .run(
            "run it [[scenario:tool cmd=echo%20from-the-shell]]",
            json!({"approvalMode": "yolo"}),
        )
        .await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    let tool = of_event(&messages, "tool_use");
    assert_eq!(tool.len(), 1, "{messages:#?}");
    assert_eq!(
        (tool[0].message_type, tool[0].content.as_str()),
        (MessageType::Tool, "run_shell_command")
    );
    assert_eq!(tool[0].metadata["input"]["command"], "echo from-the-shell");
    let result = of_event(&messages, "tool_result");
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].message_type, MessageType::Tool);
    assert!(
        result[0].content.contains("from-the-shell"),
        "{:?}",
        result[0]
    );
    assert_eq!(
        result[0].metadata["toolUseId"],
        tool[0].metadata["toolUseId"]
    );
    assert!(joined(&messages, "content_delta").contains("from-the-shell"));
    assert_eq!(
        g.stream_requests().len(),
        2,
        "the tool's output went back to the model"
    );
}

#[tokio::test]
async fn an_api_error_fails_the_agent_with_the_apis_message() {
    let Some(g) = Gemini::start().await else {
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
    let Some(g) = Gemini::start().await else {
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
async fn a_delete_mid_stream_terminates_it_and_leaves_no_process() {
    let Some(g) = Gemini::start().await else {
        return;
    };
    let agent = g.launch_slow().await;
    // The CLI relaunches itself as a child that ignores signals sent to its pid alone.
    let cli = g.marked.wait_process("gemini", &[g.app.pid()]).await;
    let begun = std::time::Instant::now();
    assert_eq!(g.app.delete_agent(agent.id, false).await.status(), 204);
    assert_eq!(g.app.agent(agent.id).await.status, AgentStatus::Terminated);
    assert!(process::is_zombie_or_gone(cli));
    g.assert_no_process_left().await;
    assert_contiguous(&g.app.messages(agent.id, None).await, 1);
    eprintln!("terminate took {:?}", begun.elapsed());
}

#[tokio::test]
async fn a_follow_up_resumes_the_session_with_its_history() {
    let Some(g) = Gemini::start().await else {
        return;
    };
    let (agent, first, _) = g.run("remember this [[scenario:hello]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed);
    let session = agent.session_id.clone().unwrap();
    let follow_up = g.app.send(agent.id, "and now? [[scenario:hello]]").await;
    let all = g.app.wait_answer(agent.id, &follow_up).await;
    assert_contiguous(&all, 1);
    let second = &all[first.len()..];
    assert_eq!(second[0].metadata["eventType"], "user_input");
    // The second run is the same session, and the model saw the first turn.
    let init = second
        .iter()
        .find(|m| m.metadata["subtype"] == "init")
        .expect("the second run's init");
    assert_eq!(init.metadata["sessionId"], session.as_str());
    let requests = g.stream_requests();
    assert_eq!(requests.len(), 2);
    let history = requests[1]["contents"].to_string();
    assert!(history.contains("remember this"), "{history}");
    assert_eq!(g.app.agent(agent.id).await.status, AgentStatus::Completed);
}

#[tokio::test]
async fn an_interrupt_ends_the_turn_and_a_follow_up_continues_the_session() {
    let Some(g) = Gemini::start().await else {
        return;
    };
    let agent = g.launch_slow().await;
    assert_eq!(g.app.interrupt(agent.id).await.status(), 202);
    let stopped = g.app.wait_finished(agent.id).await;
    assert_eq!(stopped.status, AgentStatus::Interrupted, "{stopped:?}");
    g.assert_no_process_left().await;
    let follow_up = g.app.send(agent.id, "go on [[scenario:hello]]").await;
    let all = g.app.wait_answer(agent.id, &follow_up).await;
    assert_contiguous(&all, 1);
    assert!(joined(&all, "content_delta").ends_with("Hello! This is the fake API answering."));
    assert_eq!(
        g.app.wait_finished(agent.id).await.session_id,
        stopped.session_id
    );
}

#[tokio::test]
async fn a_cli_that_prints_nothing_is_stopped_by_its_idle_timeout() {
    // Each chunk comes 5 s after the one before: past the 1.5 s the settings allow.
    let Some(g) =
        Gemini::start_with(None, &[("AGENTSTREAM__GEMINI__IDLE_TIMEOUT_MS", "1500")]).await
    else {
        return;
    };
    let (agent, _, _) = g
        .run("hang [[scenario:slow n=10 delay_ms=5000]]", json!({}))
        .await;
    assert_eq!(agent.status, AgentStatus::Failed);
    let error = agent.error.expect("an error");
    assert_eq!(error.code, "cli_timeout");
    assert!(
        error.message.contains("gemini.idle_timeout_ms"),
        "{error:?}"
    );
    g.assert_no_process_left().await;
}

#[tokio::test]
async fn what_the_cli_prints_that_is_not_its_json_is_kept_as_system_messages() {
    let Some(installed) = agent_clis::gemini_cli() else {
        return;
    };
    // A wrapper that prints a warning and a line of an unknown shape on stdout first.
    let dir = TempDir::new().unwrap();
    let wrapper = dir.path().join("gemini");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho 'Warning: something odd'\necho '{{\"type\":\"novelty\",\"x\":1}}'\nexec '{}' \"$@\"\n",
            installed.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(g) = Gemini::start_with(Some(wrapper), &[]).await else {
        return;
    };
    let (agent, messages, _) = g.run("hello [[scenario:hello]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    for (i, raw) in ["Warning: something odd", r#"{"type":"novelty","x":1}"#]
        .into_iter()
        .enumerate()
    {
        assert_eq!(messages[i].message_type, MessageType::System);
        assert_eq!(messages[i].raw.as_deref(), Some(raw));
        assert_eq!(messages[i].metadata["eventType"], "unknown");
    }
}
