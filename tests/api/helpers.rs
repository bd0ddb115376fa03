//! Spawns the real `agentstream` binary on 127.0.0.1 port 0 with a fresh SQLite file, and talks to it
//! as a client would: REST with reqwest, WebSocket with tokio-tungstenite.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use agentstream_wire::{Agent, AgentStatus, ErrorBody, Message, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// How long any single wait in a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A running server and what it needs.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    child: Child,
    dir: PathBuf,
    log_name: String,
    /// Keeps the folder (database, log) alive for the test; `None` when the caller owns it.
    _tmp: Option<TempDir>,
}

impl TestApp {
    /// A server on a fresh database.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A server on a fresh database, with `AGENTSTREAM__…` settings.
    pub async fn spawn_with(env: &[(&str, &str)]) -> TestApp {
        let tmp = TempDir::new().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut app = Self::spawn_in(&dir, env).await;
        app._tmp = Some(tmp);
        app
    }

    /// A server whose `claude-code` agents stream through the Claude proxy at `url`, with more settings.
    pub async fn spawn_via_proxy(url: &str, env: &[(&str, &str)]) -> TestApp {
        let mut all = vec![
            ("AGENTSTREAM__CLAUDE__TRANSPORT", "proxy"),
            ("AGENTSTREAM__CLAUDE__PROXY_URL", url),
        ];
        all.extend_from_slice(env);
        Self::spawn_with(&all).await
    }

    /// A server on the database in `dir` (kept across restarts by the caller).
    pub async fn spawn_in(dir: &Path, env: &[(&str, &str)]) -> TestApp {
        Self::spawn_command(dir, "serve", env).await
    }

    /// `agentstream proxy` (the Claude proxy contract) on a random port, logging into `dir`.
    pub async fn spawn_proxy(dir: &Path, env: &[(&str, &str)]) -> TestApp {
        Self::spawn_command(dir, "proxy", env).await
    }

    async fn spawn_command(dir: &Path, command: &str, env: &[(&str, &str)]) -> TestApp {
        Self::try_start(dir, command, &["--host", "127.0.0.1"], env)
            .await
            .unwrap_or_else(|failed| {
                panic!(
                    "the server exited before listening ({:?}); its log:\n{}",
                    failed.code, failed.log
                )
            })
    }

    /// Starts `agentstream <command>` on port 0 with the database in `dir`, the given flags (`--host`
    /// among them, or the settings' host) and `AGENTSTREAM__…` settings; `Err` if it exits before
    /// listening (a refused configuration), with its exit code and log (stderr).
    pub async fn try_start(
        dir: &Path,
        command: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Result<TestApp, StartFailure> {
        let db_url = format!("sqlite://{}/agent.db", dir.display());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{command}.log")))
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentstream"));
        cmd.arg(command)
            .arg("--port")
            .arg("0")
            .args(flags)
            .arg("--database-url")
            .arg(&db_url)
            // A folder with no settings files: only the compiled-in defaults and `env` apply.
            .arg("--config-dir")
            .arg(dir.join("no-config"))
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn agentstream");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, url)) = line.split_once(" listening on ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await
        .expect("server start timed out");
        let Some(address) = address else {
            let code = child.wait().await.ok().and_then(|s| s.code());
            let log =
                std::fs::read_to_string(dir.join(format!("{command}.log"))).unwrap_or_default();
            return Err(StartFailure { code, log });
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Ok(TestApp {
            address,
            port,
            client: reqwest::Client::new(),
            child,
            dir: dir.to_path_buf(),
            log_name: format!("{command}.log"),
            _tmp: None,
        })
    }

    /// `DELETE /api/agents/{id}` (with `?purge=true` when `purge`).
    pub async fn delete_agent(&self, id: Uuid, purge: bool) -> reqwest::Response {
        let query = if purge { "?purge=true" } else { "" };
        self.client
            .delete(self.url(&format!("/api/agents/{id}{query}")))
            .send()
            .await
            .expect("DELETE")
    }

    /// Makes `self.client` send `Authorization: Bearer <token>` (for a server with an API token).
    pub fn with_token(mut self, token: &str) -> TestApp {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header value"),
        );
        self.client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("http client");
        self
    }

    /// The folder of its database and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(&self.log_name)).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<i32> {
        self.child.id().map(|id| id as i32)
    }

