//! The server under test, started by the testkit as the black-box tests start it (the real binary on
//! 127.0.0.1 port 0 with a fresh SQLite file), with the benchmark's settings; and what the scenarios
//! read off a WebSocket, checking every message as it comes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentstream_testkit::{Incoming, TestServer, WsClient};
use agentstream_wire::{Agent, ServerEvent, SyntheticConfig};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

/// Why a run failed (a benchmark that loses or misorders a message reports this, not a number).
pub type BenchResult<T> = Result<T, String>;

/// Starts `binary` with a fresh database: no limit on running agents, no web app, warnings on stderr.
pub async fn start(binary: &Path) -> BenchResult<TestServer> {
    TestServer::builder()
        .log_to_stderr("warn")
        .env("AGENTSTREAM__AGENTS__MAX_RUNNING", "100000")
        .without_web_app()
        .try_spawn(binary)
        .await
        .map_err(|e| e.to_string())
}

/// Launches a synthetic agent whose answer starts `start_delay_ms` after its `system` line; `stamp`ed
/// tokens carry their emitting moment.
pub async fn launch(
    server: &TestServer,
    tokens: u64,
    interval_ms: u64,
    stamp: bool,
    start_delay_ms: u64,
) -> BenchResult<Agent> {
    let configuration = SyntheticConfig {
        tokens: Some(tokens),
        interval_ms: Some(interval_ms),
        stamp: Some(stamp),
        start_delay_ms: Some(start_delay_ms),
        ..SyntheticConfig::default()
    };
    server.try_launch_synthetic("bench", &configuration).await
}

/// The next text frame within `wait`, while watching `agent` (named in the error).
async fn next_text(ws: &mut WsClient, wait: Duration, agent: Uuid) -> BenchResult<String> {
    match ws.next_incoming(Instant::now() + wait).await? {
        Some(Incoming::Text(text)) => Ok(text),
        Some(Incoming::Close(_) | Incoming::End) => Err("the socket closed".into()),
        None => Err(format!(
            "agent {agent}: nothing received for {} s",
            wait.as_secs()
        )),
    }
}

/// What a watch saw of one agent.
pub struct Watched {
    /// Messages received (each checked: exactly the next sequence number).
    pub count: u64,
    /// Emit-to-receipt latencies of stamped tokens, in nanoseconds.
    pub latencies_ns: Vec<u64>,
}

/// Reads `agent`'s messages off `ws` until its `agent:complete`, checking that they are 1, 2, 3… with no
/// hole or repeat and that the completion names the last one.
pub async fn watch(ws: &mut WsClient, agent: Uuid, stamped: bool) -> BenchResult<Watched> {
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
        let text = next_text(ws, Duration::from_secs(120), agent).await?;
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
        match serde_json::from_str::<ServerEvent>(&text).map_err(|e| format!("bad frame: {e}"))? {
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
            ServerEvent::Error(e) => return Err(format!("server error: {} {}", e.code, e.message)),
            _ => {}
        }
    }
}

/// What [`watch`] reads of an `agent:message` frame.
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

/// Reads `ws` until `agent:complete` of `agent` (or a `subscribed` saying it had ended), ignoring
/// everything else.
pub async fn wait_complete(ws: &mut WsClient, agent: Uuid) -> BenchResult<()> {
    loop {
        let text = next_text(ws, Duration::from_secs(300), agent).await?;
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

/// The release binary next to this one, or in target/release.
pub fn default_binary() -> PathBuf {
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    here.map(|d| d.join("agentstream"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("target/release/agentstream"))
}
