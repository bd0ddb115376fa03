//! `claude-code` agents end to end: the REAL Claude CLI (npm `@anthropic-ai/claude-code@2.1.330`, put in
//! `.tools/claude` by `.ci/run`) runs against the in-repo fake Anthropic API, through both transports —
//! `cli` (spawned by the server) and `proxy` (spawned by `agentstream proxy`, read as SSE).
//!
//! Without the CLI these tests print a loud SKIPPED line and pass, unless `AGENTSTREAM_REQUIRE_CLAUDE=1`
//! (set by `.ci/run`), which turns a missing CLI into a failure.

use std::path::PathBuf;

use agentstream_testkit::{
    assert_contiguous, assert_error, joined, of_event, process, result_of, skip_or_fail, TestDir,
    TestServer,
};
use agentstream_wire::{Agent, AgentStatus, MessageType, ServerEvent, StoredMessage};
use fake_anthropic::FakeAnthropic;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::SERVER;

mod conversation;

/// The CLI version the tests are written against.
const CLI_VERSION: &str = "2.1.330";

#[derive(Clone, Copy, Debug)]
pub(crate) enum Transport {
    Cli,
    Proxy,
}

/// A fake API, a server (and for `Proxy` a proxy) wired to the real CLI.
pub(crate) struct Claude {
    pub(crate) app: TestServer,
    _proxy: Option<TestServer>,
    fake: FakeAnthropic,
    /// Its processes, found by a marker in their environment.
    marked: process::Marked,
    /// The CLI's HOME (its sessions live under `.claude/projects`).
    home: TempDir,
    /// The server's data folder, and the environment it runs the CLI with (for a restart).
    dir: TestDir,
    cli_env: Vec<(String, String)>,
}

fn cli_path() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("AGENTSTREAM_TEST_CLAUDE") {
        return Some(PathBuf::from(path));
    }
    let local =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/claude/node_modules/.bin/claude");
    local.exists().then_some(local)
}

impl Claude {
    /// `None` (after saying so loudly) when the CLI is not installed.
    pub(crate) async fn start(transport: Transport) -> Option<Claude> {
        let Some(cli) = cli_path() else {
            let hint = format!(
                "the Claude CLI is not installed: run .ci/run, or `npm install --prefix .tools/claude @anthropic-ai/claude-code@{CLI_VERSION}`"
            );
            skip_or_fail(
                "claude-code end-to-end test",
                &hint,
                "AGENTSTREAM_REQUIRE_CLAUDE",
            );
            return None;
        };
        let fake = FakeAnthropic::start();
        let home = TempDir::new().unwrap();
        let dir = TestDir::new();
        let marked = process::Marked::new();
        let cli_path = cli.display().to_string();
        let home_path = home.path().display().to_string();
        let fake_url = fake.url();
        let mut cli_env: Vec<(&str, &str)> = vec![
            ("ANTHROPIC_BASE_URL", &fake_url),
            ("ANTHROPIC_API_KEY", "test"),
            ("HOME", &home_path),
            ("DISABLE_AUTOUPDATER", "1"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_TELEMETRY", "1"),
            ("DISABLE_ERROR_REPORTING", "1"),
            ("CLAUDE_CODE_MAX_RETRIES", "1"),
            ("AGENTSTREAM__CLAUDE__CLI_PATH", &cli_path),
            marked.env(),
            // A stop gives the CLI this long per signal.
            ("AGENTSTREAM__CLAUDE__STOP_GRACE_MS", "2000"),
        ];
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cli_env.push(("IS_SANDBOX", "1"));
        }
        let (app, proxy) = match transport {
            Transport::Cli => (
                TestServer::builder()
                    .dir(&dir)
                    .envs(&cli_env)
                    .spawn(SERVER)
                    .await,
                None,
            ),
            Transport::Proxy => {
                let proxy = TestServer::builder()
                    .command("proxy")
                    .dir(&dir)
                    .envs(&cli_env)
                    .spawn(SERVER)
                    .await;
                let app = TestServer::builder()
                    .dir(&dir)
                    .claude_proxy(&proxy.address)
                    .spawn(SERVER)
                    .await;
                (app, Some(proxy))
            }
        };
        let cli_env = cli_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(Claude {
            app,
            _proxy: proxy,
            fake,
            marked,
            home,
            dir,
            cli_env,
        })
    }

