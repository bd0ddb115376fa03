//! `GET /metrics` scraped over HTTP as Prometheus would, parsed with a Prometheus text-format parser,
//! and checked to move as agents run: messages stored and delivered (WebSocket and SSE), write batches,
//! open connections up then down, agents by type and status, runs ended by reason (a slow consumer's
//! cut is counted in `event_stream.rs`, which provokes one); its token rules; and
//! `log.format = "json"` with every line about an agent carrying its id.

use std::collections::HashSet;
use std::time::Duration;

use agentstream_testkit::{TestServer, TIMEOUT};
use agentstream_wire::{AgentStatus, AgentType};
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use uuid::Uuid;

use crate::SERVER;

/// A scrape, parsed.
pub(crate) struct Metrics(Scrape);

impl Metrics {
    /// The samples of `name` whose labels include `labels`.
    pub(crate) fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> Vec<&'a Sample> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect()
    }

    /// The sum of the counter or gauge `name` over the series matching `labels` (0 when none does).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels)
            .iter()
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                other => panic!("{name} is not a number: {other:?}"),
            })
            .sum()
    }

    /// The number of observations of the histogram `name` (its `+Inf` bucket).
    fn observations(&self, name: &str) -> f64 {
        let samples = self.samples(name, &[]);
        let [sample] = samples[..] else {
            panic!("{name}: one histogram expected, got {samples:?}");
        };
        match &sample.value {
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count)
                .expect("a +Inf bucket"),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// Asserts the family `name` is there, of the type `kind`.
    fn assert_family(&self, name: &str, kind: &str) {
        let samples = self.samples(name, &[]);
        assert!(!samples.is_empty(), "no family {name}");
        for s in samples {
            let actual = match s.value {
                Value::Counter(_) => "counter",
                Value::Gauge(_) => "gauge",
                Value::Histogram(_) => "histogram",
                Value::Summary(_) => "summary",
                Value::Untyped(_) => "untyped",
            };
            assert_eq!(actual, kind, "{name}");
        }
        assert!(self.0.docs.contains_key(name), "{name} has no HELP");
    }
}

/// `GET /metrics` with an optional bearer token; the raw response.
async fn get(app: &TestServer, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("GET /metrics")
}

/// Scrapes and parses: 200, the text format's content type.
async fn scrape_with(app: &TestServer, token: Option<&str>) -> Metrics {
    let response = get(app, token).await;
    assert_eq!(response.status(), 200);
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = response.text().await.expect("a body");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Metrics(Scrape::parse(lines).expect("the Prometheus text format"))
}

pub(crate) async fn scrape(app: &TestServer) -> Metrics {
    scrape_with(app, None).await
}

/// The connections cut as slow consumers so far, `(WebSocket, SSE)`.
pub(crate) async fn slow_consumer_cuts(app: &TestServer) -> (f64, f64) {
    let metrics = scrape(app).await;
    let cuts = |transport| {
        metrics.value(
            "agentstream_slow_consumer_closes_total",
            &[("transport", transport)],
        )
    };
    (cuts("ws"), cuts("sse"))
}

