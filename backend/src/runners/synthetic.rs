//! The `synthetic` runner: a credential-free agent that prints genuine Claude `stream-json` lines
//! (system init, message_start, content_block_start, N text deltas, content_block_stop, message_delta
//! with usage, message_stop, result) at a chosen pace. Its lines go through the same parser, persistence
//! and broadcast as a real agent's.
//!
//! It also reads what the Claude CLI reads (`runners::stream_json`), and answers as the CLI does: each
//! message is another turn (one written during a turn waits for it to end), `interrupt` ends the turn
//! with an error `result`, and with `askPermission` each turn first asks to run a tool and waits for the
//! answer. So follow-ups, interrupts and permissions are testable without the CLI; the run ends when
//! its input is closed.

use std::time::{Duration, Instant};

use agentstream_wire::{ErrorCode, SyntheticConfig};
use futures_util::Stream;
use serde_json::{json, Value};

use std::collections::VecDeque;

use futures_util::future::LocalBoxFuture;
use tokio::sync::mpsc;

use super::stream_json::{read_input_line, InputLine};
use super::{InputClosed, InputLines, RunnerControl, RunnerEvent, RunnerExit};
use crate::configuration::SyntheticSettings;
use crate::error::ApiError;

/// The `synthetic` agent type.
pub struct Synthetic;

impl super::kind::AgentKind for Synthetic {
    fn agent_type(&self) -> agentstream_wire::AgentType {
        agentstream_wire::AgentType::Synthetic
    }

    fn info(&self, settings: &crate::configuration::Settings) -> agentstream_wire::AgentTypeInfo {
        use super::kind::option;
        use agentstream_wire::OptionKind;
        let s = &settings.synthetic;
        let mut tokens = option(
            "tokens",
            "Tokens",
            OptionKind::Number,
            &format!(
                "How many text tokens it answers with (1 to {}).",
                s.max_tokens
            ),
        );
        tokens.default = Some(json!(s.default_tokens));
        let mut interval = option(
            "intervalMs",
            "Interval (ms)",
            OptionKind::Number,
            &format!(
                "The pause between two tokens (at most {} ms).",
                s.max_interval_ms
            ),
        );
        interval.default = Some(json!(s.default_interval_ms));
        agentstream_wire::AgentTypeInfo {
            agent_type: self.agent_type().as_str().to_owned(),
            label: "Synthetic".to_owned(),
            description:
                "Streams generated tokens through the real pipeline; needs no credentials."
                    .to_owned(),
            available: true,
            unavailable_reason: None,
            conversations: true,
            prompt_required: false,
            options: vec![
                tokens,
                interval,
                option(
                    "askPermission",
                    "Ask permission for a tool each turn",
                    OptionKind::Boolean,
                    "Each turn first asks to run a tool and waits for a client's answer.",
                ),
                option(
                    "startDelayMs",
                    "Start delay (ms)",
                    OptionKind::Number,
                    "A pause before the answer starts, as a model's time to the first token.",
                ),
                option(
                    "stamp",
                    "Stamp tokens",
                    OptionKind::Boolean,
                    "Each token carries the moment it was made (for latency measurements).",
                ),
            ],
        }
    }

    fn launch(
        &self,
        prompt: &str,
        configuration: Option<&Value>,
        settings: &crate::configuration::Settings,
    ) -> Result<super::RunnerSpec, ApiError> {
        let config: SyntheticConfig = match configuration {
            None | Some(Value::Null) => SyntheticConfig::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                ApiError::bad_request(
                    ErrorCode::InvalidConfiguration,
                    format!("synthetic configuration: {e} (expected {{\"tokens\": N, \"intervalMs\": M}})"),
                )
            })?,
        };
        SyntheticSpec::new(config, prompt, &settings.synthetic).map(super::RunnerSpec::Synthetic)
    }

    fn continues(&self) -> bool {
        true
    }

    fn resume(
        &self,
        prompt: &str,
        continuation: &super::Continuation,
        session: &str,
        settings: &crate::configuration::Settings,
    ) -> Result<super::RunnerSpec, ApiError> {
        match self.launch(prompt, continuation.configuration(), settings)? {
            super::RunnerSpec::Synthetic(mut spec) => {
                spec.session_id = Some(session.to_owned());
                Ok(super::RunnerSpec::Synthetic(spec))
            }
            other => Ok(other),
        }
    }

    fn parser(&self) -> Box<dyn crate::parser::LineParser> {
        Box::new(crate::parser::ClaudeLines)
    }
}

