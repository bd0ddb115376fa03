//! The Anthropic streaming events and their rendering as an SSE body, including the deliberate
//! failures (`error` event, dropped connection) that the CLI's recovery paths need.

use std::io::{self, Write};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use serde::Serialize;
use serde_json::Value;

use crate::reply::{Block, Interruption, Reply, THINKING_SIGNATURE};

/// Characters per `input_json_delta` chunk of a tool call.
const JSON_CHUNK: usize = 7;

/// One server-sent event of the Messages streaming API; `type` is also the SSE event name.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Opens the message, with the prompt usage.
    MessageStart {
        /// The (still empty) message.
        message: Value,
    },
    /// Opens a content block.
    ContentBlockStart {
        /// Block position.
        index: usize,
        /// The block with empty text/input.
        content_block: Value,
    },
    /// Keep-alive the real API sends after `message_start`.
    Ping,
    /// A piece of a content block.
    ContentBlockDelta {
        /// Block position.
        index: usize,
        /// `text_delta`, `thinking_delta`, `signature_delta` or `input_json_delta`.
        delta: Value,
    },
    /// Closes a content block.
    ContentBlockStop {
        /// Block position.
        index: usize,
    },
    /// Stop reason and final usage.
    MessageDelta {
        /// `stop_reason` and `stop_sequence`.
        delta: Value,
        /// Final usage.
        usage: Value,
    },
    /// Ends the message.
    MessageStop,
    /// An error reported inside a 200 stream.
    Error {
        /// `{type, message}`.
        error: Value,
    },
}

impl Event {
    /// The SSE `event:` name, identical to the JSON `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
            Event::Error { .. } => "error",
        }
    }

    /// `event: NAME\ndata: JSON\n\n`.
    pub fn encode(&self) -> Bytes {
        // Serializing these plain structures cannot fail; fall back to `{}` rather than panic.
        let data = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        Bytes::from(format!("event: {}\ndata: {data}\n\n", self.name()))
    }
}

/// One step of a scripted stream body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Bytes to send.
    Data(Bytes),
    /// Wait without blocking other requests.
    Pause(Duration),
    /// Let the server write out what it has buffered: actix discards unsent bytes when a body
    /// fails, so a cut must be preceded by one of these to deliver the deltas before it.
    Flush,
    /// Close the connection uncleanly (the body stream fails).
    Cut,
}

/// Error that ends a `drop` body: actix then closes the connection without the final chunk.
#[derive(Debug, thiserror::Error)]
#[error("fake-anthropic: connection dropped on purpose by the `drop` scenario")]
pub struct DeliberateDrop;

/// The usage object of `message_start`.
fn start_usage(reply: &Reply) -> Value {
    serde_json::json!({
        "input_tokens": reply.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
        "service_tier": "standard",
    })
}

/// Builds the steps of the streamed answer, in the real API's order.
pub fn steps(reply: &Reply) -> Vec<Step> {
    let mut b = Builder::default();
    b.event(Event::MessageStart {
        message: serde_json::json!({
            "id": reply.id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": start_usage(reply),
        }),
    });
    b.event(Event::Ping);
    let mut sent = 0usize;
    for (index, block) in reply.blocks.iter().enumerate() {
        match block {
            Block::Text(deltas) => {
                b.start(index, serde_json::json!({"type": "text", "text": ""}));
                for piece in deltas {
                    if let Some(cut) = reply.cut.filter(|c| c.after_deltas == sent) {
                        b.cut(cut.kind);
                        return b.steps;
                    }
                    b.delta(
                        index,
                        serde_json::json!({"type": "text_delta", "text": piece}),
                    );
                    sent += 1;
                    if !reply.delay.is_zero() {
                        b.steps.push(Step::Pause(reply.delay));
                    }
                }
                if let Some(cut) = reply.cut.filter(|c| c.after_deltas == sent) {
                    b.cut(cut.kind);
                    return b.steps;
                }
            }
            Block::Thinking(deltas) => {
                b.start(
                    index,
                    serde_json::json!({"type": "thinking", "thinking": "", "signature": ""}),
                );
                for piece in deltas {
                    b.delta(
                        index,
                        serde_json::json!({"type": "thinking_delta", "thinking": piece}),
                    );
                }
                b.delta(
                    index,
                    serde_json::json!({"type": "signature_delta", "signature": THINKING_SIGNATURE}),
                );
            }
            Block::ToolUse { id, name, input } => {
                b.start(
                    index,
                    serde_json::json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                );
                // The real API opens every tool input with an empty chunk.
                let js = spaced_json(input);
                let pieces =
                    std::iter::once(String::new()).chain(crate::reply::chunks(&js, JSON_CHUNK));
                for piece in pieces {
                    b.delta(
                        index,
                        serde_json::json!({"type": "input_json_delta", "partial_json": piece}),
                    );
                }
            }
        }
        b.event(Event::ContentBlockStop { index });
    }
    b.event(Event::MessageDelta {
        delta: serde_json::json!({"stop_reason": reply.stop_reason, "stop_sequence": null}),
        usage: serde_json::json!({
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": reply.output_tokens(),
        }),
    });
    b.event(Event::MessageStop);
    b.steps
}