    /// SIGKILLs the server and waits for it to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Waits for the server to exit by itself.
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.wait().await.expect("wait for the server")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// GETs `path` and decodes its JSON body (panics, failing the test, on any error).
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON body")
    }

    /// POST /api/agents with any body; returns the raw response.
    pub async fn post_agent(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/agents"))
            .json(body)
            .send()
            .await
            .expect("POST /api/agents")
    }

    /// Launches a synthetic agent and returns it.
    pub async fn launch(&self, tokens: u64, interval_ms: u64) -> Agent {
        let response = self
            .post_agent(&json!({"type": "synthetic", "prompt": "test",
                                "configuration": {"tokens": tokens, "intervalMs": interval_ms}}))
            .await;
        assert_eq!(
            response.status(),
            201,
            "launch failed: {}",
            response.text().await.unwrap_or_default()
        );
        response.json().await.expect("agent json")
    }

    pub async fn agent(&self, id: Uuid) -> Agent {
        let response = self
            .client
            .get(self.url(&format!("/api/agents/{id}")))
            .send()
            .await
            .expect("GET agent");
        assert_eq!(response.status(), 200);
        response.json().await.expect("agent json")
    }

    /// GET …/messages, optionally `?since=`.
    pub async fn messages(&self, id: Uuid, since: Option<i64>) -> Vec<Message> {
        let path = match since {
            Some(s) => format!("/api/agents/{id}/messages?since={s}"),
            None => format!("/api/agents/{id}/messages"),
        };
        let response = self
            .client
            .get(self.url(&path))
            .send()
            .await
            .expect("GET messages");
        assert_eq!(response.status(), 200);
        response.json().await.expect("messages json")
    }

    /// Waits until the agent's status is terminal.
    pub async fn wait_finished(&self, id: Uuid) -> Agent {
        self.wait_status(id, |s| s.is_terminal()).await
    }

    /// Waits until the agent's status satisfies `pred`.
    pub async fn wait_status(&self, id: Uuid, pred: impl Fn(AgentStatus) -> bool) -> Agent {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                let agent = self.agent(id).await;
                if pred(agent.status) {
                    return agent;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("agent status wait timed out")
    }

    /// Waits until at least `n` messages are stored.
    pub async fn wait_messages(&self, id: Uuid, n: usize) {
        tokio::time::timeout(TIMEOUT, async {
            while self.messages(id, None).await.len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("message wait timed out");
    }

    /// Launches a `claude-code` agent with `prompt` and waits for its end (the server's
    /// `claude.cli_path` is usually a [`fake_cli`]).
    pub async fn run_claude_to_end(&self, prompt: &str) -> Agent {
        let r = self
            .post_agent(&json!({"type": "claude-code", "prompt": prompt}))
            .await;
        assert_eq!(r.status(), 201);
        let agent: Agent = r.json().await.expect("agent json");
        self.wait_finished(agent.id).await
    }

    /// A WebSocket client connected to /ws.
    pub async fn ws(&self) -> WsClient {
        let (stream, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", self.port))
                .await
                .expect("websocket connect");
        WsClient { stream }
    }

    /// A WebSocket client whose socket has a tiny receive buffer, so that when it stops reading the
    /// server feels it at once instead of after the kernel has buffered megabytes.
    pub async fn ws_small_buffer(&self) -> WsClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = socket
            .connect(([127, 0, 0, 1], self.port).into())
            .await
            .expect("tcp connect");
        let (stream, _) = tokio_tungstenite::client_async(
            format!("ws://127.0.0.1:{}/ws", self.port),
            MaybeTlsStream::Plain(tcp),
        )
        .await
        .expect("websocket handshake");
        WsClient { stream }
    }

    /// Tries to open `/ws{query}` with extra request headers (`Origin`, `Authorization`, `Host`, …);
    /// `Err` with the status and body of a refused upgrade.
    pub async fn try_ws(&self, query: &str, headers: &[(&str, &str)]) -> Result<WsClient, Refused> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
        let url = format!("ws://127.0.0.1:{}/ws{query}", self.port);
        let mut request = url.into_client_request().expect("websocket request");
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(WsClient { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(Refused {
                status: response.status().as_u16(),
                headers: response
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect(),
                body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned(),
            }),
            Err(e) => panic!("websocket connect failed without an HTTP answer: {e}"),
        }
    }
}

/// A server that exited instead of listening.
#[derive(Debug)]
pub struct StartFailure {
    pub code: Option<i32>,
    /// What it wrote to stderr.
    pub log: String,
}

/// A refused WebSocket upgrade.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Refused {
    /// Asserts it is the protocol's error form with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        let body: ErrorBody = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not the error form ({e}): {self:?}"));
        assert_eq!(body.error.code, code, "{self:?}");
    }

    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes an executable shell script standing in for the Claude CLI into `dir`; it reads the first
/// message (the prompt, as stream-json on stdin) into `$first_message`, then runs `body`. Returns its
/// path, for `AGENTSTREAM__CLAUDE__CLI_PATH`.
pub fn fake_cli(dir: &Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-claude.sh");
    std::fs::write(&path, format!("#!/bin/sh\nread first_message\n{body}\n"))
        .expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
    path.display().to_string()
}

/// Asserts a response is the protocol's error form with this status and code.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    let got = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "status for {code}: body {text}");
    let body: ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not the error form ({e}): {text}"));
    assert_eq!(body.error.code, code, "{text}");
    assert!(!body.error.message.is_empty());
}

