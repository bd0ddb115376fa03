//! Prometheus metrics: one [`Metrics`] owns the registry and every family, and is handed (a cheap
//! clone) to the parts that record — the persistence actor, the room registry, the WebSocket sessions
//! and event streams, the agent actors — through their constructors, so that two servers in one
//! process (unit tests) never share counters. `GET /metrics` ([`endpoint`]) renders it in the
//! Prometheus text format, with the agents counted by type and status read from the database at
//! scrape time ([`agents`]).
//!
//! The hot paths record without a lock: a family's labelled child is resolved once (at start-up, or
//! when a session opens) and kept, so counting is one atomic add; the persistence actor records once
//! per write batch, never per message. Families whose labels are only known later (runner exits,
//! database errors, webhooks) are looked up by label, which is a read lock: they are rare.

pub mod agents;
pub mod api_errors;
pub mod endpoint;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    exponential_buckets, Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every family's name starts with it.
const NAMESPACE: &str = "agentstream";

/// The `operation`s of `agentstream_database_errors_total`: the persistence actor's writes (one per
/// kind of request), the REST handlers' reads, the history read by a WebSocket subscription or an
/// event stream, and the count of agents of a scrape. Each starts at 0, so that a rate is defined
/// before the first error.
pub const DATABASE_OPERATIONS: [&str; 12] = [
    "insert_agent",
    "append_message",
    "set_status",
    "set_session",
    "delete_agent",
    "interrupt_unfinished",
    "take_over",
    "flush",
    "api_read",
    "read_history",
    "count_agents",
    "webhook_lag",
];

/// The reasons of `agentstream_runner_exits_total` that start at 0 for every agent type (a failed
/// run's reason is its error code, shown from its first occurrence).
const COMMON_EXIT_REASONS: [agentstream_wire::AgentStatus; 3] = [
    agentstream_wire::AgentStatus::Completed,
    agentstream_wire::AgentStatus::Interrupted,
    agentstream_wire::AgentStatus::Terminated,
];

/// How a client is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `/ws`.
    WebSocket,
    /// The Server-Sent Events streams under `/api`.
    Sse,
}

