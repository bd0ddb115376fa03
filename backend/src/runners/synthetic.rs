//! The `synthetic` runner: a credential-free agent that prints genuine Claude `stream-json` lines
//! (system init, message_start, content_block_start, N text deltas, content_block_stop, message_delta
//! with usage, message_stop, result) at a chosen pace. Its lines go through the same parser, persistence
//! and broadcast as a real agent's.

use std::time::{Duration, Instant};

use agentstream_wire::{ErrorCode, SyntheticConfig};
use futures_util::Stream;
use serde_json::{json, Value};

use super::{RunnerEvent, RunnerExit};
use crate::configuration::SyntheticSettings;
use crate::error::ApiError;

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

/// Where the generator is.
enum Step {
    Init,
    MessageStart,
    BlockStart,
    Delta(u64),
    BlockStop,
    MessageDelta,
    MessageStop,
    Result,
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
}

impl State {
    /// A run about to print its first line.
    fn new(spec: SyntheticSpec) -> Self {
        State {
            spec,
            step: Step::Init,
            session_id: uuid::Uuid::new_v4().to_string(),
            message_id: format!("msg_synthetic_{}", uuid::Uuid::new_v4().simple()),
            started: Instant::now(),
            paced_from: Instant::now(),
            text: String::new(),
        }
    }
}

/// The run's events, paced by `interval_ms` between tokens.
pub fn stream(spec: SyntheticSpec) -> impl Stream<Item = RunnerEvent> {
    futures_util::stream::unfold(State::new(spec), |mut s| async move {
        let line = match s.step {
            Step::Init => {
                s.step = Step::MessageStart;
                json!({"type": "system", "subtype": "init", "session_id": s.session_id, "model": "synthetic",
                       "tools": [], "mcp_servers": [], "permissionMode": "default",
                       "claude_code_version": "synthetic"})
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
                s.step = if i + 1 < s.spec.tokens {
                    Step::Delta(i + 1)
                } else {
                    Step::BlockStop
                };
                let text = token(i);
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
                s.step = Step::Exit;
                let ms = s.started.elapsed().as_millis() as u64;
                json!({"type": "result", "subtype": "success", "is_error": false, "duration_ms": ms,
                       "duration_api_ms": ms, "num_turns": 1, "result": std::mem::take(&mut s.text),
                       "stop_reason": "end_turn", "terminal_reason": "completed",
                       "session_id": s.session_id, "total_cost_usd": 0.0,
                       "usage": s.usage(s.spec.tokens)})
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
        }
    }

    #[test]
    fn a_token_line_is_the_stream_event_the_generic_path_builds() {
        let state = State::new(spec(3));
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
        let events: Vec<RunnerEvent> = stream(spec(25)).collect().await;
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
        let mut lines = Box::pin(stream(spec));
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
                stamp: None,
                start_delay_ms: delay,
            };
            assert_eq!(
                SyntheticSpec::new(c, "p", &settings).unwrap_err().code,
                ErrorCode::InvalidConfiguration
            );
        }
    }
}
