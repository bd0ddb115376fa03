//! The harness of the end-to-end tests of the CLI agent types (`gemini.rs`, `codex.rs`): the REAL
//! pinned CLI, spawned by the server, against the in-repo fake of its vendor's model API, with a HOME of
//! the test's own that points the CLI at the fake (`agentstream_testkit::agent_clis`). Without the CLI
//! a test prints a loud SKIPPED line and passes, unless its `AGENTSTREAM_REQUIRE_…` is set.

use std::path::PathBuf;

use agentstream_testkit::{agent_clis, assert_contiguous, joined, of_event, process, TestServer};
use agentstream_wire::{Agent, AgentStatus, MessageType, ServerEvent, StoredMessage};
use fake_anthropic::FakeAnthropic;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::SERVER;

/// Which CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cli {
    Gemini,
    Codex,
}

impl Cli {
    fn agent_type(self) -> &'static str {
        match self {
            Cli::Gemini => "gemini-cli",
            Cli::Codex => "codex",
        }
    }

    /// The configuration every agent starts from. Gemini: with no model, the CLI first asks a router
    /// model, and retries that call five times whatever its settings say.
    fn defaults(self) -> Value {
        match self {
            Cli::Gemini => json!({"model": "gemini-2.5-flash"}),
            Cli::Codex => json!({"approvalPolicy": "never", "sandbox": "danger-full-access"}),
        }
    }

    /// Its settings' section (`gemini.idle_timeout_ms`).
    fn section(self) -> &'static str {
        match self {
            Cli::Gemini => "gemini",
            Cli::Codex => "codex",
        }
    }

    /// What its process's command line holds.
    fn process(self) -> &'static str {
        match self {
            Cli::Gemini => "gemini",
            Cli::Codex => "app-server",
        }
    }

    /// Where a model request holds the conversation so far.
    fn history(self) -> &'static str {
        match self {
            Cli::Gemini => "contents",
            Cli::Codex => "input",
        }
    }

    /// The path of the fake's streamed model requests.
    fn streams(self, path: &str) -> bool {
        match self {
            Cli::Gemini => path.ends_with(":streamGenerateContent"),
            Cli::Codex => path == "/v1/responses",
        }
    }
}

/// A fake API and a server wired to the real CLI.
pub struct CliAgents {
    pub app: TestServer,
    pub fake: FakeAnthropic,
    pub marked: process::Marked,
    /// The folder the agents work in.
    pub work: TempDir,
    cli: Cli,
    /// The CLI's HOME (its settings, its sessions).
    _home: Box<dyn std::any::Any>,
}

impl CliAgents {
    /// `None` (after saying so loudly) when the CLI is not installed.
    pub async fn start(cli: Cli) -> Option<CliAgents> {
        Self::start_with(cli, None, &[]).await
    }

    /// With `program` instead of the installed CLI (a wrapper around it), and more server settings.
    pub async fn start_with(
        cli: Cli,
        program: Option<PathBuf>,
        env: &[(&str, &str)],
    ) -> Option<CliAgents> {
        let installed = match cli {
            Cli::Gemini => agent_clis::gemini_cli()?,
            Cli::Codex => agent_clis::codex_cli()?,
        };
        let program = program.unwrap_or(installed);
        let fake = FakeAnthropic::start();
        let (home, server_env): (Box<dyn std::any::Any>, _) = match cli {
            Cli::Gemini => {
                let home = agent_clis::GeminiHome::new().unwrap();
                let env = home.server_env(&program, &fake.url());
                (Box::new(home), env)
            }
            Cli::Codex => {
                let home = agent_clis::CodexHome::new(&fake.url()).unwrap();
                let env = home.server_env(&program);
                (Box::new(home), env)
            }
        };
        let marked = process::Marked::new();
        let mut all: Vec<(&str, &str)> = server_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.push(marked.env());
        all.extend_from_slice(env);
        let app = TestServer::builder().envs(&all).spawn(SERVER).await;
        Some(CliAgents {
            app,
            fake,
            marked,
            work: TempDir::new().unwrap(),
            cli,
            _home: home,
        })
    }

