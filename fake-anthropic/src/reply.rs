//! The content of an answer, decided once per request and then rendered either as an SSE stream
//! ([`crate::sse`]) or as one JSON message (the CLI's non-streaming fallback).

use std::time::Duration;

use serde_json::{json, Value};

use crate::ids;
use crate::marker::Selection;
use crate::scenario::{Scenario, Script};

/// Signature sent for thinking blocks; the CLI stores it but never checks it offline.
pub const THINKING_SIGNATURE: &str = "ZmFrZS1zaWduYXR1cmU=";

/// One content block of the answer, with its text already split into deltas.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A text block; one delta per element.
    Text(Vec<String>),
    /// A thinking block; one thinking delta per element, then a signature delta.
    Thinking(Vec<String>),
    /// A tool call.
    ToolUse {
        /// `toolu_…` id.
        id: String,
        /// Tool name as the CLI knows it (`Bash`, `Read`, `Agent`).
        name: String,
        /// The tool input, streamed as `input_json_delta` chunks.
        input: Value,
    },
}

impl Block {
    /// Output tokens this block "costs": one per delta, a flat 10 for a tool call.
    fn output_tokens(&self) -> u64 {
        match self {
            Block::Text(d) | Block::Thinking(d) => d.len() as u64,
            Block::ToolUse { .. } => 10,
        }
    }

    /// The block as it appears in a complete (non-streamed) message.
    pub fn to_json(&self) -> Value {
        match self {
            Block::Text(d) => json!({"type": "text", "text": d.concat()}),
            Block::Thinking(d) => {
                json!({"type": "thinking", "thinking": d.concat(), "signature": THINKING_SIGNATURE})
            }
            Block::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        }
    }
}

/// How a stream ends early on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// An SSE `error` event (`overloaded_error`), then a clean end of the body.
    ErrorEvent,
    /// The connection is closed without the final chunk.
    Drop,
}

/// Where and how a stream is cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// What happens.
    pub kind: Interruption,
    /// After how many text deltas.
    pub after_deltas: usize,
}

/// Everything needed to render an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `msg_…` id shared by the stream's `message_start` and the JSON message.
    pub id: String,
    /// Echo of the request's model.
    pub model: String,
    /// Content blocks in order.
    pub blocks: Vec<Block>,
    /// `end_turn`, `tool_use`, `max_tokens` or `refusal`.
    pub stop_reason: &'static str,
    /// Approximate prompt size, reported in `usage`.
    pub input_tokens: u64,
    /// Pause after each text delta.
    pub delay: Duration,
    /// Early end of the stream, if the scenario asks for one (ignored when not streaming).
    pub cut: Option<Cut>,
    /// Scenario name that produced this reply, for the request log.
    pub scenario: String,
}

/// Request facts the answer depends on besides the marker.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The marker and the tool outputs of the request.
    pub selection: &'a Selection,
    /// Whether the request offered any tools (tool scenarios need them).
    pub has_tools: bool,
    /// The request's `model`.
    pub model: &'a str,
    /// Approximate prompt size.
    pub input_tokens: u64,
}

/// The short answer of `hello`.
const HELLO: &str = "Hello! This is the fake API answering.";

