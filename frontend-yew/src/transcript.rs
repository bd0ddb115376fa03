//! What the agent view shows, built incrementally from the timeline's applied messages: token deltas
//! joined into one text per assistant turn, thinking, tool calls as cards (name, input, result), quiet
//! system lines, errors, and the final result.
//!
//! Two rules of Claude Code's stream are honoured here: a whole `assistant` block arrives after its
//! deltas and must not show the text twice (it reconciles the streamed text instead), and an
//! `abandoned_blocks` marker discards the partial text of a message (the CLI re-sends the answer under a
//! new message id).
//!
//! Blocks are updated in place (interior mutability) and carry a version: applying a token costs O(1)
//! and the view re-renders only the blocks whose version changed. Plain Rust: tested natively.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use agentstream_wire::{Message, MessageType};
use serde_json::Value;

/// The most raw JSON kept per block (shown on hover).
const MAX_RAW_BYTES: usize = 4096;

/// What a block shows.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockKind {
    /// An assistant turn's text.
    Text { text: String, reconciled: bool },
    /// Thinking, shown collapsed.
    Thinking { text: String },
    /// A tool call: its name, its input as it streamed, and its result once back.
    Tool {
        name: String,
        input: String,
        result: Option<String>,
        is_error: bool,
    },
    /// Text the user or the CLI put into the conversation.
    User { text: String },
    /// A quiet line (status, retry, init…).
    System { subtype: String, text: String },
    /// Something went wrong in the stream (a line that could not be parsed…).
    Error { text: String },
    /// The run's end.
    Result {
        text: String,
        is_error: bool,
        cost_usd: Option<f64>,
        output_tokens: Option<u64>,
        duration_ms: Option<i64>,
        num_turns: Option<u64>,
    },
}

/// One block of the transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Stable across updates: the view's key.
    pub key: u64,
    /// Changes whenever the block does.
    pub version: u64,
    pub kind: BlockKind,
    /// Hidden: the partial text of an abandoned attempt.
    pub discarded: bool,
    pub message_type: MessageType,
    pub first_sequence: i64,
    pub last_sequence: i64,
    /// How many messages it is made of.
    pub messages: usize,
    pub created_at: String,
    /// The raw line of its latest message (cut), shown on hover.
    pub raw: String,
}

/// A block shared with the view, updated in place.
pub type BlockRef = Rc<RefCell<Block>>;

/// The transcript of one agent.
#[derive(Default)]
pub struct Transcript {
    blocks: Vec<BlockRef>,
    /// Streaming blocks by `(messageId, blockIndex)`.
    by_block: HashMap<(String, i64), usize>,
    /// Text blocks of each message id, in order, for reconciling whole blocks.
    texts_of_message: HashMap<String, Vec<usize>>,
    /// Tool blocks by tool-use id.
    tools: HashMap<String, usize>,
    /// The text block that deltas without a message id go to.
    open_text: Option<usize>,
    next_key: u64,
    version: u64,
    /// The latest usage reported (`message_delta`).
    pub usage: Option<Value>,
}

