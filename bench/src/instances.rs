//! Several instances on one PostgreSQL database (issue 15), each agent owned by one of them and its
//! messages fanned out by the others, read back from the database:
//! - **throughput**: the throughput scenario's agents spread over three instances, each watched by a
//!   client of an instance other than its owner, against one instance in the same run;
//! - **latency**: the latency scenario's offered load (and, in a full run, a tenth of it), the agents on
//!   instance `a`, each watched by a client of `a` and one of `b`, both of which must get every message
//!   once and in order and its agent's `agent:complete`. The figure against the target is the time from
//!   a frame on `a`'s client to the same token's on `b`'s: `a` shows a message only once it is
//!   committed, so that is from the commit on `a` (as near as a client can see it) to the frame on `b`.
//!   From the token's stamp to either frame is shown beside it: the stamp-to-`a` part is `a`'s own
//!   commit (on this machine's disk, an fsync that now and then stalls every commit for hundreds of
//!   milliseconds, one instance or several), which is not what crossing instances costs;
//! - **kill**: an instance running three streaming agents is SIGKILLed; how long until a client of
//!   another instance hears all three `interrupted` (the product's lease, 10 s), and whether it got
//!   every message the killed instance stored.
//!
//! On SQLite, which has one instance, it says SKIPPED and measures nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agentstream_testkit::{Backend, Incoming, TestDir, TestServer, WsClient};
use agentstream_wire::{AgentStatus, ServerEvent};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::scenarios::{
    self, stored_and_delivered, throughput_shape, watched_load, Latencies, Load, COMPLETE_WAIT,
};
use crate::server::{
    self, launch, message_number, next_text, BenchResult, Watched, DEFAULT_LEASE_MS,
};
use crate::{per_second, Row};

const SCENARIO: &str = "instances";