    /// The body launching `prompt`: the CLI's defaults and the test's folder, then `extra`.
    fn body(&self, prompt: &str, extra: Value) -> Value {
        let mut config = self.cli.defaults();
        config["workingDirectory"] = json!(self.work.path());
        if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
            config.extend(extra);
        }
        json!({"type": self.cli.agent_type(), "prompt": prompt, "configuration": config})
    }

    pub async fn launch(&self, prompt: &str, extra: Value) -> Agent {
        let r = self.app.post_agent(&self.body(prompt, extra)).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        r.json().await.unwrap()
    }

    /// Runs an agent to its end, watching it over the WebSocket; returns the agent, what the socket
    /// delivered, and every event.
    pub async fn run(
        &self,
        prompt: &str,
        extra: Value,
    ) -> (Agent, Vec<StoredMessage>, Vec<ServerEvent>) {
        self.app.run_watched(&self.body(prompt, extra)).await
    }

    /// Launches an agent that streams 2,000 chunks slowly, and waits until it has stored ten.
    pub async fn launch_slow(&self) -> Agent {
        let agent = self
            .launch("slowly [[scenario:slow n=2000 delay_ms=20]]", json!({}))
            .await;
        self.app.wait_messages(agent.id, 10).await;
        agent
    }

    /// Waits until none of this test's processes is left.
    pub async fn assert_no_process_left(&self) {
        self.marked.assert_none_left(&[self.app.pid()]).await
    }

    /// The bodies of the streamed model requests the fake received.
    pub fn stream_requests(&self) -> Vec<Value> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| self.cli.streams(&r.path))
            .filter_map(|r| r.body)
            .collect()
    }

    /// A wrapper of the installed CLI that prints a warning and a line of an unknown shape on stdout
    /// first (in `dir`); `None` when the CLI is not installed.
    pub fn noisy_wrapper(cli: Cli, dir: &std::path::Path) -> Option<PathBuf> {
        let installed = match cli {
            Cli::Gemini => agent_clis::gemini_cli()?,
            Cli::Codex => agent_clis::codex_cli()?,
        };
        let wrapper = dir.join("cli");
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
        Some(wrapper)
    }
}

/// The answer of the `hello` scenario of every fake API.
pub const HELLO: &str = "Hello! This is the fake API answering.";

// What every CLI type must do, each test run for each type (`gemini.rs`, `codex.rs`).

/// 2,000 deltas of the API's stream arrive as 2,000 `content_delta` messages, exact and in order.
pub async fn two_thousand_deltas_in_order(cli: Cli) {
    let Some(c) = CliAgents::start(cli).await else {
        return;
    };
    let (agent, messages, _) = c.run("count [[scenario:long n=2000]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    let tokens = of_event(&messages, "content_delta");
    assert_eq!(
        tokens
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        fake_anthropic::words(2000)
    );
    assert!(tokens
        .windows(2)
        .all(|w| w[0].sequence_number + 1 == w[1].sequence_number));
}

/// A shell command (`extra` lets it run) is a `tool_use` named `tool` with its command in
/// `metadata.input`, then a `tool_result` with its output, which goes back to the model.
pub async fn shell_command_round_trip(cli: Cli, extra: Value, tool: &str) {
    let Some(c) = CliAgents::start(cli).await else {
        return;
    };
    let (agent, messages, _) = c
        .run("run it [[scenario:tool cmd=echo%20from-the-shell]]", extra)
        .await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    let used = of_event(&messages, "tool_use");
    assert_eq!(used.len(), 1, "{messages:#?}");
    assert_eq!(
        (used[0].message_type, used[0].content.as_str()),
        (MessageType::Tool, tool)
    );
    let command = used[0].metadata["input"]["command"]
        .as_str()
        .unwrap_or_default();
    assert!(command.contains("echo from-the-shell"), "{:?}", used[0]);
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
        used[0].metadata["toolUseId"]
    );
    assert!(joined(&messages, "content_delta").contains("from-the-shell"));
    assert_eq!(
        c.stream_requests().len(),
        2,
        "the output went back to the model"
    );
}