/// The answer's words, cycled: readable text, deterministic for a given token count.
const WORDS: &[&str] = &[
    "Streaming",
    "every",
    "token",
    "through",
    "a",
    "durable",
    "pipeline:",
    "parsed,",
    "stored",
    "with",
    "its",
    "sequence",
    "number,",
    "then",
    "broadcast",
    "to",
    "each",
    "subscriber",
    "in",
    "order.",
];

/// The final `result` text is capped at this many bytes (a real agent's answer is far shorter).
const MAX_RESULT_BYTES: usize = 1 << 20;

/// A validated synthetic run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticSpec {
    pub tokens: u64,
    pub interval_ms: u64,
    pub prompt_bytes: usize,
    /// Token lines carry `emittedNs` (see `SyntheticConfig::stamp`).
    pub stamp: bool,
    /// Pause before the answer (see `SyntheticConfig::start_delay_ms`).
    pub start_delay_ms: u64,
    /// Each turn first asks permission to run a tool (see `SyntheticConfig::ask_permission`).
    pub ask_permission: bool,
    /// The session it continues (a resumed agent), or `None` for a new one.
    pub session_id: Option<String>,
}

impl SyntheticSpec {
    /// Applies defaults and bounds from the settings.
    pub fn new(
        config: SyntheticConfig,
        prompt: &str,
        settings: &SyntheticSettings,
    ) -> Result<Self, ApiError> {
        let tokens = config.tokens.unwrap_or(settings.default_tokens);
        if tokens == 0 || tokens > settings.max_tokens {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidConfiguration,
                format!(
                    "tokens must be between 1 and {}, got {tokens}",
                    settings.max_tokens
                ),
            ));
        }
        let pause = |name: &str, value: u64| {
            if value > settings.max_interval_ms {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidConfiguration,
                    format!(
                        "{name} must be at most {}, got {value}",
                        settings.max_interval_ms
                    ),
                ));
            }
            Ok(value)
        };
        let interval_ms = pause(
            "intervalMs",
            config.interval_ms.unwrap_or(settings.default_interval_ms),
        )?;
        let start_delay_ms = pause("startDelayMs", config.start_delay_ms.unwrap_or(0))?;
        Ok(SyntheticSpec {
            tokens,
            interval_ms,
            prompt_bytes: prompt.len(),
            stamp: config.stamp.unwrap_or(false),
            start_delay_ms,
            ask_permission: config.ask_permission.unwrap_or(false),
            session_id: None,
        })
    }

    /// The configuration as stored on the agent.
    pub fn configuration(&self) -> Value {
        let mut c = json!({"tokens": self.tokens, "intervalMs": self.interval_ms});
        if self.stamp {
            c["stamp"] = json!(true);
        }
        if self.start_delay_ms > 0 {
            c["startDelayMs"] = json!(self.start_delay_ms);
        }
        if self.ask_permission {
            c["askPermission"] = json!(true);
        }
        c
    }
}

/// The text of token `i` (0-based): a word, preceded by a space except for the first.
pub fn token(i: u64) -> String {
    let word = WORDS[(i % WORDS.len() as u64) as usize];
    if i == 0 {
        word.to_owned()
    } else {
        format!(" {word}")
    }
}

/// The tool a turn of an `askPermission` agent asks to run.
const TOOL_NAME: &str = "Bash";

