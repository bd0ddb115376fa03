//! The server under test: the real `agentstream` binary as a child process on 127.0.0.1 with a fresh
//! SQLite file, and the client operations every scenario uses (launch, watch, read).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use agentstream_wire::{Agent, Message, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// Why a run failed (a benchmark that loses or misorders a message reports this, not a number).
pub type BenchResult<T> = Result<T, String>;

/// A running server.
pub struct Server {
    pub base: String,
    pub port: u16,
    pub client: reqwest::Client,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `binary` with a fresh database and `env` settings.
    pub async fn start(binary: &Path, env: &[(&str, String)]) -> BenchResult<Server> {
        let dir = tempfile::TempDir::new().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(binary);
        cmd.args([
            "serve",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--log-level",
            "warn",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}/bench.db", dir.path().display()))
        .arg("--config-dir")
        .arg(dir.path().join("none"))
        .env("AGENTSTREAM__AGENTS__MAX_RUNNING", "100000")
        .env("AGENTSTREAM__SERVER__STATIC_DIR", dir.path().join("no-web"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("agentstream listening on ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or("the server did not start")?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("no port")?;
        Ok(Server {
            base,
            port,
            client: reqwest::Client::new(),
            child,
            _dir: dir,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// CPU time the server has used (user + system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let Some(pid) = self.pid() else { return 0.0 };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at its closing parenthesis.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks: u64 = fields
            .get(11..13)
            .map_or(0, |t| t.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        ticks as f64 / hz as f64
    }

    /// Resident memory of the server, in bytes.
    pub fn rss(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Launches a synthetic agent.
    pub async fn launch(&self, tokens: u64, interval_ms: u64, stamp: bool) -> BenchResult<Agent> {
        self.launch_after(tokens, interval_ms, stamp, 0).await
    }

    /// Launches a synthetic agent whose answer starts `start_delay_ms` after its `system` line.
    pub async fn launch_after(
        &self,
        tokens: u64,
        interval_ms: u64,
        stamp: bool,
        start_delay_ms: u64,
    ) -> BenchResult<Agent> {
        let body = json!({"type": "synthetic", "prompt": "bench",
                          "configuration": {"tokens": tokens, "intervalMs": interval_ms, "stamp": stamp,
                                            "startDelayMs": start_delay_ms}});
        let r = self
            .client
            .post(format!("{}/api/agents", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 201 {
            return Err(format!(
                "launch answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ));
        }
        r.json().await.map_err(|e| e.to_string())
    }

    /// `GET /api/agents/{id}/messages?since=`.
    pub async fn messages(&self, id: Uuid, since: i64) -> BenchResult<Vec<Message>> {
        let body = self.messages_body(id, since).await?;
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    /// `GET /api/agents/{id}/messages?since=` as the bytes of the answer, read to the last one (a
    /// server's response time, as HTTP load generators count it; the caller parses afterwards).
    pub async fn messages_body(&self, id: Uuid, since: i64) -> BenchResult<bytes::Bytes> {
        let r = self
            .client
            .get(format!(
                "{}/api/agents/{id}/messages?since={since}",
                self.base
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 200 {
            return Err(format!("history answered {}", r.status()));
        }
        r.bytes().await.map_err(|e| e.to_string())
    }

    /// A WebSocket client.
    pub async fn ws(&self) -> BenchResult<Ws> {
        let (stream, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", self.port))
                .await
                .map_err(|e| format!("websocket: {e}"))?;
        Ok(Ws { stream })
    }
}

/// A protocol client over one WebSocket.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a watch saw of one agent.
pub struct Watched {
    /// Messages received (each checked: exactly the next sequence number).
    pub count: u64,
    /// Emit-to-receipt latencies of stamped tokens, in nanoseconds.
    pub latencies_ns: Vec<u64>,
}

impl Ws {
    pub async fn subscribe(&mut self, agent: Uuid, since: i64) -> BenchResult<()> {
        let frame = json!({"event": "subscribe", "data": {"agentId": agent, "since": since}});
        self.stream
            .send(WsMessage::Text(frame.to_string()))
            .await
            .map_err(|e| e.to_string())
    }

    /// Reads `agent`'s messages until its `agent:complete`, checking that they are 1, 2, 3… with no
    /// hole or repeat and that the completion names the last one.
    pub async fn watch(&mut self, agent: Uuid, stamped: bool) -> BenchResult<Watched> {
        let mut expected = 1i64;
        let mut latencies_ns = Vec::new();
        // Set when the agent had ended before the subscription: the replay ends at this number.
        let mut ended_at: Option<i64> = None;
        loop {
            if ended_at.is_some_and(|last| expected > last) {
                return Ok(Watched {
                    count: (expected - 1) as u64,
                    latencies_ns,
                });
            }
            let frame = tokio::time::timeout(Duration::from_secs(120), self.stream.next())
                .await
                .map_err(|_| format!("agent {agent}: nothing received for 120 s"))?
                .ok_or("the socket closed")?
                .map_err(|e| e.to_string())?;
            let WsMessage::Text(text) = frame else {
                continue;
            };
            let now = crate::monotonic_ns();
            // Nearly every frame is a message: only its agent, number and (stamped) raw line are read,
            // without building the rest, so that the load generator leaves the cores to the server.
            if let Some(m) = lite_message(&text)? {
                if m.agent_id != agent {
                    continue;
                }
                let seq = m.message.sequence_number;
                if seq != expected {
                    return Err(format!(
                        "agent {agent}: got sequence {seq}, expected {expected}"
                    ));
                }
                expected += 1;
                if stamped {
                    let raw = m
                        .message
                        .raw
                        .map(|r| serde_json::from_str::<String>(r.get()));
                    if let Some(Ok(raw)) = raw {
                        let emitted = serde_json::from_str::<Value>(&raw)
                            .ok()
                            .and_then(|v| v["emittedNs"].as_u64());
                        if let Some(e) = emitted {
                            latencies_ns.push(now.saturating_sub(e));
                        }
                    }
                }
                continue;
            }
            match serde_json::from_str::<ServerEvent>(&text)
                .map_err(|e| format!("bad frame: {e}"))?
            {
                ServerEvent::Subscribed(s)
                    if s.agent_id == agent && s.status.is_some_and(|st| st.is_terminal()) =>
                {
                    ended_at = Some(s.last_sequence);
                }
                ServerEvent::AgentComplete(c) if c.agent_id == agent => {
                    if c.result.last_sequence != expected - 1 {
                        return Err(format!(
                            "agent {agent}: completed at {} but {} messages arrived",
                            c.result.last_sequence,
                            expected - 1
                        ));
                    }
                    return Ok(Watched {
                        count: (expected - 1) as u64,
                        latencies_ns,
                    });
                }
                ServerEvent::Error(e) => {
                    return Err(format!("server error: {} {}", e.code, e.message))
                }
                _ => {}
            }
        }
    }
}

/// What [`Ws::watch`] reads of an `agent:message` frame.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiteMessage<'a> {
    agent_id: Uuid,
    #[serde(borrow)]
    message: LiteInner<'a>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiteInner<'a> {
    sequence_number: i64,
    #[serde(default, borrow)]
    raw: Option<&'a serde_json::value::RawValue>,
}

/// The message of an `agent:message` frame; `None` for any other frame.
fn lite_message(text: &str) -> BenchResult<Option<LiteMessage<'_>>> {
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(borrow)]
        event: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
    }
    let frame: Frame<'_> = serde_json::from_str(text).map_err(|e| format!("bad frame: {e}"))?;
    if frame.event != "agent:message" {
        return Ok(None);
    }
    serde_json::from_str(frame.data.get())
        .map(Some)
        .map_err(|e| format!("bad agent:message: {e}"))
}

impl Ws {
    /// Waits for `agent:complete` of `agent`, ignoring everything else.
    pub async fn wait_complete(&mut self, agent: Uuid) -> BenchResult<()> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(300), self.stream.next())
                .await
                .map_err(|_| format!("agent {agent}: no completion in 300 s"))?
                .ok_or("the socket closed")?
                .map_err(|e| e.to_string())?;
            if let WsMessage::Text(text) = frame {
                match serde_json::from_str::<ServerEvent>(&text) {
                    Ok(ServerEvent::AgentComplete(c)) if c.agent_id == agent => return Ok(()),
                    Ok(ServerEvent::Subscribed(s))
                        if s.agent_id == agent && s.status.is_some_and(|st| st.is_terminal()) =>
                    {
                        return Ok(())
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The release binary next to this one, or in target/release.
pub fn default_binary() -> PathBuf {
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    here.map(|d| d.join("agentstream"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("target/release/agentstream"))
}
