//! Runners: what produces an agent's output lines (a synthetic generator, a CLI process, a proxy's SSE).
//!
//! The seam every runner fits: [`RunnerSpec::start`] gives a stream of [`RunnerEvent`]s (the agent's
//! stdout-like lines, then how it ended) and, when there is something to stop beyond dropping that
//! stream (a child process tree, a remote proxy run), a [`RunnerControl`]. A [`reader::LineReader`] actor
//! pulls the stream and feeds the agent's actor what is ready, a batch at a time, within the agent's
//! window of messages not yet stored, so a fast runner is slowed to the speed of the database instead of
//! filling memory.
//!
//! Runners: the synthetic generator, a child process whose stdout is read line by line (the Claude and
//! Gemini CLIs; the Codex CLI's app-server, with a JSON-RPC client around it), and an SSE reader of a
//! Claude proxy's stream. Which runner an agent gets, and with
//! what, is its type's business ([`kind`]).

pub mod claude;
pub mod codex;
pub mod gemini;
pub mod kind;
pub mod process;
pub mod proxy;
pub mod reader;
pub mod stream_json;
pub mod synthetic;

use std::pin::Pin;

use actix::Message;
use agentstream_wire::{AgentType, ErrorCode, ErrorInfo};
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

/// The runner takes no (more) input: it has no input channel, or it was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputClosed;

/// The sending end of an agent's input: lines, taken in the order sent, until it is closed (then the
/// agent sees the end of its input once it has read what was sent).
pub struct InputLines(Option<tokio::sync::mpsc::UnboundedSender<String>>);

impl InputLines {
    /// An open input, and the end the agent reads.
    pub fn open() -> (InputLines, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (InputLines(Some(tx)), rx)
    }

    /// Sends one line after every line sent before it.
    pub fn send(&self, line: String) -> Result<(), InputClosed> {
        match &self.0 {
            Some(input) => input.send(line).map_err(|_| InputClosed),
            None => Err(InputClosed),
        }
    }

    /// Nothing more will be sent.
    pub fn close(&mut self) {
        self.0 = None;
    }
}

/// Talks to a running agent, and stops what dropping the event stream does not stop (a process tree,
/// a remote run). What is said to it (a follow-up, an interrupt request, a permission answer) is
/// written in the agent's own input format: by default Claude's stream-json, one line each
/// ([`stream_json`]), which the synthetic agent reads too; a runner that speaks another protocol
/// says it its own way.
pub trait RunnerControl: Send {
    /// Writes one line to the agent's input, after every line written before it.
    fn send_line(&mut self, _line: String) -> Result<(), InputClosed> {
        Err(InputClosed)
    }

    /// Gives the agent a follow-up: it becomes the next turn of this run.
    fn send_input(&mut self, content: &str) -> Result<(), InputClosed> {
        self.send_line(stream_json::user_line(content))
    }

    /// Asks the agent to end its current turn (`request_id` names the request); `Err` when it cannot
    /// be asked, and [`Self::interrupt`] is used instead.
    fn request_interrupt(&mut self, request_id: &str) -> Result<(), InputClosed> {
        self.send_line(stream_json::interrupt_line(request_id))
    }

    /// Answers the agent's permission request `request_id` (for `tool_name`).
    fn answer_permission(
        &mut self,
        request_id: &str,
        tool_name: &str,
        answer: &agentstream_wire::PermissionAnswer,
    ) -> Result<(), InputClosed> {
        self.send_line(stream_json::permission_answer_line(
            request_id, tool_name, answer,
        ))
    }

    /// Nothing more will be written: close the agent's input so that it exits once it has answered.
    fn end_input(&mut self) {}

    /// Interrupts the current turn of an agent that cannot be asked over its input: SIGINT for a
    /// process (an agent CLI then ends the turn cleanly), a stop for anything else.
    fn interrupt(&mut self) -> LocalBoxFuture<'static, ()> {
        self.stop()
    }

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