/// DELETE mid-stream: `terminated`, every stored message contiguous, and no process of the CLI left
/// (the Gemini CLI relaunches itself as a child that ignores signals sent to its pid alone).
pub async fn delete_mid_stream_leaves_no_process(cli: Cli) {
    let Some(c) = CliAgents::start(cli).await else {
        return;
    };
    let agent = c.launch_slow().await;
    let pid = c.marked.wait_process(cli.process(), &[c.app.pid()]).await;
    assert_eq!(c.app.delete_agent(agent.id, false).await.status(), 204);
    assert_eq!(c.app.agent(agent.id).await.status, AgentStatus::Terminated);
    assert!(process::is_zombie_or_gone(pid));
    c.assert_no_process_left().await;
    assert_contiguous(&c.app.messages(agent.id, None).await, 1);
}

/// A follow-up after the run continues the same session: the model sees the first turn.
pub async fn follow_up_resumes_with_history(cli: Cli) {
    let Some(c) = CliAgents::start(cli).await else {
        return;
    };
    let (agent, first, _) = c.run("remember this [[scenario:hello]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed);
    let follow_up = c.app.send(agent.id, "and now? [[scenario:hello]]").await;
    let all = c.app.wait_answer(agent.id, &follow_up).await;
    assert_contiguous(&all, 1);
    assert_eq!(all[first.len()].metadata["eventType"], "user_input");
    assert!(joined(&all[first.len()..], "content_delta").ends_with(HELLO));
    let requests = c.stream_requests();
    assert_eq!(requests.len(), 2);
    let history = requests[1][cli.history()].to_string();
    assert!(history.contains("remember this"), "{history}");
    let after = c.app.wait_finished(agent.id).await;
    assert_eq!(after.status, AgentStatus::Completed);
    assert_eq!(after.session_id, agent.session_id);
}

/// An interrupt ends the turn `interrupted` (no process left); a follow-up continues the session.
pub async fn interrupt_then_follow_up(cli: Cli) {
    let Some(c) = CliAgents::start(cli).await else {
        return;
    };
    let agent = c.launch_slow().await;
    assert_eq!(c.app.interrupt(agent.id).await.status(), 202);
    let stopped = c.app.wait_finished(agent.id).await;
    assert_eq!(stopped.status, AgentStatus::Interrupted, "{stopped:?}");
    c.assert_no_process_left().await;
    let follow_up = c.app.send(agent.id, "go on [[scenario:hello]]").await;
    let all = c.app.wait_answer(agent.id, &follow_up).await;
    assert_contiguous(&all, 1);
    assert!(joined(&all, "content_delta").ends_with(HELLO));
    let after = c.app.wait_finished(agent.id).await;
    assert_eq!(after.status, AgentStatus::Completed);
    assert_eq!(after.session_id, stopped.session_id);
}

/// A CLI silent for longer than its type's idle timeout is stopped: `cli_timeout`, naming the setting.
pub async fn silence_ends_with_the_idle_timeout(cli: Cli) {
    // Each delta comes 5 s after the one before: past the 1.5 s the settings allow.
    let variable = format!(
        "AGENTSTREAM__{}__IDLE_TIMEOUT_MS",
        cli.section().to_uppercase()
    );
    let Some(c) = CliAgents::start_with(cli, None, &[(&variable, "1500")]).await else {
        return;
    };
    let (agent, _, _) = c
        .run("hang [[scenario:slow n=10 delay_ms=5000]]", json!({}))
        .await;
    assert_eq!(agent.status, AgentStatus::Failed);
    let error = agent.error.expect("an error");
    assert_eq!(error.code, "cli_timeout");
    let setting = format!("{}.idle_timeout_ms", cli.section());
    assert!(error.message.contains(&setting), "{error:?}");
    c.assert_no_process_left().await;
}

/// What the CLI prints that is not its JSON (a warning, a line of an unknown shape) is stored whole as
/// `system` messages, and the run goes on.
pub async fn other_output_is_kept_as_system_messages(cli: Cli) {
    let dir = TempDir::new().unwrap();
    let Some(wrapper) = CliAgents::noisy_wrapper(cli, dir.path()) else {
        return;
    };
    let Some(c) = CliAgents::start_with(cli, Some(wrapper), &[]).await else {
        return;
    };
    let (agent, messages, _) = c.run("hello [[scenario:hello]]", json!({})).await;
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
