//! The scenarios run against the server over real sockets.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentstream_testkit::{Backend, TestDir, TestServer};
use futures_util::future::try_join_all;

use crate::server::{self, launch, wait_complete, watch, watch_of, BenchResult, Watched};
use crate::{per_second, Row};

/// Throughput: A agents × T tokens at full speed, one subscriber each; messages/s from the first launch
/// to the last `agent:complete`.
pub async fn throughput(binary: PathBuf, smoke: bool) -> BenchResult<Vec<Row>> {
    let (agents, tokens) = throughput_shape(smoke);
    let dir = TestDir::new();
    let server = server::start_in(&binary, &dir).await?;
    let (server_cpu, own_cpu) = (server.cpu_seconds(), crate::own_cpu_seconds());
    let postgres_cpu = server::postgres_cpu(&dir);
    let (total, elapsed) =
        stored_and_delivered(std::slice::from_ref(&server), agents, tokens).await?;
    let rate = per_second(total, elapsed);
    // Where the cores went: CPU time per message of the server and of this load generator (and on
    // PostgreSQL, of the database's backends, which share the cores).
    let per_message = |seconds: f64| seconds * 1e6 / total.max(1) as f64;
    let server_us = per_message(server.cpu_seconds() - server_cpu);
    let client_us = per_message(crate::own_cpu_seconds() - own_cpu);
    let mut rows = vec![
        Row {
            scenario: "throughput",
            metric: format!("{agents} agents × {tokens} tokens: {total} msgs stored+delivered"),
            value: format!("{rate:.0} msg/s ({:.2} s)", elapsed.as_secs_f64()),
            target: ">= 50,000 msg/s",
        },
        Row {
            scenario: "throughput",
            metric: "CPU per message: server / load generator".into(),
            value: format!("{server_us:.1} µs / {client_us:.1} µs"),
            target: "(diagnostic)",
        },
    ];
    if agentstream_testkit::backend() == Backend::Postgres {
        let postgres_us = per_message(server::postgres_cpu_since(&dir, &postgres_cpu));
        rows.push(Row {
            scenario: "throughput",
            metric: "CPU per message: the database's PostgreSQL backends".into(),
            value: format!("{postgres_us:.1} µs"),
            target: "(diagnostic)",
        });
    }
    Ok(rows)
}

/// The throughput scenario's agents and tokens per agent.
pub fn throughput_shape(smoke: bool) -> (u64, u64) {
    if smoke {
        (10, 200)
    } else {
        (100, 2000)
    }
}

/// `agents` × `tokens` at full speed: agent i is launched on `servers[i % n]` and watched from its first
/// message by a client of the next server, `servers[(i + 1) % n]` (with one server, its own), which
/// checks every message. Returns the messages delivered and the time from the first launch to the last
/// `agent:complete`.
pub async fn stored_and_delivered(
    servers: &[TestServer],
    agents: u64,
    tokens: u64,
) -> BenchResult<(u64, Duration)> {
    let n = servers.len();
    let begun = Instant::now();
    let counts = try_join_all((0..agents as usize).map(|i| {
        let (owner, watcher) = (&servers[i % n], &servers[(i + 1) % n]);
        async move {
            let mut ws = watcher.try_ws().await?;
            let agent = launch(owner, tokens, 0, false, 0).await?;
            ws.try_subscribe(agent.id, Some(0)).await?;
            let seen = watch_of(&mut ws, owner, agent.id, false, None).await?;
            if seen.count != tokens + 3 {
                return Err(format!(
                    "agent {}: {} messages, expected {}",
                    agent.id,
                    seen.count,
                    tokens + 3
                ));
            }
            Ok::<u64, String>(seen.count)
        }
    }))
    .await?;
    Ok((counts.iter().sum(), begun.elapsed()))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

/// p50, p99, p99.9 and the maximum of a distribution, given its percentile in milliseconds at `p` (0 to
/// 1): every latency row reads the same.
pub fn summary(at: impl Fn(f64) -> f64) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    )
}