/// A WebSocket client speaking the protocol.
pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(WsMessage::Text(text.to_owned()))
            .await
            .expect("ws send");
    }

    pub async fn subscribe(&mut self, agent: Uuid, since: Option<i64>) {
        let mut data = json!({"agentId": agent});
        if let Some(s) = since {
            data["since"] = json!(s);
        }
        self.send_text(&json!({"event": "subscribe", "data": data}).to_string())
            .await;
    }

    /// Waits for the `subscribed` reply, skipping the events every connection receives meanwhile.
    pub async fn expect_subscribed(&mut self) -> agentstream_wire::Subscribed {
        loop {
            match self.next_event().await {
                ServerEvent::Subscribed(s) => return s,
                ServerEvent::AgentCreated(_)
                | ServerEvent::AgentStatus(_)
                | ServerEvent::AgentDeleted(_) => {}
                other => panic!("expected subscribed, got {other:?}"),
            }
        }
    }

    /// Reads every event until the server closes the socket; returns them and the close frame. Panics if
    /// nothing comes for [`TIMEOUT`] or the socket ends without a close frame.
    pub async fn read_until_close(
        &mut self,
    ) -> (
        Vec<ServerEvent>,
        tokio_tungstenite::tungstenite::protocol::CloseFrame<'static>,
    ) {
        let mut events = Vec::new();
        loop {
            let frame = tokio::time::timeout(TIMEOUT, self.stream.next())
                .await
                .expect("neither an event nor a close in time")
                .expect("the socket ended without a close frame")
                .expect("ws read");
            match frame {
                WsMessage::Text(text) => events.push(
                    serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("bad server frame ({e}): {text}")),
                ),
                WsMessage::Close(frame) => return (events, frame.expect("a close code")),
                _ => {}
            }
        }
    }

    /// The next protocol event; panics on timeout or close.
    pub async fn next_event(&mut self) -> ServerEvent {
        self.try_next_event(TIMEOUT)
            .await
            .expect("no websocket event in time")
    }

    /// The next protocol event within `wait`, or `None`.
    pub async fn try_next_event(&mut self, wait: Duration) -> Option<ServerEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match frame.expect("ws read") {
                WsMessage::Text(text) => {
                    return Some(
                        serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("bad server frame ({e}): {text}")),
                    )
                }
                WsMessage::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Reads events until `agent:complete` (or `agent:error` then `agent:complete`) of `agent`; returns its
    /// `agent:message` messages in arrival order and every event seen.
    pub async fn collect_until_complete(
        &mut self,
        agent: Uuid,
    ) -> (Vec<Message>, Vec<ServerEvent>) {
        let mut messages = Vec::new();
        let mut events = Vec::new();
        loop {
            let event = self.next_event().await;
            match &event {
                ServerEvent::AgentMessage(m) if m.agent_id == agent => {
                    messages.push(m.message.clone())
                }
                ServerEvent::AgentComplete(c) if c.agent_id == agent => {
                    events.push(event);
                    return (messages, events);
                }
                _ => {}
            }
            events.push(event);
        }
    }
}

/// Asserts `messages` are numbered exactly `first, first+1, …`.
pub fn assert_contiguous(messages: &[Message], first: i64) {
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m.sequence_number,
            first + i as i64,
            "hole or repeat at position {i}"
        );
    }
}
