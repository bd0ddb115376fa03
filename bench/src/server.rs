//! The server under test, started by the testkit as the black-box tests start it (the real binary on
//! 127.0.0.1 port 0 with a fresh database), with the benchmark's settings; what the scenarios read off a
//! WebSocket, checking every message as it comes; and the CPU time of the PostgreSQL backends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentstream_testkit::{process, Backend, Builder, Incoming, TestDir, TestServer, WsClient};
use agentstream_wire::{Agent, ServerEvent, SyntheticConfig};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

/// Why a run failed (a benchmark that loses or misorders a message reports this, not a number).
pub type BenchResult<T> = Result<T, String>;

/// The product's default `instance.lease_ms`.
pub const DEFAULT_LEASE_MS: u64 = 10_000;

/// Starts `binary` with a fresh database: no limit on running agents, no web app, warnings on stderr.
pub async fn start(binary: &Path) -> BenchResult<TestServer> {
    builder().try_spawn(binary).await.map_err(|e| e.to_string())
}

/// [`start`] on the database of `dir`.
pub async fn start_in(binary: &Path, dir: &TestDir) -> BenchResult<TestServer> {
    builder()
        .dir(dir)
        .try_spawn(binary)
        .await
        .map_err(|e| e.to_string())
}

/// CPU seconds used so far by each PostgreSQL backend serving the database of `dir` (known by its
/// process title, `postgres: … <user> <database> <client> …`); none on SQLite.
pub fn postgres_cpu(dir: &TestDir) -> HashMap<i32, f64> {
    if agentstream_testkit::backend() != Backend::Postgres {
        return HashMap::new();
    }
    let url = dir.database_url();
    let database = url.rsplit('/').next().unwrap_or_default();
    process::pids()
        .into_iter()
        .filter(|&pid| {
            let title = process::cmdline(pid);
            title.starts_with("postgres:") && title.split_whitespace().any(|w| w == database)
        })
        .map(|pid| (pid, process::cpu_seconds(pid)))
        .collect()
}

/// The CPU seconds used since `before` (a [`postgres_cpu`]) by the backends there now, the ones started
/// since included (a connection pool keeps its backends for the run; one that ended is not counted).
pub fn postgres_cpu_since(dir: &TestDir, before: &HashMap<i32, f64>) -> f64 {
    postgres_cpu(dir)
        .into_iter()
        .map(|(pid, now)| now - before.get(&pid).copied().unwrap_or(0.0))
        .sum()
}

/// The benchmark's settings: no limit on running agents, no web app, warnings on stderr, and on
/// PostgreSQL the product's lease (the test harness shortens it, which renews it three times as often
/// as a real server does).
pub fn builder() -> Builder {
    let builder = TestServer::builder()
        .log_to_stderr("warn")
        .env("AGENTSTREAM__AGENTS__MAX_RUNNING", "100000")
        .without_web_app();
    if agentstream_testkit::backend() == Backend::Postgres {
        builder.env(
            "AGENTSTREAM__INSTANCE__LEASE_MS",
            DEFAULT_LEASE_MS.to_string(),
        )
    } else {
        builder
    }
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
pub async fn next_text(ws: &mut WsClient, wait: Duration, agent: Uuid) -> BenchResult<String> {
    match ws.next_incoming(Instant::now() + wait).await? {
        Some(Incoming::Text(text)) => Ok(text),
        Some(Incoming::Close(_) | Incoming::End) => Err("the socket closed".into()),
        None => Err(format!(
            "agent {agent}: nothing received for {} s",
            wait.as_secs()
        )),
    }
}

/// A stamped token as one client received it. Both times are CLOCK_MONOTONIC, in ns: the server stamps
/// with the clock this process reads, so they compare across clients and with the stamp.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    pub sequence: i64,
    /// When the owner's runner emitted it.
    pub emitted_ns: u64,
    /// When this client received its frame.
    pub received_ns: u64,
}

/// What a watch saw of one agent.
pub struct Watched {
    /// Messages received (each checked: exactly the next sequence number).
    pub count: u64,
    /// The stamped tokens received, in order: kept whole (not only their latency) so that two clients'
    /// receipts of the same token can be paired.
    pub stamps: Vec<Stamp>,
    /// From the last message's receipt to `agent:complete`'s (zero when the agent had ended before the
    /// subscription); `None` when it did not come in time (see [`watch_of`]).
    pub complete_after: Option<Duration>,
}

impl Watched {
    /// Emit-to-receipt latencies of the stamped tokens, in nanoseconds.
    pub fn latencies_ns(&self) -> impl Iterator<Item = u64> + '_ {
        self.stamps
            .iter()
            .map(|s| s.received_ns.saturating_sub(s.emitted_ns))
    }
}

/// How long a watch waits for a frame before it fails.
const STALL: Duration = Duration::from_secs(120);