fn meta_str(m: &Message, key: &str) -> Option<String> {
    m.metadata
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn cut(raw: &Option<String>) -> String {
    let raw = raw.as_deref().unwrap_or_default();
    let mut end = raw.len().min(MAX_RAW_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    raw[..end].to_owned()
}

impl Transcript {
    /// An empty transcript.
    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    /// The blocks, in order (discarded ones included: the view hides them).
    pub fn blocks(&self) -> &[BlockRef] {
        &self.blocks
    }

    /// A version that changes whenever any block does.
    #[cfg(test)]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The joined text of the visible assistant text blocks (what a reader sees).
    #[cfg(test)]
    pub fn visible_text(&self) -> String {
        self.blocks
            .iter()
            .filter_map(|b| {
                let b = b.borrow();
                match (&b.kind, b.discarded) {
                    (BlockKind::Text { text, .. }, false) => Some(text.clone()),
                    _ => None,
                }
            })
            .collect::<Vec<_>>()
            .join("")
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn push_block(&mut self, m: &Message, kind: BlockKind) -> usize {
        self.next_key += 1;
        let version = self.bump();
        self.blocks.push(Rc::new(RefCell::new(Block {
            key: self.next_key,
            version,
            kind,
            discarded: false,
            message_type: m.message_type,
            first_sequence: m.sequence_number,
            last_sequence: m.sequence_number,
            messages: 1,
            created_at: m.created_at.clone(),
            raw: cut(&m.raw),
        })));
        self.blocks.len() - 1
    }

    /// Updates block `i` with message `m`.
    fn update(&mut self, i: usize, m: &Message, change: impl FnOnce(&mut BlockKind)) {
        let version = self.bump();
        let mut b = self.blocks[i].borrow_mut();
        change(&mut b.kind);
        b.version = version;
        b.last_sequence = m.sequence_number;
        b.messages += 1;
        b.raw = cut(&m.raw);
    }

    /// Applies the next message (they come in sequence order, each once).
    pub fn apply(&mut self, m: &Message) {
        let event = m
            .metadata
            .get("eventType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let message_id = meta_str(m, "messageId");
        let block_index = m
            .metadata
            .get("blockIndex")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let stream_key = message_id.clone().map(|id| (id, block_index));
        match event {
            "content_delta" => {
                let found = match &stream_key {
                    Some(k) => self.by_block.get(k).copied(),
                    None => self.open_text,
                };
                match found {
                    Some(i) => self.update(i, m, |k| {
                        if let BlockKind::Text { text, .. } = k {
                            text.push_str(&m.content);
                        }
                    }),
                    None => {
                        let i = self.push_block(
                            m,
                            BlockKind::Text {
                                text: m.content.clone(),
                                reconciled: false,
                            },
                        );
                        match stream_key {
                            Some(k) => {
                                self.by_block.insert(k, i);
                                if let Some(id) = message_id {
                                    self.texts_of_message.entry(id).or_default().push(i);
                                }
                            }
                            None => self.open_text = Some(i),
                        }
                    }
                }
            }
            "thinking_delta" => match stream_key
                .as_ref()
                .and_then(|k| self.by_block.get(k).copied())
            {
                Some(i) => self.update(i, m, |k| {
                    if let BlockKind::Thinking { text } = k {
                        text.push_str(&m.content);
                    }
                }),
                None => {
                    let i = self.push_block(
                        m,
                        BlockKind::Thinking {
                            text: m.content.clone(),
                        },
                    );
                    if let Some(k) = stream_key {
                        self.by_block.insert(k, i);
                    }
                }
            },
            "tool_use" => {
                let i = self.push_block(
                    m,
                    BlockKind::Tool {
                        name: m.content.clone(),
                        input: String::new(),
                        result: None,
                        is_error: false,
                    },
                );
                if let Some(id) = meta_str(m, "toolUseId") {
                    self.tools.insert(id, i);
                }
                if let Some(k) = stream_key {
                    self.by_block.insert(k, i);
                }
                self.open_text = None;
            }
            "tool_input_delta" => {
                if let Some(i) = stream_key
                    .as_ref()
                    .and_then(|k| self.by_block.get(k).copied())
                {
                    self.update(i, m, |k| {
                        if let BlockKind::Tool { input, .. } = k {
                            input.push_str(&m.content);
                        }
                    });
                }
            }
            "tool_result" => {
                let is_error = m
                    .metadata
                    .get("isError")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                match meta_str(m, "toolUseId").and_then(|id| self.tools.get(&id).copied()) {
                    Some(i) => self.update(i, m, |k| {
                        if let BlockKind::Tool {
                            result,
                            is_error: e,
                            ..
                        } = k
                        {
                            *result = Some(m.content.clone());
                            *e = is_error;
                        }
                    }),
                    None => {
                        self.push_block(
                            m,
                            BlockKind::Tool {
                                name: "tool".into(),
                                input: String::new(),
                                result: Some(m.content.clone()),
                                is_error,
                            },
                        );
                    }
                }
                self.open_text = None;
            }
            "assistant_message" => self.reconcile(m, message_id),
            "abandoned_blocks" => {
                if let Some(id) = message_id {
                    let from = m
                        .metadata
                        .get("fromBlockIndex")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    self.abandon(&id, from);
                }
            }
            "message_delta" => {
                self.usage = m.metadata.get("usage").cloned().filter(|u| !u.is_null())
            }
            "signature_delta" => {}
            "result" => {
                let num = |k: &str| m.metadata.get(k);
                let output_tokens = num("usage")
                    .and_then(|u| u.get("output_tokens"))
                    .and_then(Value::as_u64);
                self.push_block(
                    m,
                    BlockKind::Result {
                        text: m.content.clone(),
                        is_error: num("isError").and_then(Value::as_bool).unwrap_or(false),
                        cost_usd: num("totalCostUsd").and_then(Value::as_f64),
                        output_tokens,
                        duration_ms: num("durationMs").and_then(Value::as_i64),
                        num_turns: num("numTurns").and_then(Value::as_u64),
                    },
                );
                self.open_text = None;
            }
            _ => match m.message_type {
                MessageType::Error => {
                    self.push_block(
                        m,
                        BlockKind::Error {
                            text: m.content.clone(),
                        },
                    );
                }
                MessageType::User => {
                    self.push_block(
                        m,
                        BlockKind::User {
                            text: m.content.clone(),
                        },
                    );
                    self.open_text = None;
                }
                MessageType::Assistant => {
                    // An assistant message of no known kind: show its text as a turn of its own.
                    self.push_block(
                        m,
                        BlockKind::Text {
                            text: m.content.clone(),
                            reconciled: true,
                        },
                    );
                }
                _ => {
                    let subtype = meta_str(m, "subtype").unwrap_or_else(|| event.to_owned());
                    let text = if m.content.is_empty() && event == "unknown" {
                        "(a line this version does not know)".to_owned()
                    } else {
                        m.content.clone()
                    };
                    if !text.is_empty() {
                        self.push_block(m, BlockKind::System { subtype, text });
                    }
                }
            },
        }
    }

    /// A whole block after its deltas: corrects the streamed text (never shows it twice), or shows the
    /// block when nothing of it streamed (an API error, a non-streaming fallback answer).
    fn reconcile(&mut self, m: &Message, message_id: Option<String>) {
        let block_type = meta_str(m, "blockType").unwrap_or_default();
        match block_type.as_str() {
            "text" => {
                let target = message_id.as_ref().and_then(|id| {
                    self.texts_of_message.get(id).and_then(|list| {
                        list.iter().copied().find(|&i| {
                            let b = self.blocks[i].borrow();
                            !b.discarded
                                && matches!(
                                    b.kind,
                                    BlockKind::Text {
                                        reconciled: false,
                                        ..
                                    }
                                )
                        })
                    })
                });
                match target {
                    Some(i) => self.update(i, m, |k| {
                        if let BlockKind::Text { text, reconciled } = k {
                            if *text != m.content {
                                *text = m.content.clone();
                            }
                            *reconciled = true;
                        }
                    }),
                    None => {
                        let i = self.push_block(
                            m,
                            BlockKind::Text {
                                text: m.content.clone(),
                                reconciled: true,
                            },
                        );
                        if let Some(id) = message_id {
                            self.texts_of_message.entry(id).or_default().push(i);
                        }
                    }
                }
                self.open_text = None;
            }
            "tool_use" => {
                let known = meta_str(m, "toolUseId").and_then(|id| self.tools.get(&id).copied());
                match known {
                    Some(i) => self.update(i, m, |k| {
                        if let BlockKind::Tool { input, .. } = k {
                            *input = m.content.clone();
                        }
                    }),
                    None => {
                        let name = meta_str(m, "toolName").unwrap_or_else(|| "tool".into());
                        let i = self.push_block(
                            m,
                            BlockKind::Tool {
                                name,
                                input: m.content.clone(),
                                result: None,
                                is_error: false,
                            },
                        );
                        if let Some(id) = meta_str(m, "toolUseId") {
                            self.tools.insert(id, i);
                        }
                    }
                }
            }
            "thinking" => {
                let streamed = self.blocks.iter().any(|b| {
                    let b = b.borrow();
                    !b.discarded
                        && matches!(&b.kind, BlockKind::Thinking { text } if *text == m.content)
                });
                if !streamed {
                    self.push_block(
                        m,
                        BlockKind::Thinking {
                            text: m.content.clone(),
                        },
                    );
                }
            }
            _ => {}
        }
    }

    /// Hides what streamed of `message_id` from block `from` on.
    fn abandon(&mut self, message_id: &str, from: i64) {
        let hidden: Vec<usize> = self
            .by_block
            .iter()
            .filter(|((id, index), _)| id == message_id && *index >= from)
            .map(|(_, &i)| i)
            .collect();
        self.by_block
            .retain(|(id, index), _| !(id == message_id && *index >= from));
        if let Some(list) = self.texts_of_message.get_mut(message_id) {
            list.retain(|i| !hidden.contains(i));
        }
        for i in hidden {
            let version = self.bump();
            let mut b = self.blocks[i].borrow_mut();
            b.discarded = true;
            b.version = version;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    struct Feed {
        seq: i64,
        t: Transcript,
    }

    impl Feed {
        fn new() -> Self {
            Feed {
                seq: 0,
                t: Transcript::new(),
            }
        }

        fn push(&mut self, kind: MessageType, content: &str, metadata: Value) {
            self.seq += 1;
            self.t.apply(&Message {
                id: Uuid::from_u128(self.seq as u128),
                agent_id: Uuid::nil(),
                sequence_number: self.seq,
                message_type: kind,
                role: None,
                content: content.into(),
                raw: Some("{}".into()),
                metadata,
                created_at: String::new(),
            });
        }

        fn delta(&mut self, msg: &str, index: i64, text: &str) {
            self.push(
                MessageType::Assistant,
                text,
                json!({"eventType": "content_delta", "messageId": msg, "blockIndex": index}),
            );
        }

        fn whole(&mut self, msg: &str, text: &str) {
            self.push(
                MessageType::Assistant,
                text,
                json!({"eventType": "assistant_message", "messageId": msg, "blockType": "text"}),
            );
        }

        fn kinds(&self) -> Vec<BlockKind> {
            self.t
                .blocks()
                .iter()
                .filter(|b| !b.borrow().discarded)
                .map(|b| b.borrow().kind.clone())
                .collect()
        }
    }

    #[test]
    fn deltas_join_into_one_text_and_the_whole_block_is_not_shown_twice() {
        let mut f = Feed::new();
        for tok in ["Hel", "lo", " world"] {
            f.delta("m1", 0, tok);
        }
        f.whole("m1", "Hello world");
        assert_eq!(f.t.visible_text(), "Hello world");
        assert_eq!(f.t.blocks().len(), 1);
        let b = f.t.blocks()[0].borrow();
        assert_eq!((b.first_sequence, b.last_sequence, b.messages), (1, 4, 4));
    }

    #[test]
    fn a_whole_block_without_deltas_is_shown() {
        let mut f = Feed::new();
        f.push(MessageType::Assistant, "API Error: 500", json!({"eventType": "assistant_message", "messageId": "x", "blockType": "text", "synthetic": true}));
        assert_eq!(f.t.visible_text(), "API Error: 500");
    }

    #[test]
    fn an_abandoned_attempt_is_replaced_by_the_resent_answer() {
        let mut f = Feed::new();
        f.delta("m1", 0, "partial ans");
        f.push(
            MessageType::System,
            "",
            json!({"eventType": "abandoned_blocks", "messageId": "m1", "fromBlockIndex": 0}),
        );
        f.whole("m2", "the full answer");
        assert_eq!(f.t.visible_text(), "the full answer");
    }

    #[test]
    fn tool_calls_become_cards_with_input_and_result() {
        let mut f = Feed::new();
        f.delta("m1", 0, "Running it.");
        f.push(
            MessageType::Tool,
            "Bash",
            json!({"eventType": "tool_use", "messageId": "m1", "blockIndex": 1, "toolUseId": "t1"}),
        );
        for part in ["{\"comm", "and\": \"echo hi\"}"] {
            f.push(
                MessageType::Tool,
                part,
                json!({"eventType": "tool_input_delta", "messageId": "m1", "blockIndex": 1}),
            );
        }
        f.whole("m1", "Running it.");
        f.push(MessageType::Assistant, "{\"command\":\"echo hi\"}", json!({"eventType": "assistant_message", "messageId": "m1", "blockType": "tool_use", "toolUseId": "t1"}));
        f.push(
            MessageType::Tool,
            "hi",
            json!({"eventType": "tool_result", "toolUseId": "t1", "isError": false}),
        );
        f.delta("m2", 0, "Done.");
        let kinds = f.kinds();
        assert_eq!(kinds.len(), 3);
        assert_eq!(
            kinds[0],
            BlockKind::Text {
                text: "Running it.".into(),
                reconciled: true
            }
        );
        assert_eq!(
            kinds[1],
            BlockKind::Tool {
                name: "Bash".into(),
                input: "{\"command\":\"echo hi\"}".into(),
                result: Some("hi".into()),
                is_error: false
            }
        );
        assert_eq!(
            kinds[2],
            BlockKind::Text {
                text: "Done.".into(),
                reconciled: false
            }
        );
    }

    #[test]
    fn quiet_lines_results_and_versions() {
        let mut f = Feed::new();
        f.push(
            MessageType::System,
            "session started with model m",
            json!({"eventType": "system", "subtype": "init"}),
        );
        f.push(
            MessageType::System,
            "",
            json!({"eventType": "message_delta", "usage": {"output_tokens": 3}}),
        );
        let before = f.t.version();
        f.delta("m1", 0, "a");
        assert!(f.t.version() > before);
        f.push(MessageType::Result, "a", json!({"eventType": "result", "isError": false, "totalCostUsd": 0.5, "durationMs": 10, "usage": {"output_tokens": 3}}));
        f.push(
            MessageType::Error,
            "not JSON",
            json!({"eventType": "parse_error"}),
        );
        let kinds = f.kinds();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert!(
            matches!(kinds[2], BlockKind::Result { cost_usd: Some(c), output_tokens: Some(3), .. } if c == 0.5)
        );
        assert_eq!(f.t.usage, Some(json!({"output_tokens": 3})));
    }

    #[test]
    fn twenty_thousand_tokens_stay_one_block_updated_in_place() {
        let mut f = Feed::new();
        for i in 0..20_000 {
            f.delta("m1", 0, if i % 2 == 0 { "a" } else { "b" });
        }
        assert_eq!(f.t.blocks().len(), 1);
        assert_eq!(f.t.visible_text().len(), 20_000);
    }
}