/// The three measures; each part runs even if another failed, and a failure fails the scenario (with
/// the figures measured shown on stderr).
pub async fn instances(binary: PathBuf, smoke: bool) -> BenchResult<Vec<Row>> {
    if agentstream_testkit::backend() != Backend::Postgres {
        agentstream_testkit::say(
            "\n*** SKIPPED (instances): several instances need PostgreSQL \
             (AGENTSTREAM_TEST_DATABASE=postgres) ***\n",
        );
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    match throughput(&binary, smoke).await {
        Ok(r) => rows.extend(r),
        Err(e) => failures.push(format!("throughput: {e}")),
    }
    match latency(&binary, smoke, &mut failures).await {
        Ok(r) => rows.extend(r),
        Err(e) => failures.push(format!("latency: {e}")),
    }
    match kill(&binary, smoke, &mut failures).await {
        Ok(r) => rows.extend(r),
        Err(e) => failures.push(format!("kill: {e}")),
    }
    if failures.is_empty() {
        return Ok(rows);
    }
    eprintln!("{}", crate::render(&rows));
    Err(failures.join("; "))
}

/// Instance `id` on the database of `dir`, with a lease of `lease_ms`.
async fn instance(
    binary: &Path,
    dir: &TestDir,
    id: &str,
    lease_ms: u64,
) -> BenchResult<TestServer> {
    server::builder()
        .dir(dir)
        .env("AGENTSTREAM__INSTANCE__ID", id)
        .env("AGENTSTREAM__INSTANCE__LEASE_MS", lease_ms.to_string())
        .try_spawn(binary)
        .await
        .map_err(|e| format!("instance {id}: {e}"))
}

/// Instances `a`, `b`, `c` on one fresh database (`dirs[0]`'s).
async fn three(binary: &Path, dirs: &[TestDir; 3]) -> BenchResult<[TestServer; 3]> {
    Ok([
        instance(binary, &dirs[0], "a", DEFAULT_LEASE_MS).await?,
        instance(binary, &dirs[1], "b", DEFAULT_LEASE_MS).await?,
        instance(binary, &dirs[2], "c", DEFAULT_LEASE_MS).await?,
    ])
}

/// A fresh database's folder and two more folders on it.
fn three_dirs() -> [TestDir; 3] {
    let dir = TestDir::new();
    let (b, c) = (dir.same_database(), dir.same_database());
    [dir, b, c]
}

/// A throughput run and where the cores went.
struct Measured {
    total: u64,
    elapsed: Duration,
    /// CPU time per message of the instances, all together, in µs.
    servers_us: f64,
    /// CPU time per message of the PostgreSQL backends serving the database, in µs.
    postgres_us: f64,
}

/// The throughput scenario's run on `servers` (one, or several on one database, that of `dir`).
async fn measure(servers: &[TestServer], dir: &TestDir, smoke: bool) -> BenchResult<Measured> {
    let (agents, tokens) = throughput_shape(smoke);
    let servers_cpu = || servers.iter().map(TestServer::cpu_seconds).sum::<f64>();
    let (servers_before, postgres_before) = (servers_cpu(), server::postgres_cpu(dir));
    let (total, elapsed) = stored_and_delivered(servers, agents, tokens).await?;
    let servers_used = servers_cpu() - servers_before;
    let postgres_used = server::postgres_cpu_since(dir, &postgres_before);
    let per_message = |seconds: f64| seconds * 1e6 / total.max(1) as f64;
    Ok(Measured {
        total,
        elapsed,
        servers_us: per_message(servers_used),
        postgres_us: per_message(postgres_used),
    })
}

/// Stored+delivered with one instance, then with three (each agent watched from another instance), each
/// on a database of its own.
async fn throughput(binary: &Path, smoke: bool) -> BenchResult<Vec<Row>> {
    let (agents, tokens) = throughput_shape(smoke);
    let one = {
        let dir = TestDir::new();
        let server = instance(binary, &dir, "solo", DEFAULT_LEASE_MS).await?;
        measure(std::slice::from_ref(&server), &dir, smoke).await?
    };
    let dirs = three_dirs();
    let servers = three(binary, &dirs).await?;
    let spread = measure(&servers, &dirs[0], smoke).await?;
    let rate = |m: &Measured| per_second(m.total, m.elapsed);
    let value = |m: &Measured| format!("{:.0} msg/s ({:.2} s)", rate(m), m.elapsed.as_secs_f64());
    let cpu = |m: &Measured| format!("{:.1} µs / {:.1} µs", m.servers_us, m.postgres_us);
    Ok(vec![
        Row {
            scenario: SCENARIO,
            metric: format!(
                "1 instance: {agents} agents × {tokens} tokens, {} msgs stored+delivered",
                one.total
            ),
            value: value(&one),
            target: "(comparison)",
        },
        Row {
            scenario: SCENARIO,
            metric: format!(
                "3 instances: {agents} agents × {tokens} tokens spread over them, each watched from \
                 another instance, {} msgs stored+delivered",
                spread.total
            ),
            value: value(&spread),
            target: "(vs 1 instance)",
        },
        Row {
            scenario: SCENARIO,
            metric: "3 instances / 1 instance".into(),
            value: format!("{:.2}x", rate(&spread) / rate(&one)),
            target: "(diagnostic)",
        },
        Row {
            scenario: SCENARIO,
            metric: "CPU per message, 1 instance: server / its PostgreSQL backends".into(),
            value: cpu(&one),
            target: "(diagnostic)",
        },
        Row {
            scenario: SCENARIO,
            metric: "CPU per message, 3 instances: servers together / their PostgreSQL backends"
                .into(),
            value: cpu(&spread),
            target: "(diagnostic)",
        },
    ])
}

/// The latency scenario's offered load with the agents on instance `a`, each watched by a client of `a`
/// and one of `b`, and (in a full run) a tenth of it; an agent whose `agent:complete` does not reach
/// both clients is a failure.
async fn latency(binary: &Path, smoke: bool, failures: &mut Vec<String>) -> BenchResult<Vec<Row>> {
    let target = Load::latency(smoke);
    let mut loads = vec![(target, "p99 <= 25 ms")];
    if !smoke {
        loads.push((
            Load {
                rate: target.rate / 10,
                ..target
            },
            "(diagnostic)",
        ));
    }
    let mut rows = Vec::new();
    for (load, target) in loads {
        // A pair of its own for each load: what one load leaves behind (a listener still reading) does
        // not weigh on the next.
        let dir = TestDir::new();
        let other = dir.same_database();
        let a = instance(binary, &dir, "a", DEFAULT_LEASE_MS).await?;
        let b = instance(binary, &other, "b", DEFAULT_LEASE_MS).await?;
        let watches = watched_load(&a, &[&a, &b], load).await?;
        let on_a = Latencies::of(load, watches.iter().map(|w| &w[0]))
            .map_err(|e| format!("at {} msg/s, on a's clients: {e}", load.rate))?;
        let on_b = Latencies::of(load, watches.iter().map(|w| &w[1]))
            .map_err(|e| format!("at {} msg/s, on b's clients: {e}", load.rate))?;
        let crossing = Crossing::of(&watches)?;
        let offered = format!(
            "across instances at {} msg/s over {} agents on a, {} tokens",
            load.rate,
            load.agents,
            on_b.sorted_ns.len()
        );
        rows.push(Row {
            scenario: SCENARIO,
            metric: format!(
                "{offered}: commit on a → frame on b (a's client's receipt of a token → b's client's)"
            ),
            value: crossing.summary(),
            target,
        });
        rows.push(Row {
            scenario: SCENARIO,
            metric: format!("{offered}: stamp → frame on b (a's commit included)"),
            value: on_b.summary(),
            target: "(diagnostic)",
        });
        rows.push(Row {
            scenario: SCENARIO,
            metric: format!("{offered}: stamp → frame on a (a's commit)"),
            value: on_a.summary(),
            target: "(diagnostic)",
        });
        rows.push(Row {
            scenario: SCENARIO,
            metric: format!(
                "across instances at {} msg/s: `agent:complete` after the agent's last message, on a; \
                 on b",
                load.rate
            ),
            value: format!("{}; {}", completion(&on_a, load), completion(&on_b, load)),
            target: "(diagnostic)",
        });
        for (client, measured) in [("its own", &on_a), ("the other", &on_b)] {
            let incomplete = measured.incomplete();
            if incomplete > 0 {
                failures.push(format!(
                    "latency: at {} msg/s, {incomplete} of {} agents' agent:complete did not reach \
                     {client} instance's client within {} s of their last message",
                    load.rate,
                    load.agents,
                    COMPLETE_WAIT.as_secs()
                ));
            }
        }
    }
    Ok(rows)
}

/// When the clients of `measured` got their agent's `agent:complete`, in words.
fn completion(measured: &Latencies, load: Load) -> String {
    let incomplete = measured.incomplete();
    let slowest = measured.slowest_complete().as_secs_f64();
    if incomplete == 0 {
        format!("at most {slowest:.2} s")
    } else if incomplete as u64 == load.agents {
        format!(
            "none of the {} within {} s",
            load.agents,
            COMPLETE_WAIT.as_secs()
        )
    } else {
        format!(
            "{incomplete} of {} agents: not within {} s (the others: at most {slowest:.2} s)",
            load.agents,
            COMPLETE_WAIT.as_secs()
        )
    }
}

/// From a token's frame on the owner's client to the same token's frame on the other instance's client,
/// for every stamped token: both receipts are taken by this process with one clock, so neither the
/// stamp nor the owner's commit is in it.
struct Crossing {
    /// In nanoseconds, sorted; negative when `b`'s client got the token first (both are read by this
    /// process, which may take up one socket's frame later than the other's).
    sorted_ns: Vec<i64>,
}

impl Crossing {
    /// Pairs each agent's two watches (`a`'s client's, then `b`'s) token by token.
    fn of(watches: &[Vec<Watched>]) -> BenchResult<Crossing> {
        let mut sorted_ns = Vec::new();
        for (i, pair) in watches.iter().enumerate() {
            let [on_a, on_b] = pair.as_slice() else {
                return Err(format!("agent {i}: {} watches, expected 2", pair.len()));
            };
            if on_a.stamps.len() != on_b.stamps.len() {
                return Err(format!(
                    "agent {i}: {} stamped tokens on a's client, {} on b's",
                    on_a.stamps.len(),
                    on_b.stamps.len()
                ));
            }
            for (x, y) in on_a.stamps.iter().zip(&on_b.stamps) {
                if x.sequence != y.sequence {
                    return Err(format!(
                        "agent {i}: stamped message {} on a's client where b's had {}",
                        x.sequence, y.sequence
                    ));
                }
                sorted_ns.push(y.received_ns as i64 - x.received_ns as i64);
            }
        }
        sorted_ns.sort_unstable();
        Ok(Crossing { sorted_ns })
    }

    /// The difference at `p` (0 to 1), in milliseconds.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.sorted_ns.is_empty() {
            return f64::NAN;
        }
        let i = ((self.sorted_ns.len() as f64 - 1.0) * p).round() as usize;
        self.sorted_ns[i.min(self.sorted_ns.len() - 1)] as f64 / 1e6
    }

    /// p50, p99, p99.9 and the maximum, then the minimum and how many tokens reached `b`'s client first.
    fn summary(&self) -> String {
        let first_on_b = self.sorted_ns.iter().filter(|&&d| d < 0).count();
        format!(
            "{} (min {:.2} ms; on b first: {first_on_b} tokens)",
            scenarios::summary(|p| self.percentile_ms(p)),
            self.percentile_ms(0.0)
        )
    }
}