/// How a later run of an agent continues its session: its type, its launch configuration, and the
/// session its runs report.
#[derive(Clone, Debug, PartialEq)]
pub struct Continuation {
    pub agent_type: AgentType,
    pub configuration: Value,
    /// The agent CLI's session, once reported (`system/init`).
    pub session_id: Option<String>,
    /// Tools a client allowed for the rest of the session (`"always": true`): a later run (a new
    /// process) is started with them allowed, as the process that was told is no longer there.
    pub always_allowed: Vec<String>,
}

/// Why an agent cannot be continued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CannotContinue {
    /// Its type has no way to continue a session.
    Unsupported(AgentType),
    /// It never reported a session.
    NoSession,
}

impl Continuation {
    /// How to continue a stored agent.
    pub fn of(agent: &agentstream_wire::Agent) -> Result<Self, CannotContinue> {
        Self::supported(agent.agent_type)?;
        if agent.session_id.is_none() {
            return Err(CannotContinue::NoSession);
        }
        Ok(Continuation {
            agent_type: agent.agent_type,
            configuration: agent.configuration.clone(),
            session_id: agent.session_id.clone(),
            always_allowed: Vec::new(),
        })
    }

    /// Whether agents of this type can be continued.
    pub fn supported(agent_type: AgentType) -> Result<(), CannotContinue> {
        if kind::kind(agent_type).continues() {
            Ok(())
        } else {
            Err(CannotContinue::Unsupported(agent_type))
        }
    }

    /// The launch configuration, when there was one.
    pub fn configuration(&self) -> Option<&Value> {
        Some(&self.configuration).filter(|c| !c.is_null())
    }

    /// The next run: `prompt` in the same session, with the launch's configuration.
    pub fn spec(&self, prompt: &str, settings: &Settings) -> Result<RunnerSpec, ErrorInfo> {
        let Some(session) = &self.session_id else {
            return Err(ErrorInfo::new(
                ErrorCode::NoSession,
                "the agent never reported a session (it ended before it started one), so it cannot be continued",
            ));
        };
        let kind = kind::kind(self.agent_type);
        if !kind.continues() {
            return Err(ErrorInfo::new(
                ErrorCode::ConversationUnsupported,
                format!("agents of type {} cannot be continued", self.agent_type),
            ));
        }
        kind.resume(prompt, self, session, settings)
            .map_err(|e| e.info())
    }
}

/// What to run, validated at launch.
#[derive(Clone, Debug, PartialEq)]
pub enum RunnerSpec {
    Synthetic(synthetic::SyntheticSpec),
    /// A child process (the Claude CLI spawned here).
    Process(process::ProcessSpec),
    /// An SSE stream from a proxy that runs the CLI (`agentstream proxy`, or any server of the same contract).
    Proxy(proxy::ProxySpec),
    /// The Codex CLI's app-server, spoken to in JSON-RPC.
    Codex(codex::CodexSpec),
}

impl RunnerSpec {
    /// Validates a launch request's type-specific `configuration` and picks the runner.
    pub fn for_agent(
        agent_type: AgentType,
        prompt: &str,
        configuration: Option<&Value>,
        settings: &Settings,
    ) -> Result<RunnerSpec, ApiError> {
        kind::kind(agent_type).launch(prompt, configuration, settings)
    }

    /// The configuration to keep on the agent's row, when the runner fills in defaults.
    pub fn configuration(&self) -> Option<Value> {
        match self {
            RunnerSpec::Synthetic(s) => Some(s.configuration()),
            RunnerSpec::Process(_) | RunnerSpec::Proxy(_) | RunnerSpec::Codex(_) => None,
        }
    }

    /// Starts the runner.
    pub async fn start(self) -> Result<Started, ErrorInfo> {
        match self {
            RunnerSpec::Synthetic(spec) => {
                let (events, control) = synthetic::start(spec);
                Ok(Started {
                    events: Box::pin(events),
                    control: Some(Box::new(control)),
                })
            }
            RunnerSpec::Process(spec) => process::spawn(spec),
            RunnerSpec::Proxy(spec) => proxy::start(spec).await,
            RunnerSpec::Codex(spec) => codex::start(spec),
        }
    }
}