/// Accumulates steps; keeps [`steps`] readable.
#[derive(Default)]
struct Builder {
    /// Steps so far.
    steps: Vec<Step>,
}

impl Builder {
    /// Appends an event.
    fn event(&mut self, e: Event) {
        self.steps.push(Step::Data(e.encode()));
    }

    /// Appends `content_block_start`.
    fn start(&mut self, index: usize, content_block: Value) {
        self.event(Event::ContentBlockStart {
            index,
            content_block,
        });
    }

    /// Appends `content_block_delta`.
    fn delta(&mut self, index: usize, delta: Value) {
        self.event(Event::ContentBlockDelta { index, delta });
    }

    /// Appends the deliberate early end of the stream.
    fn cut(&mut self, kind: Interruption) {
        match kind {
            Interruption::ErrorEvent => self.event(Event::Error {
                error: serde_json::json!({"type": "overloaded_error", "message": "Overloaded"}),
            }),
            Interruption::Drop => {
                self.steps.push(Step::Flush);
                self.steps.push(Step::Cut);
            }
        }
    }
}

/// JSON with `", "` and `": "` separators, the text the reference server streamed for tool
/// inputs, so tool calls arrive in as many `input_json_delta` chunks as in the captured corpus.
pub(crate) fn spaced_json(value: &Value) -> String {
    let mut ser = serde_json::Serializer::with_formatter(Vec::new(), SpacedSeparators);
    match value.serialize(&mut ser) {
        Ok(()) => String::from_utf8(ser.into_inner()).unwrap_or_else(|_| value.to_string()),
        Err(_) => value.to_string(),
    }
}

/// A compact JSON formatter that puts a space after `,` and `:`.
struct SpacedSeparators;

impl serde_json::ser::Formatter for SpacedSeparators {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// Turns steps into a body stream: data is yielded, pauses sleep on the runtime's timer, a flush
/// returns `Pending` once (the server writes its buffer meanwhile), and a cut yields [`DeliberateDrop`] so the server aborts the connection.
pub fn body(steps: Vec<Step>) -> impl Stream<Item = Result<Bytes, DeliberateDrop>> {
    stream::unfold(steps.into_iter(), |mut it| async move {
        loop {
            match it.next()? {
                Step::Data(bytes) => return Some((Ok(bytes), it)),
                Step::Pause(d) => tokio::time::sleep(d).await,
                Step::Flush => tokio::task::yield_now().await,
                Step::Cut => return Some((Err(DeliberateDrop), it)),
            }
        }
    })
}

/// Unit tests of this module's pure functions.
#[cfg(test)]
mod tests {
    use super::*;

    /// Tool inputs must be chunked like the corpus, which used Python's separators.
    #[test]
    fn spaced_json_matches_the_reference_separators() {
        let v = serde_json::json!({"command": "echo hi", "n": [1, 2], "o": {}});
        assert_eq!(
            spaced_json(&v),
            r#"{"command": "echo hi", "n": [1, 2], "o": {}}"#
        );
    }

    /// Each frame is `event: NAME` plus one `data:` line whose `type` is the same name.
    #[test]
    fn event_frames_name_their_type() {
        let frame = Event::ContentBlockStop { index: 2 }.encode();
        assert_eq!(
            &frame[..],
            b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
        );
        assert_eq!(
            &Event::Ping.encode()[..],
            b"event: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
    }
}