impl Reply {
    /// Decides the answer for `script` (already past any HTTP error) in context `ctx`.
    pub fn plan(script: &Script, ctx: &Context<'_>) -> Reply {
        let mut stop_reason = "end_turn";
        let mut cut = None;
        let scenario = &script.scenario;
        let tool_turn = matches!(
            scenario,
            Scenario::Tool { .. } | Scenario::Read { .. } | Scenario::Subagent
        );
        let blocks = if tool_turn && !ctx.selection.tool_results.is_empty() {
            vec![Block::Text(tool_answer(&ctx.selection.tool_results))]
        } else if tool_turn && ctx.has_tools {
            stop_reason = "tool_use";
            vec![
                Block::Text(chunks("I'll run the tool now.", 8)),
                tool_call(scenario),
            ]
        } else {
            match scenario {
                Scenario::Long { n } => vec![Block::Text(words(*n))],
                Scenario::MidstreamError { n } | Scenario::Drop { n } => {
                    let kind = if matches!(scenario, Scenario::Drop { .. }) {
                        Interruption::Drop
                    } else {
                        Interruption::ErrorEvent
                    };
                    cut = Some(Cut {
                        kind,
                        after_deltas: n / 2,
                    });
                    vec![Block::Text(words(*n))]
                }
                Scenario::Thinking => vec![
                    Block::Thinking(chunks(
                        "The user wants a greeting. I will greet them briefly.",
                        10,
                    )),
                    Block::Text(chunks("Hello from a thinking model!", 6)),
                ],
                Scenario::MaxTokens => {
                    stop_reason = "max_tokens";
                    vec![Block::Text(words(30))]
                }
                Scenario::Empty => Vec::new(),
                Scenario::Refusal => {
                    stop_reason = "refusal";
                    vec![Block::Text(chunks("I can't help with that.", 8))]
                }
                Scenario::Hello { chunk } => vec![Block::Text(chunks(HELLO, *chunk))],
                // Tool scenarios without tools, and errors past `fail_first`, answer like hello.
                _ => vec![Block::Text(chunks(HELLO, 6))],
            }
        };
        Reply {
            id: ids::message_id(),
            model: ctx.model.to_owned(),
            blocks,
            stop_reason,
            input_tokens: ctx.input_tokens,
            delay: script.delay,
            cut,
            scenario: script.name.clone(),
        }
    }

    /// Output tokens reported in the final usage.
    pub fn output_tokens(&self) -> u64 {
        self.blocks.iter().map(Block::output_tokens).sum()
    }

    /// The `usage` object of a complete message.
    pub fn usage_json(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": self.output_tokens(),
            "service_tier": "standard",
        })
    }

    /// The answer as one JSON message, for `"stream": false`.
    pub fn to_message(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks.iter().map(Block::to_json).collect::<Vec<_>>(),
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage_json(),
        })
    }
}

/// The tool call of the first turn of a tool scenario.
fn tool_call(scenario: &Scenario) -> Block {
    let (name, input) = match scenario {
        Scenario::Tool { cmd } => (
            "Bash",
            json!({"command": cmd, "description": "Run a shell command"}),
        ),
        Scenario::Read { file } => ("Read", json!({"file_path": file})),
        _ => (
            "Agent",
            json!({
                "description": "Say hi",
                "prompt": "Say hi [[scenario:hello chunk=4]]",
                "subagent_type": "general-purpose",
                "run_in_background": false,
            }),
        ),
    };
    Block::ToolUse {
        id: ids::tool_use_id(),
        name: name.to_owned(),
        input,
    }
}

/// The second turn of a tool scenario: quote the tool output (first 500 characters).
fn tool_answer(tool_results: &[String]) -> Vec<String> {
    let joined = tool_results
        .iter()
        .map(|t| t.trim())
        .collect::<Vec<_>>()
        .join(" | ");
    let out: String = joined.chars().take(500).collect();
    chunks(&format!("The tool returned: {out}. Done."), 12)
}

/// `n` words `tok0 tok1 …`, with a newline after every 25th, one per delta.
pub fn words(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let sep = if i % 25 == 24 { '\n' } else { ' ' };
            format!("tok{i}{sep}")
        })
        .collect()
}

/// `s` split into pieces of `size` characters (at least one piece, possibly empty).
pub fn chunks(s: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let pieces: Vec<String> = chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect();
    if pieces.is_empty() {
        vec![String::new()]
    } else {
        pieces
    }
}

/// Unit tests of this module's pure functions.
#[cfg(test)]
mod tests {
    use super::*;

    /// Deltas must never split a UTF-8 character.
    #[test]
    fn chunks_split_by_characters() {
        assert_eq!(chunks("héllo", 2), vec!["hé", "ll", "o"]);
        assert_eq!(chunks("", 3), vec![""]);
        assert_eq!(chunks(HELLO, 6).len(), 7);
    }

    /// `long` text matches the reference: a newline after every 25th word.
    #[test]
    fn words_break_lines_every_25() {
        let w = words(26);
        assert_eq!(w[0], "tok0 ");
        assert_eq!(w[24], "tok24\n");
        assert_eq!(w[25], "tok25 ");
    }
}