/// Where the generator is.
enum Step {
    Init,
    /// The model's tool call (an `assistant` line with a `tool_use` block).
    ToolCall,
    /// The permission request for it.
    Ask,
    /// Waiting for the answer to the request.
    AwaitAnswer,
    MessageStart,
    BlockStart,
    Delta(u64),
    BlockStop,
    MessageDelta,
    MessageStop,
    Result,
    /// The turn was interrupted: its error `result` follows.
    Interrupted(&'static str),
    /// The turn has ended: the next queued message starts another, or the run ends with its input.
    NextTurn,
    Exit,
    Done,
}

struct State {
    spec: SyntheticSpec,
    step: Step,
    session_id: String,
    message_id: String,
    started: Instant,
    /// When the answer started (after any start delay): token i is due i × interval after it.
    paced_from: Instant,
    text: String,
    /// The agent's input (stream-json lines); `None` once closed.
    input: Option<mpsc::UnboundedReceiver<String>>,
    /// Messages that arrived during a turn: each starts the next turn, in order.
    queued: VecDeque<String>,
    /// An `interrupt` request arrived (its id): the turn stops at the next step.
    interrupt: Option<String>,
    /// Turns begun (the launch prompt's is 0).
    turn: u64,
    /// The current turn's permission request and its answer (`Some(allowed)` once answered).
    request_id: String,
    allowed: Option<bool>,
    deny_message: Option<String>,
}

impl State {
    /// A run about to print its first line, reading `input`.
    fn new(spec: SyntheticSpec, input: mpsc::UnboundedReceiver<String>) -> Self {
        State {
            session_id: spec
                .session_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            spec,
            step: Step::Init,
            message_id: format!("msg_synthetic_{}", uuid::Uuid::new_v4().simple()),
            started: Instant::now(),
            paced_from: Instant::now(),
            text: String::new(),
            input: Some(input),
            queued: VecDeque::new(),
            interrupt: None,
            turn: 0,
            request_id: String::new(),
            allowed: None,
            deny_message: None,
        }
    }

    /// Takes one input line: queues a message, notes an interrupt or an answer.
    fn take(&mut self, line: &str) {
        match read_input_line(line) {
            InputLine::User(prompt) => self.queued.push_back(prompt),
            InputLine::Interrupt(id) => self.interrupt = Some(id),
            InputLine::PermissionAnswer {
                request_id,
                allow,
                message,
            } if request_id == self.request_id && self.allowed.is_none() => {
                self.allowed = Some(allow);
                self.deny_message = message;
            }
            InputLine::PermissionAnswer { .. } | InputLine::Other => {}
        }
    }

    /// Takes what has arrived, without waiting (between two tokens: an atomic load when nothing has).
    fn poll_input(&mut self) {
        while let Some(input) = &mut self.input {
            match input.try_recv() {
                Ok(line) => self.take(&line),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.input = None,
            }
        }
    }

    /// Waits for the next input line and takes it; `false` once the input is closed.
    async fn next_input(&mut self) -> bool {
        let Some(input) = &mut self.input else {
            return false;
        };
        match input.recv().await {
            Some(line) => {
                self.take(&line);
                true
            }
            None => {
                self.input = None;
                false
            }
        }
    }

    /// A new turn of the same session, for `prompt`.
    fn begin_turn(&mut self, prompt: &str) {
        self.turn += 1;
        self.spec.prompt_bytes = prompt.len();
        self.message_id = format!("msg_synthetic_{}", uuid::Uuid::new_v4().simple());
        self.started = Instant::now();
        self.text.clear();
        self.allowed = None;
        self.deny_message = None;
        self.step = Step::Init;
    }
}

/// The control of a synthetic run: its input. Dropping the event stream stops it.
pub struct SyntheticControl {
    input: InputLines,
}

impl RunnerControl for SyntheticControl {
    fn send_line(&mut self, line: String) -> Result<(), InputClosed> {
        self.input.send(line)
    }

    fn end_input(&mut self) {
        self.input.close();
    }

    fn stop(&mut self) -> LocalBoxFuture<'static, ()> {
        self.input.close();
        Box::pin(async {})
    }
}

/// Starts a run: its events, and its control.
pub fn start(spec: SyntheticSpec) -> (impl Stream<Item = RunnerEvent>, SyntheticControl) {
    let (input, lines) = InputLines::open();
    (stream(spec, lines), SyntheticControl { input })
}