    /// Kills the server (SIGKILL) and starts it again on the same database (cli transport).
    async fn restart_after_kill(&mut self) {
        self.app.kill().await;
        let env: Vec<(&str, &str)> = self
            .cli_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.app = TestServer::builder()
            .dir(&self.dir)
            .envs(&env)
            .spawn(SERVER)
            .await;
    }

    pub(crate) async fn launch(&self, prompt: &str, configuration: Value) -> Agent {
        let r = self
            .app
            .post_agent(
                &json!({"type": "claude-code", "prompt": prompt, "configuration": configuration}),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        r.json().await.unwrap()
    }

    /// Runs an agent to its end, watching it over the WebSocket; returns the agent, what the socket
    /// delivered, and every event.
    async fn run(
        &self,
        prompt: &str,
        configuration: Value,
    ) -> (Agent, Vec<StoredMessage>, Vec<ServerEvent>) {
        self.app
            .run_watched(
                &json!({"type": "claude-code", "prompt": prompt, "configuration": configuration}),
            )
            .await
    }

    /// The servers of this test, which carry its marker too.
    fn servers(&self) -> [Option<i32>; 2] {
        [
            self.app.pid(),
            self._proxy.as_ref().and_then(TestServer::pid),
        ]
    }

    /// Waits until a process of this test whose command line contains `needle` runs; returns its pid.
    async fn wait_process(&self, needle: &str) -> i32 {
        self.marked.wait_process(needle, &self.servers()).await
    }

    /// Waits until none of this test's processes is left.
    async fn assert_no_process_left(&self) {
        self.marked.assert_none_left(&self.servers()).await
    }
}

async fn short_answer(transport: Transport) {
    let Some(c) = Claude::start(transport).await else {
        return;
    };
    let (agent, messages, _) = c.run("say hello [[scenario:hello]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    let answer = &result_of(&messages).content;
    assert!(answer.starts_with("Hello!"), "{answer}");
    assert_eq!(&joined(&messages, "content_delta"), answer);
    // The whole block arrives too, marked so that a client does not show it twice.
    assert_eq!(&joined(&messages, "assistant_message"), answer);
    assert!(
        agent.session_id.is_some(),
        "the session id is kept on the agent"
    );
    assert_eq!(agent.model.as_deref(), Some("claude-opus-5-5"));
    assert_eq!(c.fake.message_requests().len(), 1);
    c.assert_no_process_left().await;
}

async fn two_thousand_tokens_in_order(transport: Transport) {
    let Some(c) = Claude::start(transport).await else {
        return;
    };
    let (agent, messages, _) = c.run("count [[scenario:long n=2000]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Completed);
    let tokens = of_event(&messages, "content_delta");
    assert_eq!(tokens.len(), 2000);
    assert!(tokens
        .windows(2)
        .all(|w| w[0].sequence_number + 1 == w[1].sequence_number));
    assert_eq!(
        joined(&messages, "content_delta"),
        result_of(&messages).content
    );
}

async fn tool_round_trip(transport: Transport) {
    let Some(c) = Claude::start(transport).await else {
        return;
    };
    let (agent, messages, _) = c
        .run(
            "run it [[scenario:tool]]",
            json!({"permissionMode": "bypassPermissions"}),
        )
        .await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    let tool = of_event(&messages, "tool_use");
    assert_eq!(tool.len(), 1);
    assert_eq!(
        (tool[0].message_type, tool[0].content.as_str()),
        (MessageType::Tool, "Bash")
    );
    let input: Value = serde_json::from_str(&joined(&messages, "tool_input_delta")).unwrap();
    assert_eq!(input["command"], "echo hi");
    let result = of_event(&messages, "tool_result");
    assert_eq!(result.len(), 1);
    assert_eq!(
        (result[0].message_type, result[0].content.as_str()),
        (MessageType::Tool, "hi")
    );
    assert_eq!(
        result[0].metadata["toolUseId"],
        tool[0].metadata["toolUseId"]
    );
    assert!(result_of(&messages).content.contains("hi"));
    assert_eq!(c.fake.message_requests().len(), 2, "two turns");
}

async fn api_error_fails_with_the_apis_message(transport: Transport) {
    let Some(c) = Claude::start(transport).await else {
        return;
    };
    let (agent, messages, events) = c.run("fail [[scenario:err500]]", json!({})).await;
    assert_eq!(agent.status, AgentStatus::Failed);
    let error = agent.error.expect("the failure is on the agent");
    assert!(error.message.contains("API Error: 500"), "{error:?}");
    assert!(events.iter().any(
        |e| matches!(e, ServerEvent::AgentError(a) if a.error.message.contains("API Error: 500"))
    ));
    assert!(of_event(&messages, "system")
        .iter()
        .any(|m| m.metadata["subtype"] == "api_retry"));
    c.assert_no_process_left().await;
}

async fn terminate_mid_stream_leaves_no_process(transport: Transport) {
    let Some(c) = Claude::start(transport).await else {
        return;
    };
    // The Bash tool runs `sleep 300` in a process group of its own.
    let agent = c
        .launch(
            "wait [[scenario:tool cmd=echo%20start%20%26%26%20sleep%20300]]",
            json!({"permissionMode": "bypassPermissions"}),
        )
        .await;
    c.wait_process("sleep 300").await;
    let begun = std::time::Instant::now();
    let r = c
        .app
        .client
        .delete(c.app.url(&format!("/api/agents/{}", agent.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let elapsed = begun.elapsed();
    assert_eq!(c.app.agent(agent.id).await.status, AgentStatus::Terminated);
    c.assert_no_process_left().await;
    assert_contiguous(&c.app.messages(agent.id, None).await, 1);
    eprintln!("terminate ({transport:?}) took {elapsed:?}");
}

async fn a_killed_cli_fails_the_agent(transport: Transport) {
    let Some(c) = Claude::start(transport).await else {
        return;
    };
    let agent = c
        .launch("slowly [[scenario:slow n=2000 delay_ms=20]]", json!({}))
        .await;
    c.app.wait_messages(agent.id, 10).await;
    let cli = c.wait_process("stream-json").await;
    // SAFETY: kill(2) on a pid of this test's own CLI.
    unsafe { libc::kill(cli, libc::SIGKILL) };
    let agent = c.app.wait_finished(agent.id).await;
    assert_eq!(agent.status, AgentStatus::Failed);
    let error = agent.error.expect("an error");
    assert!(error.message.contains("signal 9"), "{error:?}");
    c.assert_no_process_left().await;
}

#[tokio::test]
async fn cli_short_answer() {
    short_answer(Transport::Cli).await;
}

#[tokio::test]
async fn proxy_short_answer() {
    short_answer(Transport::Proxy).await;
}

#[tokio::test]
async fn cli_two_thousand_tokens_in_order() {
    two_thousand_tokens_in_order(Transport::Cli).await;
}

#[tokio::test]
async fn proxy_two_thousand_tokens_in_order() {
    two_thousand_tokens_in_order(Transport::Proxy).await;
}

#[tokio::test]
async fn cli_tool_round_trip() {
    tool_round_trip(Transport::Cli).await;
}

#[tokio::test]
async fn proxy_tool_round_trip() {
    tool_round_trip(Transport::Proxy).await;
}

#[tokio::test]
async fn cli_api_error_fails_with_the_apis_message() {
    api_error_fails_with_the_apis_message(Transport::Cli).await;
}

#[tokio::test]
async fn proxy_api_error_fails_with_the_apis_message() {
    api_error_fails_with_the_apis_message(Transport::Proxy).await;
}

#[tokio::test]
async fn cli_terminate_mid_stream_leaves_no_process() {
    terminate_mid_stream_leaves_no_process(Transport::Cli).await;
}

#[tokio::test]
async fn proxy_terminate_mid_stream_leaves_no_process() {
    terminate_mid_stream_leaves_no_process(Transport::Proxy).await;
}

#[tokio::test]
async fn cli_killed_cli_fails_the_agent() {
    a_killed_cli_fails_the_agent(Transport::Cli).await;
}

#[tokio::test]
async fn proxy_killed_cli_fails_the_agent() {
    a_killed_cli_fails_the_agent(Transport::Proxy).await;
}

#[tokio::test]
async fn a_missing_cli_refuses_the_launch_and_names_the_setting() {
    let app = TestServer::builder()
        .env("AGENTSTREAM__CLAUDE__CLI_PATH", "/nonexistent/claude")
        .spawn(SERVER)
        .await;
    let r = app
        .post_agent(&json!({"type": "claude-code", "prompt": "go"}))
        .await;
    let error = assert_error(r, 501, "agent_type_unavailable").await;
    assert!(error.message.contains("claude.cli_path"), "{error:?}");
    // Through a proxy the CLI is the proxy's business: the launch is taken.
    let proxied = app
        .post_agent(&json!({"type": "claude-code", "prompt": "go", "configuration": {"transport": "proxy"}}))
        .await;
    assert_eq!(proxied.status(), 201);
}

#[tokio::test]
async fn an_unreachable_proxy_fails_the_agent() {
    let app = TestServer::builder()
        .claude_proxy("http://127.0.0.1:9")
        .spawn(SERVER)
        .await;
    let agent = app.run_claude_to_end("go").await;
    assert_eq!(agent.status, AgentStatus::Failed);
    assert_eq!(agent.error.unwrap().code, "proxy_unreachable");
}

#[tokio::test]
async fn bad_claude_configurations_are_refused() {
    let app = TestServer::spawn(SERVER).await;
    for configuration in [
        json!({"permissionMode": "yolo"}),
        json!({"sessionId": "not-a-uuid"}),
        json!({"workingDirectory": "/no/such/folder"}),
        json!({"allowedTools": ["--dangerously-skip-permissions"]}),
        json!({"model": "a b"}),
    ] {
        let r = app
            .post_agent(
                &json!({"type": "claude-code", "prompt": "hi", "configuration": configuration}),
            )
            .await;
        assert_error(r, 400, "invalid_configuration").await;
    }
}

#[tokio::test]
async fn malformed_cli_output_is_stored_as_errors_and_the_stream_goes_on() {
    let cli = r#"echo '{"type":"system","subtype":"init","session_id":"s1","model":"m"}'
echo 'this is not json'
printf '{"type":"x","bad":"\377\376"}\n'
printf '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\\u0000b"}}}\n'
head -c 5000 /dev/zero | tr '\0' 'x'; echo
echo '{"type":"brand_new_kind","n":1}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"done"'
echo '{"type":"result","subtype":"success","is_error":false,"result":"done","num_turns":1}'"#;
    let app = TestServer::builder()
        .fake_cli(cli)
        .env("AGENTSTREAM__RUNNERS__MAX_LINE_BYTES", "1000")
        .spawn(SERVER)
        .await;
    let agent = app.run_claude_to_end("go").await;
    assert_eq!(agent.status, AgentStatus::Completed, "{agent:?}");
    let messages = app.messages(agent.id, None).await;
    assert_contiguous(&messages, 1);
    let kinds: Vec<(MessageType, &str)> = messages
        .iter()
        .map(|m| {
            (
                m.message_type,
                m.metadata["eventType"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (MessageType::System, "system"),
            (MessageType::Error, "parse_error"),
            (MessageType::Error, "parse_error"),
            (MessageType::Assistant, "content_delta"),
            (MessageType::Error, "line_too_long"),
            (MessageType::System, "unknown"),
            (MessageType::Error, "parse_error"),
            (MessageType::Result, "result"),
        ]
    );
    assert!(messages[2].content.contains("UTF-8"));
    // A NUL inside JSON text is kept as is where the database can hold it (PostgreSQL's text cannot:
    // U+FFFD there, in the stored row and in the frame alike).
    let nul = match agentstream_testkit::backend() {
        agentstream_testkit::Backend::Sqlite => "a\u{0}b",
        agentstream_testkit::Backend::Postgres => "a\u{FFFD}b",
    };
    assert_eq!(messages[3].content, nul);
    assert!(messages[4].content.contains("5000 bytes"));
    assert!(messages[4].raw.as_ref().unwrap().len() <= 1000);
    assert_eq!(agent.session_id.as_deref(), Some("s1"));
}

#[tokio::test]
async fn a_cli_that_exits_badly_fails_with_its_code_and_stderr() {
    let cli = "echo 'something broke' >&2\nexit 3";
    let app = TestServer::builder().fake_cli(cli).spawn(SERVER).await;
    let agent = app.run_claude_to_end("go").await;
    assert_eq!(agent.status, AgentStatus::Failed);
    let error = agent.error.unwrap();
    assert_eq!(error.code, "cli_exit");
    assert!(
        error.message.contains("code 3: something broke"),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_proxy_serves_the_original_contract() {
    let cli = r#"echo '{"type":"system","subtype":"init","session_id":"s"}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"ok"}'
cat >/dev/null"#;
    let proxy = TestServer::builder()
        .command("proxy")
        .fake_cli(cli)
        .spawn(SERVER)
        .await;
    let c = &proxy.client;
    let health: Value = c
        .get(proxy.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok", "running": 0}));

    let r = c
        .post(proxy.url("/agent/stream"))
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-agent-id"));
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    let frames: Vec<&str> = body.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 3, "{body}");
    assert!(frames[0].starts_with("data: {\"type\":\"system\""));
    assert!(frames[1].starts_with("data: {\"type\":\"result\""));
    assert!(
        frames[2].starts_with("event: complete\ndata: {\"status\":\"success\""),
        "{body}"
    );

    let r = c
        .post(proxy.url("/agent/stream"))
        .json(&json!({"prompt": " "}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c.post(proxy.url("/agent/stop/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let started: Value = c
        .post(proxy.url("/agent/start"))
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(started["status"], "started");
    assert!(started["agent_id"].is_string());
}

#[tokio::test]
async fn the_proxy_reports_a_failed_cli_as_an_error_event() {
    let cli = "echo 'no credentials' >&2\nexit 1";
    let proxy = TestServer::builder()
        .command("proxy")
        .fake_cli(cli)
        .spawn(SERVER)
        .await;
    let body = proxy
        .client
        .post(proxy.url("/agent/stream"))
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("event: error\ndata: "), "{body}");
    assert!(body.contains("code 1: no credentials"), "{body}");
}

#[tokio::test]
async fn a_proxy_answering_non_2xx_fails_the_agent_with_its_status() {
    // Any HTTP server without the proxy's routes will do: the fake model API answers 404.
    let not_a_proxy = FakeAnthropic::start();
    let url = not_a_proxy.url();
    let app = TestServer::builder().claude_proxy(&url).spawn(SERVER).await;
    let agent = app.run_claude_to_end("go").await;
    assert_eq!(agent.status, AgentStatus::Failed);
    let error = agent.error.unwrap();
    assert_eq!(error.code, "proxy_http_error");
    assert!(error.message.contains("404"), "{error:?}");
}

#[tokio::test]
async fn a_proxy_that_dies_mid_stream_fails_the_agent_and_keeps_what_arrived() {
    let cli = r#"i=0; while [ $i -lt 1000 ]; do
  echo '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"t"}}}'
  i=$((i+1)); sleep 0.01
done"#;
    let mut proxy = TestServer::builder()
        .command("proxy")
        .fake_cli(cli)
        .spawn(SERVER)
        .await;
    let app = TestServer::builder()
        .claude_proxy(&proxy.address)
        .spawn(SERVER)
        .await;
    let agent: Agent = app
        .post_agent(&json!({"type": "claude-code", "prompt": "hi"}))
        .await
        .json()
        .await
        .unwrap();
    app.wait_messages(agent.id, 10).await;
    proxy.kill().await;
    let agent = app.wait_finished(agent.id).await;
    assert_eq!(agent.status, AgentStatus::Failed);
    assert_eq!(agent.error.unwrap().code, "stream_cut");
    let messages = app.messages(agent.id, None).await;
    assert!(messages.len() >= 10);
    assert_contiguous(&messages, 1);
}