/// Reads `agent`'s messages off `ws` until its `agent:complete`, checking that they are 1, 2, 3… with no
/// hole or repeat and that the completion names the last one.
pub async fn watch(ws: &mut WsClient, agent: Uuid, stamped: bool) -> BenchResult<Watched> {
    read_agent(ws, agent, stamped, None).await
}

/// [`watch`]. With `counted` = (`messages`, `wait`), for an agent that stores `messages` messages: once
/// they are all in, its `agent:complete` is waited for `wait` at most, and a watch it did not reach by
/// then ends with `complete_after: None` instead of failing.
async fn read_agent(
    ws: &mut WsClient,
    agent: Uuid,
    stamped: bool,
    counted: Option<(i64, Duration)>,
) -> BenchResult<Watched> {
    let mut expected = 1i64;
    let mut stamps = Vec::new();
    // Set when the agent had ended before the subscription: the replay ends at this number.
    let mut ended_at: Option<i64> = None;
    // The receipt of the last message so far (CLOCK_MONOTONIC, ns).
    let mut last_received = 0u64;
    // Once every counted message is in: until when the completion is waited for.
    let mut complete_by: Option<Instant> = None;
    // The agent's other events so far, for the error of a watch that stalls.
    let mut events: Vec<String> = Vec::new();
    let watched = |expected: i64, stamps: Vec<Stamp>, complete_after| Watched {
        count: (expected - 1) as u64,
        stamps,
        complete_after,
    };
    loop {
        if ended_at.is_some_and(|last| expected > last) {
            return Ok(watched(expected, stamps, Some(Duration::ZERO)));
        }
        let deadline = complete_by.unwrap_or_else(|| Instant::now() + STALL);
        let text = match ws.next_incoming(deadline).await? {
            Some(Incoming::Text(text)) => text,
            Some(Incoming::Close(_) | Incoming::End) => {
                return Err(format!(
                    "agent {agent}: the socket closed after message {}",
                    expected - 1
                ))
            }
            None if complete_by.is_some() => return Ok(watched(expected, stamps, None)),
            None => {
                return Err(format!(
                    "agent {agent}: nothing received for {} s (after message {}; its events: {})",
                    STALL.as_secs(),
                    expected - 1,
                    events.join(", ")
                ))
            }
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
            last_received = now;
            if let Some((_, wait)) = counted.filter(|(messages, _)| seq == *messages) {
                complete_by = Some(Instant::now() + wait);
            }
            if stamped {
                let raw = m
                    .message
                    .raw
                    .map(|r| serde_json::from_str::<String>(r.get()));
                if let Some(Ok(raw)) = raw {
                    let emitted = serde_json::from_str::<Value>(&raw)
                        .ok()
                        .and_then(|v| v["emittedNs"].as_u64());
                    if let Some(emitted_ns) = emitted {
                        stamps.push(Stamp {
                            sequence: seq,
                            emitted_ns,
                            received_ns: now,
                        });
                    }
                }
            }
            continue;
        }
        let event =
            serde_json::from_str::<ServerEvent>(&text).map_err(|e| format!("bad frame: {e}"))?;
        match &event {
            ServerEvent::Subscribed(s) if s.agent_id == agent => events.push(format!(
                "subscribed at {} ({:?})",
                s.last_sequence, s.status
            )),
            ServerEvent::AgentStatus(s) if s.agent_id == agent => {
                events.push(format!("{:?} after message {}", s.status, expected - 1))
            }
            _ => {}
        }
        match event {
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
                let after = Duration::from_nanos(now.saturating_sub(last_received));
                return Ok(watched(expected, stamps, Some(after)));
            }
            ServerEvent::Error(e) => return Err(format!("server error: {} {}", e.code, e.message)),
            _ => {}
        }
    }
}

/// [`read_agent`], its failure completed with what `owner` has stored of the agent and its status there
/// (a message lost on the way, or never stored).
pub async fn watch_of(
    ws: &mut WsClient,
    owner: &TestServer,
    agent: Uuid,
    stamped: bool,
    counted: Option<(i64, Duration)>,
) -> BenchResult<Watched> {
    match read_agent(ws, agent, stamped, counted).await {
        Ok(watched) => Ok(watched),
        Err(e) => {
            let stored = match owner.try_messages(agent, Some(0)).await {
                Ok(messages) => format!("{} messages", messages.len()),
                Err(read) => format!("unknown ({read})"),
            };
            let status = match owner
                .client
                .get(owner.url(&format!("/api/agents/{agent}")))
                .send()
                .await
            {
                Ok(response) => response
                    .json::<Agent>()
                    .await
                    .map_or_else(|e| e.to_string(), |a| format!("{:?}", a.status)),
                Err(read) => read.to_string(),
            };
            Err(format!(
                "{e}; its owner has stored {stored}, its status there: {status}"
            ))
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

/// The agent and number of an `agent:message` frame; `None` for any other frame.
pub fn message_number(text: &str) -> BenchResult<Option<(Uuid, i64)>> {
    Ok(lite_message(text)?.map(|m| (m.agent_id, m.message.sequence_number)))
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
