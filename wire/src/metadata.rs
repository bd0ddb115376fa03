//! A message's `metadata`: what kind of event of the agent it is ([`EventType`], `metadata.eventType`)
//! and the names of its other keys ([`keys`]).

use serde_json::Value;

use crate::names::{protocol_names, MessageType};

protocol_names! {
    /// What a stored message is, beyond its type: `metadata.eventType`. Each belongs to exactly one
    /// [`MessageType`] ([`EventType::message_type`]), so no line can pass for another kind of message.
    pub enum EventType {
        /// A piece of the answer's text (a token).
        ContentDelta = "content_delta",
        /// A piece of the model's thinking.
        ThinkingDelta = "thinking_delta",
        /// A whole block of the answer (text, thinking), after its pieces.
        AssistantMessage = "assistant_message",
        /// A tool call begins (its name, its id).
        ToolUse = "tool_use",
        /// A piece of a tool call's input.
        ToolInputDelta = "tool_input_delta",
        /// What a tool returned.
        ToolResult = "tool_result",
        /// A message of the user the agent reports (e.g. a replayed input).
        UserMessage = "user_message",
        /// A system line of the agent (init, status).
        System = "system",
        /// A line of a kind this server does not know; kept as it was.
        Unknown = "unknown",
        /// The end of a model message (its stop reason, usage).
        MessageDelta = "message_delta",
        /// Blocks of an attempt the agent abandoned (a retry follows): their partial text is void.
        AbandonedBlocks = "abandoned_blocks",
        /// A thinking block's signature.
        SignatureDelta = "signature_delta",
        /// A line that is not valid JSON of the agent's format.
        ParseError = "parse_error",
        /// A line longer than `runners.max_line_bytes`, cut.
        LineTooLong = "line_too_long",
        /// The run's result (cost, turns, duration).
        Result = "result",
        /// A follow-up the user sent (`POST /api/agents/{id}/messages`): the next turn's prompt.
        UserInput = "user_input",
        /// The agent asks to run a tool (`requestId`, `toolName`, `input`); answered with
        /// `POST /api/agents/{id}/permissions/{requestId}`.
        PermissionRequest = "permission_request",
        /// A client's answer to a permission request (`requestId`, `decision`).
        PermissionResponse = "permission_response",
    }
}

impl EventType {
    /// The type of every message of this kind.
    pub const fn message_type(self) -> MessageType {
        match self {
            EventType::ContentDelta | EventType::ThinkingDelta | EventType::AssistantMessage => {
                MessageType::Assistant
            }
            EventType::ToolUse | EventType::ToolInputDelta | EventType::ToolResult => {
                MessageType::Tool
            }
            EventType::UserMessage | EventType::UserInput | EventType::PermissionResponse => {
                MessageType::User
            }
            EventType::PermissionRequest => MessageType::Tool,
            EventType::System
            | EventType::Unknown
            | EventType::MessageDelta
            | EventType::AbandonedBlocks
            | EventType::SignatureDelta => MessageType::System,
            EventType::ParseError | EventType::LineTooLong => MessageType::Error,
            EventType::Result => MessageType::Result,
        }
    }

    /// The event type of a message's `metadata`; `None` when it has none this crate knows (a message
    /// of a newer server, or of another writer).
    pub fn of(metadata: &Value) -> Option<EventType> {
        metadata.get(keys::EVENT_TYPE)?.as_str()?.parse().ok()
    }
}

/// The keys of a message's `metadata`, as the protocol spells them.
pub mod keys {
    /// [`super::EventType`].
    pub const EVENT_TYPE: &str = "eventType";
    /// The model message a piece belongs to.
    pub const MESSAGE_ID: &str = "messageId";
    /// The block of the model message a piece belongs to.
    pub const BLOCK_INDEX: &str = "blockIndex";
    /// `text`, `thinking`, `tool_use`…
    pub const BLOCK_TYPE: &str = "blockType";
    /// The first block of an abandoned attempt.
    pub const FROM_BLOCK_INDEX: &str = "fromBlockIndex";
    /// The tool call a tool message belongs to.
    pub const TOOL_USE_ID: &str = "toolUseId";
    /// The tool calls a model message made.
    pub const TOOL_USE_IDS: &str = "toolUseIds";
    /// The tool's name.
    pub const TOOL_NAME: &str = "toolName";
    /// A system line's or result's subtype.
    pub const SUBTYPE: &str = "subtype";
    /// Whether a tool result or the run's result is an error.
    pub const IS_ERROR: &str = "isError";
    /// Whether the model message was made up by the CLI, not the model (`<synthetic>`).
    pub const SYNTHETIC: &str = "synthetic";
    /// Whether a user message was made up by the CLI.
    pub const IS_SYNTHETIC: &str = "isSynthetic";
    /// Token counts.
    pub const USAGE: &str = "usage";
    /// Why the model stopped.
    pub const STOP_REASON: &str = "stopReason";
    /// Why the run stopped.
    pub const TERMINAL_REASON: &str = "terminalReason";
    /// The agent CLI's session.
    pub const SESSION_ID: &str = "sessionId";
    /// The model.
    pub const MODEL: &str = "model";
    /// The run's cost.
    pub const TOTAL_COST_USD: &str = "totalCostUsd";
    /// The run's duration.
    pub const DURATION_MS: &str = "durationMs";
    /// The run's turns.
    pub const NUM_TURNS: &str = "numTurns";
    /// The length of a line too long.
    pub const LENGTH: &str = "length";
    /// A permission request's id (the agent's own), on the request and on its answer.
    pub const REQUEST_ID: &str = "requestId";
    /// The input of the tool call a permission request is about.
    pub const INPUT: &str = "input";
    /// A permission answer's decision: `allow` or `deny`.
    pub const DECISION: &str = "decision";
    /// The input the tool runs with instead of the requested one (an `allow` that edits it).
    pub const UPDATED_INPUT: &str = "updatedInput";
    /// An answer's note to the agent (why a call was denied).
    pub const MESSAGE: &str = "message";
    /// The answer also allows every later call of the tool for the rest of the session.
    pub const ALWAYS: &str = "always";
    /// A follow-up written by the server itself (`restart`: the turn a restart cut off is resumed).
    pub const ORIGIN: &str = "origin";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_type_belongs_to_one_message_type_and_reads_back_from_metadata() {
        for e in EventType::ALL {
            let metadata = serde_json::json!({ keys::EVENT_TYPE: e });
            assert_eq!(EventType::of(&metadata), Some(e));
            assert!(MessageType::ALL.contains(&e.message_type()));
        }
        assert_eq!(
            EventType::of(&serde_json::json!({"eventType": "dance"})),
            None
        );
        assert_eq!(EventType::of(&Value::Null), None);
    }
}
