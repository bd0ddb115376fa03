//! The event frames a write broadcasts once it is committed, serialized here, once, for every session.

use agentstream_wire::{
    Agent, AgentComplete, AgentCreated, AgentDeleted, AgentError, AgentStatusChanged, ErrorInfo,
    ServerEvent, UsageTotals,
};
use uuid::Uuid;

use super::requests::SetStatus;
use crate::clock;
use crate::gateway::registry::{EventFrame, Scope};
use crate::json_text;
use crate::parser::ParsedMessage;

/// The `agent:message` frame of a stored message, written straight from the parsed line (no copy of
/// its text): the same JSON as [`ServerEvent::AgentMessage`] (a test holds them equal). `metadata` is
/// the message's metadata as JSON text.
pub(super) fn message(
    id: Uuid,
    agent_id: Uuid,
    sequence_number: i64,
    parsed: &ParsedMessage,
    metadata: &str,
    created_at: &str,
    timestamp: &str,
) -> EventFrame {
    let json = json_text::AgentMessageFrame {
        id,
        agent_id,
        sequence_number,
        message_type: parsed.message_type,
        role: parsed.role.as_deref(),
        content: &parsed.content,
        raw: Some(&parsed.raw),
        metadata: json_text::Metadata::Text(metadata),
        created_at,
        timestamp,
    }
    .to_json();
    EventFrame::from_frame(Scope::Room(agent_id), Some(sequence_number), json)
}

/// `agent:error`, to the agent's room.
pub(super) fn agent_error(agent_id: Uuid, error: ErrorInfo) -> EventFrame {
    EventFrame::new(
        Scope::Room(agent_id),
        &ServerEvent::AgentError(AgentError {
            agent_id,
            error,
            timestamp: clock::now(),
        }),
    )
}

/// `agent:created`, to everyone.
pub(super) fn created(agent: &Agent) -> EventFrame {
    EventFrame::new(
        Scope::All,
        &ServerEvent::AgentCreated(AgentCreated {
            agent: agent.clone(),
            timestamp: clock::now(),
        }),
    )
}

/// `agent:deleted`, to everyone.
pub(super) fn deleted(agent_id: Uuid, purged: bool) -> EventFrame {
    EventFrame::new(
        Scope::All,
        &ServerEvent::AgentDeleted(AgentDeleted {
            agent_id,
            timestamp: clock::now(),
            purged,
        }),
    )
}

/// `agent:status` (with the agent's `usage` totals at a turn's end), then `agent:error` and
/// `agent:complete` when the change carries them.
pub(super) fn status(change: &SetStatus, usage: Option<UsageTotals>) -> Vec<EventFrame> {
    let now = clock::now();
    let mut frames = vec![EventFrame::new(
        Scope::All,
        &ServerEvent::AgentStatus(AgentStatusChanged {
            agent_id: change.agent_id,
            status: change.status,
            timestamp: now.clone(),
            usage,
        }),
    )];
    if let Some(error) = &change.error {
        frames.push(agent_error(change.agent_id, error.clone()));
    }
    if let Some(result) = &change.complete {
        frames.push(EventFrame::new(
            Scope::Room(change.agent_id),
            &ServerEvent::AgentComplete(AgentComplete {
                agent_id: change.agent_id,
                result: result.clone(),
                timestamp: now,
            }),
        ));
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::{AgentMessage, MessageType, StoredMessage};

    #[test]
    fn a_message_event_is_exactly_the_protocols_agent_message() {
        let parsed = ParsedMessage {
            message_type: MessageType::Assistant,
            role: Some("assistant".into()),
            content: "quote \" backslash \\ newline \n emoji 🦀 nul \u{0}".into(),
            raw: r#"{"type":"stream_event","text":"a \"quoted\" word"}"#.into(),
            metadata: serde_json::json!({"eventType": "content_delta", "blockIndex": 0, "z": [1, null]}),
            outcome: None,
            session: None,
        };
        let (id, agent_id) = (Uuid::now_v7(), Uuid::now_v7());
        let metadata = parsed.metadata.to_string();
        let ours = message(
            id,
            agent_id,
            42,
            &parsed,
            &metadata,
            "2026-11-26T10:00:00.000Z",
            "ts",
        );
        let theirs = EventFrame::new(
            Scope::Room(agent_id),
            &ServerEvent::AgentMessage(AgentMessage {
                agent_id,
                message: StoredMessage {
                    id,
                    agent_id,
                    sequence_number: 42,
                    message_type: parsed.message_type,
                    role: parsed.role.clone(),
                    content: parsed.content.clone(),
                    raw: Some(parsed.raw.clone()),
                    metadata: parsed.metadata.clone(),
                    created_at: "2026-11-26T10:00:00.000Z".into(),
                },
                timestamp: "ts".into(),
            }),
        );
        assert_eq!(ours.frame, theirs.frame);
        assert_eq!((ours.seq, ours.scope), (Some(42), Scope::Room(agent_id)));
        let role_less = ParsedMessage {
            role: None,
            ..parsed
        };
        let frame = message(id, agent_id, 1, &role_less, &metadata, "c", "t").frame;
        assert!(frame.contains(r#""role":null"#), "{frame}");
    }
}