/// Kill runs: each on three fresh instances, with the product's lease (the smallest allowed in smoke
/// mode, to keep it short).
async fn kill(binary: &Path, smoke: bool, failures: &mut Vec<String>) -> BenchResult<Vec<Row>> {
    let (runs, lease_ms) = if smoke {
        (1, 1000)
    } else {
        (3, DEFAULT_LEASE_MS)
    };
    let mut rows = Vec::new();
    for run in 1..=runs {
        let k = kill_once(binary, lease_ms).await?;
        let mut value = format!(
            "{:.2} s (its lease ran out {:.2} s after the kill, the last `interrupted` came {:.2} s \
             after that)",
            k.interrupted.as_secs_f64(),
            k.lease_left.as_secs_f64(),
            k.interrupted.saturating_sub(k.lease_left).as_secs_f64()
        );
        if !k.undelivered.is_empty() {
            value.push_str(&format!(
                "; stored but never delivered to the client: {}",
                k.undelivered.join(", ")
            ));
            failures.push(format!(
                "kill run {run}: messages lost on the way to another instance's client ({})",
                k.undelivered.join(", ")
            ));
        }
        if k.late_messages > 0 {
            value.push_str(&format!(
                "; {} messages came after their agent's `interrupted`",
                k.late_messages
            ));
        }
        rows.push(Row {
            scenario: SCENARIO,
            metric: format!(
                "kill -9 of an instance (lease {lease_ms} ms) running 3 streaming agents → all 3 \
                 `interrupted` on a client of another instance, run {run}"
            ),
            value,
            target: "<= lease + 2 s",
        });
    }
    Ok(rows)
}