/// Latency: a fixed offered load spread over many agents; runner-emit → WebSocket-receipt latency.
pub async fn latency(binary: PathBuf, smoke: bool) -> BenchResult<Vec<Row>> {
    let server = server::start(&binary).await?;
    let measured = offered_load(&server, &server, Load::latency(smoke)).await?;
    if measured.incomplete() > 0 {
        return Err(format!(
            "{} agents' agent:complete did not come within {} s of their last message ({})",
            measured.incomplete(),
            COMPLETE_WAIT.as_secs(),
            measured.summary()
        ));
    }
    Ok(vec![Row {
        scenario: "latency",
        metric: measured.metric(),
        value: measured.summary(),
        target: "p99 <= 10 ms",
    }])
}

/// How long after an agent's last message its `agent:complete` is waited for.
pub const COMPLETE_WAIT: Duration = Duration::from_secs(30);

/// An offered load: `rate` msg/s spread evenly over `agents` stamped agents for `seconds`, starting
/// `delay_ms` after their launch.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub rate: u64,
    pub agents: u64,
    pub seconds: u64,
    pub delay_ms: u64,
}

impl Load {
    /// The latency scenario's.
    pub fn latency(smoke: bool) -> Load {
        // The load starts `delay_ms` after the launches (`startDelayMs`), once every subscriber is in:
        // what is measured is the steady offered load. (Without it the first tokens of the first agents
        // were stamped while later agents were still being launched and subscribed, and arrived by
        // replay: 20–100 ms, a few hundred of the 100,000, which is the launch storm, not the load.)
        if smoke {
            Load {
                rate: 1000,
                agents: 10,
                seconds: 2,
                delay_ms: 500,
            }
        } else {
            Load {
                rate: 10_000,
                agents: 100,
                seconds: 10,
                delay_ms: 1500,
            }
        }
    }

    /// The stamped tokens each agent emits.
    pub fn tokens_per_agent(&self) -> u64 {
        (self.rate / self.agents) * self.seconds
    }
}

/// Emit-to-receipt latencies of a fixed offered load.
pub struct Latencies {
    pub load: Load,
    /// Every stamped token's latency, in nanoseconds, sorted.
    pub sorted_ns: Vec<u64>,
    /// For each agent, from its last message to its `agent:complete` on the client (`None`: not within
    /// [`COMPLETE_WAIT`]).
    pub complete_after: Vec<Option<Duration>>,
}

impl Latencies {
    /// The latencies of `watches` (one client's watch of each agent of `load`); fails unless every
    /// stamped token of the load arrived.
    pub fn of<'a>(
        load: Load,
        watches: impl IntoIterator<Item = &'a Watched>,
    ) -> BenchResult<Latencies> {
        let mut complete_after = Vec::new();
        let mut all = Vec::new();
        for w in watches {
            complete_after.push(w.complete_after);
            all.extend(w.latencies_ns());
        }
        let tokens = load.tokens_per_agent();
        if all.len() as u64 != load.agents * tokens {
            return Err(format!(
                "{} stamped tokens arrived, expected {}",
                all.len(),
                load.agents * tokens
            ));
        }
        all.sort_unstable();
        Ok(Latencies {
            load,
            sorted_ns: all,
            complete_after,
        })
    }

    /// What was offered.
    pub fn metric(&self) -> String {
        format!(
            "{} msg/s offered over {} agents, {} tokens",
            self.load.rate,
            self.load.agents,
            self.sorted_ns.len()
        )
    }

    /// The latency at `p` (0 to 1), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.sorted_ns, p)
    }

    /// p50, p99, p99.9 and the maximum.
    pub fn summary(&self) -> String {
        summary(|p| self.percentile_ms(p))
    }

    /// How many agents' `agent:complete` did not come within [`COMPLETE_WAIT`].
    pub fn incomplete(&self) -> usize {
        self.complete_after.iter().filter(|c| c.is_none()).count()
    }

    /// The slowest `agent:complete` after its agent's last message, of those that came.
    pub fn slowest_complete(&self) -> Duration {
        self.complete_after
            .iter()
            .flatten()
            .max()
            .copied()
            .unwrap_or_default()
    }
}

