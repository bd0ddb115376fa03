//! The two rules of Claude Code's stream: a whole `assistant` block arrives after its deltas and must not
//! show the text twice (it reconciles the streamed text instead), and an `abandoned_blocks` marker
//! discards the partial text of a message (the CLI re-sends the answer under a new message id).

use agentstream_wire::{keys, StoredMessage};

use super::{meta_str, BlockKind, Transcript};

impl Transcript {
    /// A whole block after its deltas: corrects the streamed text (never shows it twice), or shows the
    /// block when nothing of it streamed (an API error, a non-streaming fallback answer).
    pub(super) fn reconcile(&mut self, m: &StoredMessage, message_id: Option<String>) {
        let block_type = meta_str(m, keys::BLOCK_TYPE).unwrap_or_default();
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
                let known =
                    meta_str(m, keys::TOOL_USE_ID).and_then(|id| self.tools.get(&id).copied());
                match known {
                    Some(i) => self.update(i, m, |k| {
                        if let BlockKind::Tool { input, .. } = k {
                            *input = m.content.clone();
                        }
                    }),
                    None => {
                        let name = meta_str(m, keys::TOOL_NAME).unwrap_or_else(|| "tool".into());
                        let i = self.push_block(
                            m,
                            BlockKind::Tool {
                                name,
                                input: m.content.clone(),
                                result: None,
                                is_error: false,
                            },
                        );
                        if let Some(id) = meta_str(m, keys::TOOL_USE_ID) {
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
    pub(super) fn abandon(&mut self, message_id: &str, from: i64) {
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