/// One kill run.
struct KillRun {
    /// From the SIGKILL to the last of the three `agent:status` `interrupted` on `b`'s client.
    interrupted: Duration,
    /// From the SIGKILL to the end of the killed instance's lease (its last renewal's), by the database.
    lease_left: Duration,
    /// Messages that reached the client after their agent's `interrupted`.
    late_messages: u64,
    /// For each agent some of whose stored messages never reached the client: which, in words.
    undelivered: Vec<String>,
}

/// What `b`'s client has seen of the killed instance's agents.
struct Seen {
    /// The last message of each agent (each checked: the next number).
    last: HashMap<Uuid, i64>,
    /// When each agent's `interrupted` came, after the kill.
    interrupted: HashMap<Uuid, Duration>,
    late_messages: u64,
}

impl Seen {
    /// Takes in one frame; `killed` is when the owner was killed (an `interrupted` before is an error).
    fn note(&mut self, text: &str, killed: Option<Instant>) -> BenchResult<()> {
        if let Some((agent, number)) = message_number(text)? {
            if let Some(last) = self.last.get_mut(&agent) {
                if number != *last + 1 {
                    return Err(format!(
                        "agent {agent}: message {number} after {last} on another instance's client"
                    ));
                }
                *last = number;
                if self.interrupted.contains_key(&agent) {
                    self.late_messages += 1;
                }
            }
            return Ok(());
        }
        match serde_json::from_str::<ServerEvent>(text).map_err(|e| format!("bad frame: {e}"))? {
            ServerEvent::AgentStatus(s)
                if s.status == AgentStatus::Interrupted && self.last.contains_key(&s.agent_id) =>
            {
                let Some(killed) = killed else {
                    return Err(format!("agent {} interrupted before the kill", s.agent_id));
                };
                self.interrupted
                    .entry(s.agent_id)
                    .or_insert_with(|| killed.elapsed());
            }
            ServerEvent::Error(e) => {
                return Err(format!("server error: {} {}", e.code, e.message));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Instances `a`, `b`, `c`; three agents streaming on `a`, watched by a client of `b`; `a` SIGKILLed.
async fn kill_once(binary: &Path, lease_ms: u64) -> BenchResult<KillRun> {
    let dirs = three_dirs();
    // Each instance renews its lease and looks for expired ones on ticks counted from its start: started
    // together, the others' looks would fall just after the killed one's lease ends, every time. Started
    // a random part of a look period apart, they sample the wait for the next look as a deployment does.
    let mut a = instance(binary, &dirs[0], "a", lease_ms).await?;
    tokio::time::sleep(random_below(look_ms(lease_ms))).await;
    let b = instance(binary, &dirs[1], "b", lease_ms).await?;
    tokio::time::sleep(random_below(look_ms(lease_ms))).await;
    let _c = instance(binary, &dirs[2], "c", lease_ms).await?;
    let mut agents = Vec::new();
    for _ in 0..3 {
        // 200 tokens/s each, for far longer than the run.
        agents.push(launch(&a, 1_000_000, 5, false, 0).await?.id);
    }
    let mut ws = b.try_ws().await?;
    for id in &agents {
        ws.try_subscribe(*id, Some(0)).await?;
    }
    let mut seen = Seen {
        last: agents.iter().map(|id| (*id, 0)).collect(),
        interrupted: HashMap::new(),
        late_messages: 0,
    };
    // They stream, and reach the other instance's client, before the kill.
    while seen.last.values().any(|&n| n < 20) {
        let text = next_text(&mut ws, Duration::from_secs(30), agents[0]).await?;
        seen.note(&text, None)?;
    }
    // Killed at a random moment of the lease's renewal period (the time left on the lease depends on
    // it), the client reading on meanwhile.
    let until = tokio::time::Instant::now() + random_below(lease_ms / 3);
    while let Some(incoming) = ws.next_incoming(until).await? {
        match incoming {
            Incoming::Text(text) => seen.note(&text, None)?,
            Incoming::Close(_) | Incoming::End => return Err("the socket closed".into()),
        }
    }
    let killed = Instant::now();
    a.kill().await;
    let lease_left = lease_left(&dirs[0], "a").await? + killed.elapsed();
    let wait = Duration::from_millis(lease_ms) + Duration::from_secs(30);
    while seen.interrupted.len() < agents.len() {
        let text = next_text(&mut ws, wait, agents[0]).await?;
        seen.note(&text, Some(killed))?;
    }
    let interrupted = seen.interrupted.values().copied().max().unwrap_or_default();
    // Every message `a` stored reaches the client, once, in order: what is still on the way, then the
    // histories.
    drain(&mut ws, &mut seen, killed).await?;
    let mut undelivered = Vec::new();
    for id in &agents {
        let last = seen.last[id];
        let more = b.try_messages(*id, Some(last)).await?;
        if !more.is_empty() {
            undelivered.push(format!(
                "agent {id}: b's client got messages 1..={last}, {} more are stored",
                more.len()
            ));
        }
    }
    Ok(KillRun {
        interrupted,
        lease_left,
        undelivered,
        late_messages: seen.late_messages,
    })
}

/// Reads `ws` until it is quiet for half a second.
async fn drain(ws: &mut WsClient, seen: &mut Seen, killed: Instant) -> BenchResult<()> {
    loop {
        match ws
            .next_incoming(tokio::time::Instant::now() + Duration::from_millis(500))
            .await?
        {
            Some(Incoming::Text(text)) => seen.note(&text, Some(killed))?,
            Some(Incoming::Close(_) | Incoming::End) => return Err("the socket closed".into()),
            None => return Ok(()),
        }
    }
}

/// The time between two looks of an instance for expired leases, with a lease of `lease_ms`.
fn look_ms(lease_ms: u64) -> u64 {
    (lease_ms / 4).min(1000)
}

/// A random duration below `ms` milliseconds.
fn random_below(ms: u64) -> Duration {
    let random = Uuid::new_v4().as_u128() % u128::from(ms.max(1));
    Duration::from_millis(random as u64)
}

/// How long the lease of instance `id` runs on, by the database's clock.
async fn lease_left(dir: &TestDir, id: &str) -> BenchResult<Duration> {
    let failed = |e: sqlx::Error| format!("the lease of {id}: {e}");
    let mut conn = PgConnection::connect(&dir.database_url())
        .await
        .map_err(failed)?;
    let (left,): (i64,) = sqlx::query_as(
        "SELECT lease_until - (extract(epoch from clock_timestamp()) * 1000)::bigint \
         FROM instances WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .map_err(failed)?;
    let _ = conn.close().await;
    Ok(Duration::from_millis(left.max(0) as u64))
}