/// Offers `load`: stamped agents launched on `owner`, each watched by a client of `watcher` (the same
/// server, or another instance on its database).
pub async fn offered_load(
    owner: &TestServer,
    watcher: &TestServer,
    load: Load,
) -> BenchResult<Latencies> {
    let watches = watched_load(owner, &[watcher], load).await?;
    Latencies::of(load, watches.iter().flatten())
}

/// Offers `load`: stamped agents launched on `owner`, each watched by one client of each of `watchers`
/// (all subscribed before the load starts). Returns, for each agent, what each client saw, in the order
/// of `watchers`: every client has checked that it got every message once and in order.
pub async fn watched_load(
    owner: &TestServer,
    watchers: &[&TestServer],
    load: Load,
) -> BenchResult<Vec<Vec<Watched>>> {
    let interval_ms = 1000 / (load.rate / load.agents).max(1);
    let tokens = load.tokens_per_agent();
    try_join_all((0..load.agents).map(|_| async move {
        let mut sockets = Vec::with_capacity(watchers.len());
        for watcher in watchers {
            sockets.push(watcher.try_ws().await?);
        }
        let agent = launch(owner, tokens, interval_ms, true, load.delay_ms).await?;
        for ws in &mut sockets {
            ws.try_subscribe(agent.id, Some(0)).await?;
        }
        let counted = Some((tokens as i64 + 3, COMPLETE_WAIT));
        // The clients read side by side, each at its own pace: one falling behind does not hold the
        // other's receipts back.
        try_join_all(
            sockets
                .iter_mut()
                .map(|ws| watch_of(ws, owner, agent.id, true, counted)),
        )
        .await
    }))
    .await
}

/// Fan-out: one agent, many subscribers; deliveries/s.
pub async fn fanout(binary: PathBuf, smoke: bool) -> BenchResult<Vec<Row>> {
    let (subscribers, tokens, delay) = if smoke {
        (50, 200, 1000)
    } else {
        (1000, 2000, 3000)
    };
    let server = server::start(&binary).await?;
    let mut sockets = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        sockets.push(server.try_ws().await?);
    }
    // The agent's answer starts `delay` ms after its launch (`startDelayMs`, a model's time to first
    // token), so every subscriber is in before the tokens come at full speed: what is measured is the
    // broadcast, timed from the answer's start. (Launched at full speed with no delay, the run was over
    // before 1,000 subscribers were in, and this measured 1,000 replays of the history instead.)
    let agent = launch(&server, tokens, 0, false, delay).await?;
    let answer = Instant::now() + Duration::from_millis(delay);
    let counts = try_join_all(sockets.into_iter().map(|mut ws| async move {
        ws.try_subscribe(agent.id, Some(0)).await?;
        watch(&mut ws, agent.id, false).await.map(|w| w.count)
    }))
    .await?;
    let elapsed = Instant::now().saturating_duration_since(answer);
    let total: u64 = counts.iter().sum();
    if counts.iter().any(|&c| c != tokens + 3) {
        return Err("a subscriber missed messages".into());
    }
    Ok(vec![Row {
        scenario: "fanout",
        metric: format!(
            "1 agent × {tokens} tokens → {subscribers} subscribers (joined during a {delay} ms start delay)"
        ),
        value: format!(
            "{:.0} deliveries/s ({:.2} s)",
            per_second(total, elapsed),
            elapsed.as_secs_f64()
        ),
        target: ">= 200,000 deliveries/s",
    }])
}

