//! The transcript's blocks: what each shows, shared with the view and updated in place.

use std::cell::RefCell;
use std::rc::Rc;

use agentstream_wire::MessageType;

use super::PermissionCard;

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
    /// A follow-up the user sent (`user_input`): it starts a turn. `origin` is the server's mark on
    /// one it sent itself (`restart`).
    Prompt {
        text: String,
        origin: Option<String>,
    },
    /// A permission request, and what became of it.
    Permission(PermissionCard),
    /// A quiet line (status, retry, init…).
    System { subtype: String, text: String },
    /// Something went wrong in the stream (a line that could not be parsed…).
    Error { text: String },
    /// The run's end.
    Result {
        text: String,
        is_error: bool,
        /// The turn was interrupted (`terminalReason` `aborted_…`).
        interrupted: bool,
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

/// A message's raw line, cut to what a block keeps.
pub(super) fn cut(raw: &Option<String>) -> String {
    let raw = raw.as_deref().unwrap_or_default();
    let mut end = raw.len().min(MAX_RAW_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    raw[..end].to_owned()
}