impl Transport {
    /// The `transport` label's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// A counter or gauge per transport, resolved once.
#[derive(Clone)]
struct PerTransport<T> {
    ws: T,
    sse: T,
}

impl<T> PerTransport<T> {
    fn get(&self, transport: Transport) -> &T {
        match transport {
            Transport::WebSocket => &self.ws,
            Transport::Sse => &self.sse,
        }
    }
}

/// The registry and its families. Cloning is one reference count.
#[derive(Clone)]
pub struct Metrics(Arc<Families>);

struct Families {
    registry: Registry,
    messages_stored: IntCounter,
    messages_delivered: PerTransport<IntCounter>,
    write_batch_rows: Histogram,
    write_seconds: Histogram,
    connections: PerTransport<prometheus::IntGauge>,
    slow_consumer_closes: PerTransport<IntCounter>,
    runner_exits: IntCounterVec,
    database_errors: IntCounterVec,
    webhook_lag: GaugeVec,
}

impl Metrics {
    /// A registry with every family, all at zero. Fails only if a family's constant options were
    /// refused (a name registered twice): a bug, reported at start-up.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NAMESPACE);
        let counter = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<_> {
            let c = IntCounterVec::new(opts(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| -> prometheus::Result<_> {
            let h = Histogram::with_opts(
                HistogramOpts::new(name, help)
                    .namespace(NAMESPACE)
                    .buckets(buckets),
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let per_transport = |vec: &IntCounterVec| PerTransport {
            ws: vec.with_label_values(&[Transport::WebSocket.as_str()]),
            sse: vec.with_label_values(&[Transport::Sse.as_str()]),
        };

        let messages_stored = IntCounter::with_opts(opts(
            "messages_stored_total",
            "Agent messages committed to the database by this instance.",
        ))?;
        registry.register(Box::new(messages_stored.clone()))?;
        let delivered = counter(
            "messages_delivered_total",
            "agent:message events written to clients (replayed history and live), by transport.",
            &["transport"],
        )?;
        let write_batch_rows = histogram(
            "write_batch_rows",
            "Requests (message rows, status updates, ...) written per database write of the \
             persistence actor.",
            exponential_buckets(1.0, 2.0, 15)?,
        )?;
        let write_seconds = histogram(
            "write_commit_seconds",
            "Time of one database write of the persistence actor, from its first statement to its \
             commit.",
            vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        )?;
        let connections = IntGaugeVec::new(
            opts(
                "connections",
                "Open client connections: WebSockets and event streams.",
            ),
            &["transport"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        let slow = counter(
            "slow_consumer_closes_total",
            "Connections cut because the client read slower than its agents wrote \
             (websocket.max_queued_bytes), by transport.",
            &["transport"],
        )?;
        let runner_exits = counter(
            "runner_exits_total",
            "Runs of agents that ended, by agent type and reason: completed, interrupted, \
             terminated, abandoned, or the error code of a failed run.",
            &["type", "reason"],
        )?;
        let database_errors = counter(
            "database_errors_total",
            "Database operations that failed, by operation.",
            &["operation"],
        )?;
        let webhook_lag = GaugeVec::new(
            opts(
                "webhook_lag",
                "Stored messages and lifecycle events a webhook consumer asked for that its receiver has \
                 not acknowledged (its lag in the API).",
            ),
            &["webhook"],
        )?;
        registry.register(Box::new(webhook_lag.clone()))?;
        for agent_type in agentstream_wire::AgentType::ALL {
            for reason in COMMON_EXIT_REASONS {
                runner_exits.with_label_values(&[agent_type.as_str(), reason.as_str()]);
            }
        }
        for operation in DATABASE_OPERATIONS {
            database_errors.with_label_values(&[operation]);
        }

        Ok(Metrics(Arc::new(Families {
            messages_delivered: per_transport(&delivered),
            slow_consumer_closes: per_transport(&slow),
            connections: PerTransport {
                ws: connections.with_label_values(&[Transport::WebSocket.as_str()]),
                sse: connections.with_label_values(&[Transport::Sse.as_str()]),
            },
            registry,
            messages_stored,
            write_batch_rows,
            write_seconds,
            runner_exits,
            database_errors,
            webhook_lag,
        })))
    }

    /// One write of the persistence actor: `requests` written in `took`, `messages` of them agent
    /// messages stored. Called once per write.
    pub fn write_done(&self, requests: usize, messages: u64, took: Duration) {
        let f = &self.0;
        f.write_batch_rows.observe(requests as f64);
        f.write_seconds.observe(took.as_secs_f64());
        if messages > 0 {
            f.messages_stored.inc_by(messages);
        }
    }

    /// The counter of messages delivered over `transport`, for a session to keep (counting is then
    /// one atomic add).
    pub fn delivered(&self, transport: Transport) -> IntCounter {
        self.0.messages_delivered.get(transport).clone()
    }

    /// A client connection opened over `transport`; it counts as open until `closed`.
    pub fn connection_opened(&self, transport: Transport) {
        self.0.connections.get(transport).inc();
    }

    /// A connection counted by [`Self::connection_opened`] closed.
    pub fn connection_closed(&self, transport: Transport) {
        self.0.connections.get(transport).dec();
    }

    /// A connection over `transport` was cut for reading too slowly.
    pub fn slow_consumer_closed(&self, transport: Transport) {
        self.0.slow_consumer_closes.get(transport).inc();
    }

    /// A run of an agent of `agent_type` ended for `reason` (see [`exit_reason`]).
    pub fn runner_exited(&self, agent_type: &str, reason: &str) {
        self.0
            .runner_exits
            .with_label_values(&[agent_type, reason])
            .inc();
    }

    /// A database operation failed; `operation` is one of [`DATABASE_OPERATIONS`].
    pub fn database_error(&self, operation: &'static str) {
        self.0.database_errors.with_label_values(&[operation]).inc();
    }

    /// The webhook consumers' lags, as a scrape reads them from the database (any instance reports
    /// every consumer, whichever delivers it): a deleted consumer's series goes away.
    pub fn set_webhook_lags(&self, lags: &[(String, i64)]) {
        self.0.webhook_lag.reset();
        for (webhook, lag) in lags {
            self.0
                .webhook_lag
                .with_label_values(&[webhook])
                .set(*lag as f64);
        }
    }

    /// Every family in the Prometheus text format (version 0.0.4), with `extra` families (collected
    /// at scrape time) after them.
    pub fn render(&self, extra: Vec<prometheus::proto::MetricFamily>) -> String {
        let mut families = self.0.registry.gather();
        families.extend(extra);
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The `reason` of a run that ended with `status` (and `error`, for a failed one): the status, or for
/// a failed run the code of its error when it is one of the server's (a bounded set), else `failed`.
pub fn exit_reason(
    status: agentstream_wire::AgentStatus,
    error: Option<&agentstream_wire::ErrorInfo>,
) -> &'static str {
    use agentstream_wire::{AgentStatus, ErrorCode};
    match status {
        AgentStatus::Failed => error
            .and_then(|e| e.code.parse::<ErrorCode>().ok())
            .map_or("failed", ErrorCode::as_str),
        other => other.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::{AgentStatus, ErrorCode, ErrorInfo};

    #[test]
    fn every_family_is_rendered_with_its_type_from_the_start() {
        let text = Metrics::new().unwrap().render(Vec::new());
        for (name, kind) in [
            ("agentstream_messages_stored_total", "counter"),
            ("agentstream_messages_delivered_total", "counter"),
            ("agentstream_write_batch_rows", "histogram"),
            ("agentstream_write_commit_seconds", "histogram"),
            ("agentstream_connections", "gauge"),
            ("agentstream_slow_consumer_closes_total", "counter"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} missing in\n{text}"
            );
        }
        assert!(text.contains("agentstream_messages_delivered_total{transport=\"sse\"} 0\n"));
    }

    #[test]
    fn a_write_counts_its_messages_once_and_observes_one_batch() {
        let m = Metrics::new().unwrap();
        m.write_done(300, 298, Duration::from_millis(3));
        m.write_done(1, 0, Duration::from_millis(1));
        let text = m.render(Vec::new());
        assert!(
            text.contains("agentstream_messages_stored_total 298\n"),
            "{text}"
        );
        assert!(text.contains("agentstream_write_batch_rows_count 2\n"));
        assert!(text.contains("agentstream_write_batch_rows_sum 301\n"));
        assert!(text.contains("agentstream_write_commit_seconds_count 2\n"));
    }

    #[test]
    fn connections_go_up_and_down_per_transport_and_a_forgotten_webhook_disappears() {
        let m = Metrics::new().unwrap();
        m.connection_opened(Transport::WebSocket);
        m.connection_opened(Transport::WebSocket);
        m.connection_opened(Transport::Sse);
        m.connection_closed(Transport::WebSocket);
        m.set_webhook_lags(&[("w1".into(), 15)]);
        let text = m.render(Vec::new());
        assert!(text.contains("agentstream_connections{transport=\"ws\"} 1\n"));
        assert!(text.contains("agentstream_connections{transport=\"sse\"} 1\n"));
        assert!(text.contains("agentstream_webhook_lag{webhook=\"w1\"} 15\n"));
        m.set_webhook_lags(&[]);
        assert!(!m.render(Vec::new()).contains("webhook=\"w1\""));
    }

    #[test]
    fn a_failed_run_is_counted_under_its_error_code_and_an_unknown_code_as_failed() {
        let timeout = ErrorInfo::new(ErrorCode::CliTimeout, "silent");
        assert_eq!(
            exit_reason(AgentStatus::Failed, Some(&timeout)),
            "cli_timeout"
        );
        let foreign = ErrorInfo {
            code: "something {odd}".into(),
            message: String::new(),
        };
        assert_eq!(exit_reason(AgentStatus::Failed, Some(&foreign)), "failed");
        assert_eq!(exit_reason(AgentStatus::Failed, None), "failed");
        assert_eq!(exit_reason(AgentStatus::Completed, None), "completed");
        assert_eq!(exit_reason(AgentStatus::Terminated, None), "terminated");
    }
}