/// Idle connections: server memory per open WebSocket.
pub async fn connections(binary: PathBuf, smoke: bool) -> BenchResult<Vec<Row>> {
    let n = if smoke { 200 } else { 10_000 };
    let server = server::start(&binary).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss();
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        sockets.push(server.try_ws().await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss();
    if !server.is_healthy().await {
        return Err("the server is unhealthy with the connections open".into());
    }
    drop(sockets);
    let per = after.saturating_sub(before) as f64 / n as f64;
    Ok(vec![Row {
        scenario: "connections",
        metric: format!(
            "{n} idle WebSockets (RSS {:.1} → {:.1} MiB)",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        ),
        value: format!("{:.1} KB each", per / 1024.0),
        target: "<= 20 KB each",
    }])
}

/// History: a tail read at many stored rows, and the full history of a big agent.
pub async fn history(binary: PathBuf, smoke: bool) -> BenchResult<Vec<Row>> {
    let (agents, tokens) = if smoke { (4, 2_500) } else { (10, 99_997) };
    let server = server::start(&binary).await?;
    let begun = Instant::now();
    let launched = try_join_all((0..agents).map(|_| launch(&server, tokens, 0, false, 0))).await?;
    for agent in &launched {
        let mut ws = server.try_ws().await?;
        ws.try_subscribe(agent.id, Some(i64::MAX / 2)).await?;
        wait_complete(&mut ws, agent.id).await?;
    }
    let rows = agents * (tokens + 3);
    let filled = begun.elapsed();
    let target = launched[agents as usize / 2].id;
    let last = (tokens + 3) as i64;
    let mut samples = Vec::new();
    let mut parse = Vec::new();
    let mut answer_bytes = 0;
    for i in 0..100 {
        let since = last - 10 - (i % 5);
        let t = Instant::now();
        let body = server.try_messages_body(target, Some(since)).await?;
        samples.push(t.elapsed());
        // Checked after the clock stopped: the client's own parse of the answer is timed apart.
        let t = Instant::now();
        let tail: Vec<agentstream_wire::StoredMessage> =
            serde_json::from_slice(&body).map_err(|e| format!("tail since {since}: {e}"))?;
        parse.push(t.elapsed());
        answer_bytes = body.len();
        if tail.len() as i64 != last - since
            || tail.first().map(|m| m.sequence_number) != Some(since + 1)
        {
            return Err(format!(
                "tail since {since}: wrong answer ({} messages)",
                tail.len()
            ));
        }
    }
    samples.sort();
    parse.sort();
    let rss_before = server.rss();
    let t = Instant::now();
    let full = server.try_messages(target, Some(0)).await?;
    let full_time = t.elapsed();
    let rss_after = server.rss();
    if full.len() as i64 != last
        || full
            .windows(2)
            .any(|w| w[1].sequence_number != w[0].sequence_number + 1)
    {
        return Err("the full history is not 1..k".into());
    }
    Ok(vec![
        Row {
            scenario: "history",
            metric: format!(
                "tail read (?since=last-10) at {rows} stored rows (filled in {:.1} s)",
                filled.as_secs_f64()
            ),
            value: format!(
                "median {:.2} ms, max {:.2} ms to the last byte of {:.2} MB (the client's parse: +{:.2} ms)",
                samples[50].as_secs_f64() * 1e3,
                samples[99].as_secs_f64() * 1e3,
                answer_bytes as f64 / 1e6,
                parse[50].as_secs_f64() * 1e3
            ),
            target: "<= 5 ms",
        },
        Row {
            scenario: "history",
            metric: format!("full history of a {last}-message agent"),
            value: format!(
                "{:.0} ms; server RSS {:.1} → {:.1} MiB",
                full_time.as_secs_f64() * 1e3,
                rss_before as f64 / 1048576.0,
                rss_after as f64 / 1048576.0
            ),
            target: "not held in memory twice",
        },
    ])
}

/// The throughput row's ratios to the two references measured in the same run.
pub fn ratios(rows: &[Row]) -> Vec<Row> {
    let number = |scenario: &str| {
        rows.iter().find(|r| r.scenario == scenario).and_then(|r| {
            r.value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
    };
    let (Some(ours), Some(seed), Some(raw)) = (
        number("throughput"),
        number("seed-style"),
        number("raw bulk insert"),
    ) else {
        return Vec::new();
    };
    vec![Row {
        scenario: "ratios",
        metric: "throughput / seed-style; throughput / raw bulk insert".into(),
        value: format!("{:.1}x; {:.2}x", ours / seed, ours / raw),
        target: ">= 40x; >= 0.5x",
    }]
}
