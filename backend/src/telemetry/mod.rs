//! Logging with `tracing`: one subscriber writing to stderr, filtered by `RUST_LOG` or the `log.level`
//! setting, as readable text or, with `log.format = "json"`, one JSON object per line ([`json`]).
//!
//! Every line about an agent carries its id as the field `agent_id`: events name it, and what runs for
//! an agent without knowing its id (its runner's tasks) runs inside an [`agent_span`].

pub mod json;

use tracing_subscriber::EnvFilter;

use crate::configuration::LogFormat;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonLines)
            .try_init(),
    };
}

/// The span of what runs for one agent: its lines carry `agent_id` even where the code that logs does
/// not know it (a runner's tasks). At the error level so that no `log.level` filters it out: a span
/// that is filtered out gives its fields to no line, and a warning of a runner would lose its agent.
pub fn agent_span(agent_id: uuid::Uuid) -> tracing::Span {
    tracing::error_span!("agent", agent_id = %agent_id)
}
