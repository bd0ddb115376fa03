//! Runners: what produces an agent's output lines (a synthetic generator, a CLI process, a proxy's SSE).
//!
//! The seam every runner fits: [`RunnerSpec::start`] gives a stream of [`RunnerEvent`]s (the agent's
//! stdout-like lines, then how it ended) and, when there is something to stop beyond dropping that
//! stream (a child process tree, a remote proxy run), a [`RunnerControl`]. A [`reader::LineReader`] actor
//! pulls the stream and feeds the agent's actor what is ready, a batch at a time, within the agent's
//! window of messages not yet stored, so a fast runner is slowed to the speed of the database instead of
//! filling memory.
//!
//! Runners: `synthetic` here; the Claude runners (an SSE reader of the Python proxy's stream, and a child
//! process whose stdout is read line by line) plug into the same seam.

pub mod claude;
pub mod process;
pub mod proxy;
pub mod reader;
pub mod synthetic;

use std::pin::Pin;

use actix::Message;
use agentstream_wire::{AgentType, ErrorCode, ErrorInfo, SyntheticConfig};
use futures_util::future::LocalBoxFuture;
use futures_util::Stream;
use serde_json::Value;

use crate::configuration::Settings;
use crate::error::ApiError;

/// One thing a runner reports.
#[derive(Clone, Debug, PartialEq)]
pub enum RunnerEvent {
    /// One line of output (stream-json), without its newline.
    Line(String),
    /// One line as raw bytes, not yet known to be UTF-8 (a child process's stdout).
    Bytes(Vec<u8>),
    /// A line longer than the limit: its length, and its first bytes.
    Oversized { len: usize, head: String },
    /// The runner ended; nothing follows.
    Exited(RunnerExit),
}

/// How a runner ended, as far as its transport knows. Whether the agent succeeded is decided by its
/// `result` line; this says whether the transport itself failed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RunnerExit {
    /// `None`: the source ended normally.
    pub error: Option<ErrorInfo>,
}

/// The events of a running agent, in order.
pub type EventStream = Pin<Box<dyn Stream<Item = RunnerEvent>>>;

/// Stops what dropping the event stream does not stop (a process tree, a remote run).
pub trait RunnerControl: Send {
    /// The agent said its last word (its `result`): close its input so that it exits.
    fn end_input(&mut self) {}

    /// Stops the run; resolves once it is stopped.
    fn stop(&mut self) -> LocalBoxFuture<'static, ()>;
}

/// A started runner.
pub struct Started {
    pub events: EventStream,
    pub control: Option<Box<dyn RunnerControl>>,
}

/// Feeds events to an agent's actor, in order (at least one; `Exited` only last); `Err` tells the reader
/// to stop (the agent is finishing).
#[derive(Message)]
#[rtype(result = "Result<(), FeedRefused>")]
pub struct Feed(pub Vec<RunnerEvent>);

/// The agent accepts no more events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedRefused;

/// What to run, validated at launch.
#[derive(Clone, Debug, PartialEq)]
pub enum RunnerSpec {
    Synthetic(synthetic::SyntheticSpec),
    /// A child process (the Claude CLI spawned here).
    Process(process::ProcessSpec),
    /// An SSE stream from a proxy that runs the CLI (`agentstream proxy`, or any server of the same contract).
    Proxy(proxy::ProxySpec),
}

impl RunnerSpec {
    /// Validates a launch request's type-specific `configuration` and picks the runner.
    pub fn for_agent(
        agent_type: AgentType,
        prompt: &str,
        configuration: Option<&Value>,
        settings: &Settings,
    ) -> Result<RunnerSpec, ApiError> {
        match agent_type {
            AgentType::Synthetic => {
                let config: SyntheticConfig = match configuration {
                    None | Some(Value::Null) => SyntheticConfig::default(),
                    Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                        ApiError::bad_request(
                            ErrorCode::InvalidConfiguration,
                            format!("synthetic configuration: {e} (expected {{\"tokens\": N, \"intervalMs\": M}})"),
                        )
                    })?,
                };
                synthetic::SyntheticSpec::new(config, prompt, &settings.synthetic)
                    .map(RunnerSpec::Synthetic)
            }
            AgentType::ClaudeCode => claude::spec(prompt, configuration, settings),
            other => Err(ApiError::new(
                actix_web::http::StatusCode::NOT_IMPLEMENTED,
                ErrorCode::AgentTypeUnavailable,
                format!("agents of type {other} cannot run on this server yet"),
            )),
        }
    }

    /// The configuration to keep on the agent's row, when the runner fills in defaults.
    pub fn configuration(&self) -> Option<Value> {
        match self {
            RunnerSpec::Synthetic(s) => Some(s.configuration()),
            RunnerSpec::Process(_) | RunnerSpec::Proxy(_) => None,
        }
    }

    /// Starts the runner.
    pub async fn start(self) -> Result<Started, ErrorInfo> {
        match self {
            RunnerSpec::Synthetic(spec) => Ok(Started {
                events: Box::pin(synthetic::stream(spec)),
                control: None,
            }),
            RunnerSpec::Process(spec) => process::spawn(spec),
            RunnerSpec::Proxy(spec) => proxy::start(spec).await,
        }
    }
}