/// Scrapes until `holds` does (a gauge that follows a socket's close, which the server sees a moment
/// after the client).
async fn scrape_until(app: &TestServer, what: &str, holds: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let m = scrape(app).await;
        if holds(&m) {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_family_moves_as_agents_are_watched_over_websocket_and_sse_and_end() {
    // The Claude CLI here fails at once: a failed run.
    let app = TestServer::builder()
        .fake_cli("echo 'cannot start' >&2; exit 3")
        .spawn(SERVER)
        .await;
    let before = scrape(&app).await;
    for (name, kind) in [
        ("agentstream_messages_stored_total", "counter"),
        ("agentstream_messages_delivered_total", "counter"),
        ("agentstream_write_batch_rows", "histogram"),
        ("agentstream_write_commit_seconds", "histogram"),
        ("agentstream_connections", "gauge"),
        ("agentstream_slow_consumer_closes_total", "counter"),
        ("agentstream_agents", "gauge"),
        ("agentstream_runner_exits_total", "counter"),
        ("agentstream_database_errors_total", "counter"),
    ] {
        before.assert_family(name, kind);
    }
    assert_eq!(before.value("agentstream_messages_stored_total", &[]), 0.0);
    assert_eq!(
        before.value("agentstream_messages_delivered_total", &[]),
        0.0
    );
    assert_eq!(before.value("agentstream_agents", &[]), 0.0);

    // An agent watched from a WebSocket and an event stream at once, both from its first message.
    let agent = app.launch(150, 2).await;
    let mut ws = app.ws().await;
    ws.subscribe(agent.id, Some(0)).await;
    let mut sse = app
        .sse(&format!("/api/agents/{}/events", agent.id), &[])
        .await;
    let during = scrape(&app).await;
    assert_eq!(
        during.value("agentstream_connections", &[("transport", "ws")]),
        1.0
    );
    assert_eq!(
        during.value("agentstream_connections", &[("transport", "sse")]),
        1.0
    );
    let (over_ws, _) = ws.collect_until_complete(agent.id).await;
    let over_sse = sse.events_until("agent:complete").await;
    let over_sse = over_sse
        .iter()
        .filter(|e| e.event == "agent:message")
        .count();
    let stored = app.messages(agent.id, None).await.len();
    assert_eq!((over_ws.len(), over_sse), (stored, stored));
    drop(ws);
    drop(sse);

    // A run that fails (the CLI exits), and one terminated mid-stream.
    let failed = app.run_claude_to_end("hello").await;
    assert_eq!(failed.status, AgentStatus::Failed);
    let failed_code = failed.error.expect("why it failed").code;
    let long = app.launch(10_000, 20).await;
    app.wait_messages(long.id, 3).await;
    assert_eq!(app.delete_agent(long.id, false).await.status(), 204);
    app.wait_finished(long.id).await;
    let mut all_stored = 0;
    for id in [agent.id, failed.id, long.id] {
        all_stored += app.messages(id, None).await.len();
    }

    let after = scrape_until(&app, "both connections closed", |m| {
        m.value("agentstream_connections", &[]) == 0.0
    })
    .await;
    assert_eq!(
        after.value("agentstream_messages_stored_total", &[]),
        all_stored as f64,
        "every stored message counted once"
    );
    for transport in ["ws", "sse"] {
        assert_eq!(
            after.value(
                "agentstream_messages_delivered_total",
                &[("transport", transport)]
            ),
            stored as f64,
            "{transport}: each message written to its client counted once"
        );
    }
    assert!(after.observations("agentstream_write_batch_rows") > 0.0);
    assert!(
        after.value("agentstream_write_batch_rows_sum", &[]) >= all_stored as f64,
        "every message is a row of a write"
    );
    assert!(after.observations("agentstream_write_commit_seconds") > 0.0);
    let synthetic = AgentType::Synthetic.as_str();
    let claude = AgentType::ClaudeCode.as_str();
    for (agent_type, status, count) in [
        (synthetic, "completed", 1.0),
        (synthetic, "terminated", 1.0),
        (claude, "failed", 1.0),
        (synthetic, "running", 0.0),
    ] {
        assert_eq!(
            after.value(
                "agentstream_agents",
                &[("type", agent_type), ("status", status)]
            ),
            count,
            "agents {agent_type} {status}"
        );
    }
    for (agent_type, reason) in [
        (synthetic, "completed"),
        (synthetic, "terminated"),
        (claude, failed_code.as_str()),
    ] {
        assert_eq!(
            after.value(
                "agentstream_runner_exits_total",
                &[("type", agent_type), ("reason", reason)]
            ),
            1.0,
            "runs of {agent_type} ended by {reason}"
        );
    }
    assert_eq!(after.value("agentstream_runner_exits_total", &[]), 3.0);
    assert_eq!(after.value("agentstream_database_errors_total", &[]), 0.0);
    assert_eq!(
        after.value("agentstream_slow_consumer_closes_total", &[]),
        0.0
    );
}

/// Tokens of these tests.
const API_TOKEN: &str = "api-token-for-the-metrics-tests-0123";
const SCRAPE_TOKEN: &str = "scrape-token-for-the-metrics-tests-456";

#[tokio::test]
async fn metrics_need_the_api_token_or_their_own_token_when_one_is_set() {
    let app = TestServer::builder()
        .env("AGENTSTREAM__AUTH__TOKEN", API_TOKEN)
        .spawn(SERVER)
        .await;
    assert_eq!(get(&app, None).await.status(), 401);
    assert_eq!(
        get(&app, Some("wrong-token-of-some-length-0"))
            .await
            .status(),
        401
    );
    scrape_with(&app, Some(API_TOKEN))
        .await
        .assert_family("agentstream_agents", "gauge");
    // `?token=` is for the streams only.
    let query = app
        .client
        .get(app.url(&format!("/metrics?token={API_TOKEN}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(query.status(), 401);

    let app = TestServer::builder()
        .env("AGENTSTREAM__AUTH__TOKEN", API_TOKEN)
        .env("AGENTSTREAM__METRICS__TOKEN", SCRAPE_TOKEN)
        .spawn(SERVER)
        .await;
    let refused = get(&app, None).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    assert_eq!(get(&app, Some(API_TOKEN)).await.status(), 401);
    scrape_with(&app, Some(SCRAPE_TOKEN))
        .await
        .assert_family("agentstream_connections", "gauge");
    // The scrape token drives nothing.
    let api = app
        .client
        .get(app.url("/api/agents"))
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(api.status(), 401);

    // Only the metrics token on a loopback server: the API stays open, /metrics does not.
    let app = TestServer::builder()
        .env("AGENTSTREAM__METRICS__TOKEN", SCRAPE_TOKEN)
        .spawn(SERVER)
        .await;
    assert_eq!(get(&app, None).await.status(), 401);
    scrape_with(&app, Some(SCRAPE_TOKEN)).await;
    assert!(app.is_healthy().await);
    let _: serde_json::Value = app.get_json("/api/agents").await;

    // Anything but GET.
    let post = app
        .client
        .post(app.url("/metrics"))
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .expect("POST");
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn a_weak_metrics_token_stops_the_server_at_start_up() {
    let refused = TestServer::builder()
        .env("AGENTSTREAM__METRICS__TOKEN", "short")
        .try_spawn(SERVER)
        .await
        .err()
        .expect("refused");
    assert!(refused.log().contains("metrics.token"), "{}", refused.log());
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_every_line_about_an_agent_carries_its_id() {
    let app = TestServer::builder()
        .env("AGENTSTREAM__LOG__FORMAT", "json")
        .fake_cli("echo 'cannot start' >&2; exit 3")
        .spawn(SERVER)
        .await;
    // A run that completes, one that fails, one terminated, and one that takes a follow-up.
    let done = app.launch(20, 0).await;
    let failed = app.run_claude_to_end("hello").await;
    let long = app.launch(10_000, 20).await;
    app.wait_messages(long.id, 3).await;
    assert_eq!(app.delete_agent(long.id, false).await.status(), 204);
    app.wait_finished(done.id).await;
    let followed = app
        .client
        .post(app.url(&format!("/api/agents/{}/messages", done.id)))
        .json(&json!({"content": "and then?"}))
        .send()
        .await
        .expect("POST a follow-up");
    assert_eq!(followed.status(), 202);
    app.wait_finished(long.id).await;
    let agents: HashSet<Uuid> = [done.id, failed.id, long.id].into();

    // The log is written as things happen: wait for the last run's end to be there.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let log = loop {
        let log = app.log();
        let ended = log
            .lines()
            .filter(|l| l.contains("agent ended") && l.contains(&done.id.to_string()))
            .count();
        if ended >= 2 {
            break log;
        }
        assert!(tokio::time::Instant::now() < deadline, "log:\n{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut about = HashSet::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(object[key].is_string(), "no {key}: {line}");
        }
        for agent in &agents {
            if line.contains(&agent.to_string()) {
                assert_eq!(
                    object["agent_id"],
                    agent.to_string(),
                    "a line about {agent} without its id: {line}"
                );
                about.insert(*agent);
            }
        }
    }
    assert_eq!(about, agents, "each agent's launch and end are logged");
}