/// The run's events, paced by `interval_ms` between tokens: the launch prompt's turn, then a turn per
/// message read from `input`, until it is closed.
fn stream(
    spec: SyntheticSpec,
    input: mpsc::UnboundedReceiver<String>,
) -> impl Stream<Item = RunnerEvent> {
    futures_util::stream::unfold(State::new(spec, input), |mut s| async move {
        if s.interrupt.is_some()
            && matches!(
                s.step,
                Step::MessageStart
                    | Step::BlockStart
                    | Step::Delta(_)
                    | Step::BlockStop
                    | Step::MessageDelta
                    | Step::MessageStop
                    | Step::Result
            )
        {
            s.step = Step::Interrupted("aborted_streaming");
        }
        let line = match s.step {
            Step::Init => {
                s.step = if s.spec.ask_permission {
                    Step::ToolCall
                } else {
                    Step::MessageStart
                };
                json!({"type": "system", "subtype": "init", "session_id": s.session_id, "model": "synthetic",
                       "tools": [], "mcp_servers": [], "permissionMode": "default",
                       "claude_code_version": "synthetic"})
            }
            Step::ToolCall => {
                s.step = Step::Ask;
                s.request_id = uuid::Uuid::new_v4().to_string();
                json!({"type": "assistant", "message": {"id": s.message_id, "type": "message",
                       "role": "assistant", "model": "synthetic",
                       "content": [{"type": "tool_use", "id": s.tool_use_id(), "name": TOOL_NAME,
                                    "input": s.tool_input()}],
                       "stop_reason": "tool_use"},
                       "parent_tool_use_id": null, "session_id": s.session_id})
            }
            Step::Ask => {
                s.step = Step::AwaitAnswer;
                json!({"type": "control_request", "request_id": s.request_id,
                       "request": {"subtype": "can_use_tool", "tool_name": TOOL_NAME,
                                   "display_name": TOOL_NAME, "input": s.tool_input(),
                                   "tool_use_id": s.tool_use_id()}})
            }
            Step::AwaitAnswer => {
                while s.allowed.is_none() && s.interrupt.is_none() {
                    if !s.next_input().await {
                        // Input closed before an answer: the CLI refuses the tool and goes on.
                        s.allowed = Some(false);
                        s.deny_message =
                            Some("Tool permission stream closed before response received".into());
                    }
                }
                if s.interrupt.is_some() {
                    s.step = Step::Interrupted("aborted_tools");
                    json!({"type": "control_cancel_request", "request_id": s.request_id})
                } else {
                    s.step = Step::MessageStart;
                    let allowed = s.allowed == Some(true);
                    let content = if allowed {
                        "synthetic tool output".to_owned()
                    } else {
                        s.deny_message
                            .clone()
                            .unwrap_or_else(|| "denied".to_owned())
                    };
                    json!({"type": "user", "message": {"role": "user", "content": [
                              {"type": "tool_result", "tool_use_id": s.tool_use_id(),
                               "content": content, "is_error": !allowed}]},
                           "parent_tool_use_id": null, "session_id": s.session_id})
                }
            }
            Step::MessageStart => {
                if s.spec.start_delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(s.spec.start_delay_ms)).await;
                }
                // Tokens are paced from here.
                s.paced_from = Instant::now();
                s.step = Step::BlockStart;
                s.event(json!({"type": "message_start", "message": {
                    "id": s.message_id, "type": "message", "role": "assistant", "model": "synthetic",
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": s.usage(1)}}))
            }
            Step::BlockStart => {
                s.step = Step::Delta(0);
                s.event(json!({"type": "content_block_start", "index": 0,
                               "content_block": {"type": "text", "text": ""}}))
            }
            Step::Delta(i) => {
                if i > 0 && s.spec.interval_ms > 0 {
                    // A fixed rate: token i is due at start + i × interval, whatever the work took.
                    let due =
                        s.paced_from + Duration::from_millis(s.spec.interval_ms.saturating_mul(i));
                    tokio::time::sleep_until(due.into()).await;
                }
                s.poll_input();
                if s.interrupt.is_some() {
                    s.step = Step::Interrupted("aborted_streaming");
                    return Some((RunnerEvent::Line(s.interrupted_line()), s));
                }
                s.step = if i + 1 < s.spec.tokens {
                    Step::Delta(i + 1)
                } else {
                    Step::BlockStop
                };
                // Each turn of a run answers with other words, the first without a leading space.
                let mut text = token(s.turn + i);
                if i == 0 && s.turn > 0 {
                    text.remove(0);
                }
                if s.text.len() + text.len() <= MAX_RESULT_BYTES {
                    s.text.push_str(&text);
                }
                let stamp = s.spec.stamp.then(monotonic_ns);
                return Some((RunnerEvent::Line(s.delta_line(&text, stamp)), s));
            }
            Step::BlockStop => {
                s.step = Step::MessageDelta;
                s.event(json!({"type": "content_block_stop", "index": 0}))
            }
            Step::MessageDelta => {
                s.step = Step::MessageStop;
                let usage = s.usage(s.spec.tokens);
                s.event(json!({"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                               "usage": usage}))
            }
            Step::MessageStop => {
                s.step = Step::Result;
                s.event(json!({"type": "message_stop"}))
            }
            Step::Result => {
                s.step = Step::NextTurn;
                let ms = s.started.elapsed().as_millis() as u64;
                json!({"type": "result", "subtype": "success", "is_error": false, "duration_ms": ms,
                       "duration_api_ms": ms, "num_turns": 1, "result": std::mem::take(&mut s.text),
                       "stop_reason": "end_turn", "terminal_reason": "completed",
                       "session_id": s.session_id, "total_cost_usd": 0.0,
                       "usage": s.usage(s.spec.tokens)})
            }
            Step::Interrupted(reason) => {
                s.step = Step::NextTurn;
                s.interrupt = None;
                let ms = s.started.elapsed().as_millis() as u64;
                json!({"type": "result", "subtype": "error_during_execution", "is_error": true,
                       "duration_ms": ms, "duration_api_ms": ms, "num_turns": 1,
                       "stop_reason": null, "terminal_reason": reason,
                       "session_id": s.session_id, "total_cost_usd": 0.0,
                       "usage": s.usage(0)})
            }
            Step::NextTurn => {
                loop {
                    s.poll_input();
                    if let Some(prompt) = s.queued.pop_front() {
                        s.begin_turn(&prompt);
                        break;
                    }
                    // An interrupt between turns has nothing to stop.
                    s.interrupt = None;
                    if !s.next_input().await && s.queued.is_empty() {
                        s.step = Step::Exit;
                        break;
                    }
                }
                return match s.step {
                    Step::Exit => {
                        s.step = Step::Done;
                        Some((RunnerEvent::Exited(RunnerExit::default()), s))
                    }
                    _ => {
                        s.step = if s.spec.ask_permission {
                            Step::ToolCall
                        } else {
                            Step::MessageStart
                        };
                        let init = json!({"type": "system", "subtype": "init",
                            "session_id": s.session_id, "model": "synthetic", "tools": [],
                            "mcp_servers": [], "permissionMode": "default",
                            "claude_code_version": "synthetic"});
                        Some((RunnerEvent::Line(init.to_string()), s))
                    }
                };
            }
            Step::Exit => {
                s.step = Step::Done;
                return Some((RunnerEvent::Exited(RunnerExit::default()), s));
            }
            Step::Done => return None,
        };
        Some((RunnerEvent::Line(line.to_string()), s))
    })
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the machine.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

impl State {
    /// Wraps an Anthropic SSE event as Claude Code prints it.
    fn event(&self, event: Value) -> Value {
        json!({"type": "stream_event", "event": event, "session_id": self.session_id,
               "parent_tool_use_id": null, "uuid": uuid::Uuid::new_v4().to_string(),
               "api_message_id": self.message_id})
    }

    /// A token's line: exactly what `event` gives for a `text_delta` (plus `emittedNs` last, when
    /// stamped), written directly — it is nearly every line of a run, and building a `Value` tree for
    /// each cost more than everything else the runner does (a test holds the two equal).
    fn delta_line(&self, text: &str, stamp: Option<u64>) -> String {
        use std::fmt::Write;
        // A `&str` always serializes; the fallback is never used.
        let text = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned());
        let mut line = String::with_capacity(300 + text.len());
        let _ = write!(
            line,
            r#"{{"type":"stream_event","event":{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{text}}}}},"session_id":"{}","parent_tool_use_id":null,"uuid":"{}","api_message_id":"{}""#,
            self.session_id,
            uuid::Uuid::new_v4(),
            self.message_id
        );
        if let Some(ns) = stamp {
            let _ = write!(line, r#","emittedNs":{ns}"#);
        }
        line.push('}');
        line
    }

    /// The CLI's line for an interrupted turn: the user line it inserts.
    fn interrupted_line(&self) -> String {
        json!({"type": "user", "message": {"role": "user", "content": [
                  {"type": "text", "text": "[Request interrupted by user]"}]},
               "parent_tool_use_id": null, "session_id": self.session_id})
        .to_string()
    }

    fn tool_use_id(&self) -> String {
        format!(
            "toolu_synthetic_{}_{}",
            self.turn,
            &self.request_id.get(..8).unwrap_or("")
        )
    }

    fn tool_input(&self) -> Value {
        json!({"command": format!("echo turn {}", self.turn + 1), "description": "Print the turn's number"})
    }

    fn usage(&self, output_tokens: u64) -> Value {
        json!({"input_tokens": (self.spec.prompt_bytes / 4).max(1), "output_tokens": output_tokens})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_line;
    use agentstream_wire::MessageType;
    use futures_util::StreamExt;

    fn spec(tokens: u64) -> SyntheticSpec {
        SyntheticSpec {
            tokens,
            interval_ms: 0,
            prompt_bytes: 10,
            stamp: false,
            start_delay_ms: 0,
            ask_permission: false,
            session_id: None,
        }
    }

    /// A run whose input is closed: it answers its prompt, then ends.
    fn one_turn(spec: SyntheticSpec) -> impl Stream<Item = RunnerEvent> {
        let (events, control) = start(spec);
        drop(control);
        events
    }

    #[test]
    fn a_token_line_is_the_stream_event_the_generic_path_builds() {
        let state = State::new(spec(3), mpsc::unbounded_channel().1);
        for (text, stamp) in [
            (" word", None),
            (
                "quote \" back \\ nl \n tab \t nul \u{0} crab 🦀",
                Some(123_456_789u64),
            ),
        ] {
            let fast: Value = serde_json::from_str(&state.delta_line(text, stamp)).unwrap();
            let mut slow = state.event(json!({"type": "content_block_delta", "index": 0,
                               "delta": {"type": "text_delta", "text": text}}));
            if let Some(ns) = stamp {
                slow["emittedNs"] = json!(ns);
            }
            // Everything but the per-line random uuid, in the same order.
            let uuid = fast["uuid"].clone();
            assert!(uuid
                .as_str()
                .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok()));
            slow["uuid"] = uuid;
            assert_eq!(fast.to_string(), slow.to_string());
        }
    }

    #[tokio::test]
    async fn produces_exactly_n_tokens_through_the_parser() {
        let events: Vec<RunnerEvent> = one_turn(spec(25)).collect().await;
        assert_eq!(
            events.last(),
            Some(&RunnerEvent::Exited(RunnerExit::default()))
        );
        let parsed: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                RunnerEvent::Line(l) => parse_line(l),
                _ => None,
            })
            .collect();
        let tokens: Vec<_> = parsed
            .iter()
            .filter(|m| m.message_type == MessageType::Assistant)
            .collect();
        assert_eq!(tokens.len(), 25);
        assert!(tokens
            .iter()
            .all(|m| m.metadata["eventType"] == "content_delta"));
        let text: String = tokens.iter().map(|m| m.content.as_str()).collect();
        let expected: String = (0..25).map(token).collect();
        assert_eq!(text, expected);
        // init, usage and result are the only other stored messages.
        assert_eq!(parsed.len(), 28);
        let result = parsed.last().unwrap();
        assert_eq!(result.message_type, MessageType::Result);
        assert_eq!(result.content, expected);
        assert!(!result.outcome.as_ref().unwrap().is_error);
    }

    #[tokio::test]
    async fn the_answer_waits_for_the_start_delay_and_tokens_are_paced_from_there() {
        let spec = SyntheticSpec {
            interval_ms: 10,
            start_delay_ms: 200,
            ..spec(3)
        };
        let begun = Instant::now();
        let mut lines = Box::pin(one_turn(spec));
        let mut at = Vec::new();
        while let Some(event) = lines.next().await {
            at.push(begun.elapsed().as_millis());
            if matches!(event, RunnerEvent::Exited(_)) {
                break;
            }
        }
        // system init at once; message_start after the delay; token 2 is due 20 ms after that.
        assert!(at[0] < 100, "{at:?}");
        assert!((200..2000).contains(&at[1]), "{at:?}");
        assert!(at[5] >= at[1] + 20, "{at:?}");
    }

    /// The parsed messages of `events`' lines.
    fn parsed(events: &[RunnerEvent]) -> Vec<crate::parser::ParsedMessage> {
        events
            .iter()
            .filter_map(|e| match e {
                RunnerEvent::Line(l) => parse_line(l),
                _ => None,
            })
            .collect()
    }

    /// Reads events until the next `result` line (included).
    async fn until_result(
        events: &mut (impl Stream<Item = RunnerEvent> + Unpin),
    ) -> Vec<RunnerEvent> {
        let mut out = Vec::new();
        while let Some(event) = events.next().await {
            let end = matches!(&event, RunnerEvent::Line(l) if l.contains(r#""type":"result""#));
            out.push(event);
            if end {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn a_message_written_during_a_turn_is_the_next_turn_of_the_same_session() {
        let (events, mut control) = start(spec(5));
        let mut events = Box::pin(events);
        control
            .send_line(crate::runners::stream_json::user_line("more"))
            .unwrap();
        let first = parsed(&until_result(&mut events).await);
        let second = parsed(&until_result(&mut events).await);
        control.end_input();
        assert_eq!(
            events.next().await,
            Some(RunnerEvent::Exited(RunnerExit::default()))
        );
        let session = |m: &[crate::parser::ParsedMessage]| m[0].session.clone().unwrap().session_id;
        assert_eq!(session(&first), session(&second));
        // The second turn answers with other words.
        assert_ne!(
            first.last().unwrap().content,
            second.last().unwrap().content
        );
        assert_eq!(second.last().unwrap().content.split(' ').count(), 5);
    }

    #[tokio::test]
    async fn an_interrupt_ends_the_turn_with_the_clis_error_result_and_the_run_goes_on() {
        // The stream is pulled: it is at token 7 when the interrupt is written.
        let (events, mut control) = start(spec(1000));
        let mut events = Box::pin(events);
        for _ in 0..10 {
            events.next().await;
        }
        control
            .send_line(crate::runners::stream_json::interrupt_line("i1"))
            .unwrap();
        let rest = parsed(&until_result(&mut events).await);
        let result = rest.last().unwrap();
        assert!(result.outcome.as_ref().unwrap().is_error);
        assert_eq!(result.metadata["terminalReason"], "aborted_streaming");
        assert!(rest.len() < 100, "stopped at once: {}", rest.len());
        // Still there for the next message.
        control
            .send_line(crate::runners::stream_json::user_line("again"))
            .unwrap();
        control.end_input();
        let next: Vec<RunnerEvent> = events.collect().await;
        let next = parsed(&next);
        assert!(!next.last().unwrap().outcome.as_ref().unwrap().is_error);
    }

    #[tokio::test]
    async fn a_permission_request_waits_for_its_answer() {
        let (events, mut control) = start(SyntheticSpec {
            ask_permission: true,
            ..spec(3)
        });
        let mut events = Box::pin(events);
        let mut seen = Vec::new();
        let request = loop {
            let Some(RunnerEvent::Line(line)) = events.next().await else {
                panic!("the run ended without asking");
            };
            let m = parse_line(&line);
            seen.push(line);
            if let Some(m) = m.filter(|m| m.metadata["eventType"] == "permission_request") {
                break m;
            }
        };
        assert_eq!(request.metadata["toolName"], "Bash");
        // Nothing comes until the answer.
        let waited = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
        assert!(waited.is_err(), "it went on without an answer");
        let id = request.metadata["requestId"].as_str().unwrap();
        let answer = agentstream_wire::PermissionAnswer {
            decision: agentstream_wire::PermissionDecision::Deny,
            message: Some("no".into()),
            updated_input: None,
            always: None,
        };
        control
            .send_line(crate::runners::stream_json::permission_answer_line(
                id, "Bash", &answer,
            ))
            .unwrap();
        control.end_input();
        let rest: Vec<RunnerEvent> = events.collect().await;
        let rest = parsed(&rest);
        let tool_result = rest
            .iter()
            .find(|m| m.metadata["eventType"] == "tool_result")
            .unwrap();
        assert_eq!(
            (
                tool_result.content.as_str(),
                &tool_result.metadata["isError"]
            ),
            ("no", &json!(true))
        );
        assert!(!rest.last().unwrap().outcome.as_ref().unwrap().is_error);
    }

    #[test]
    fn bounds_are_enforced() {
        let settings = SyntheticSettings {
            default_tokens: 5,
            default_interval_ms: 1,
            max_tokens: 100,
            max_interval_ms: 1000,
        };
        let ok = SyntheticSpec::new(SyntheticConfig::default(), "p", &settings).unwrap();
        assert_eq!((ok.tokens, ok.interval_ms), (5, 1));
        for (tokens, interval, delay) in [
            (Some(0), None, None),
            (Some(101), None, None),
            (None, Some(1001), None),
            (None, None, Some(1001)),
        ] {
            let c = SyntheticConfig {
                tokens,
                interval_ms: interval,
                start_delay_ms: delay,
                ..SyntheticConfig::default()
            };
            assert_eq!(
                SyntheticSpec::new(c, "p", &settings).unwrap_err().code,
                ErrorCode::InvalidConfiguration
            );
        }
    }
}
