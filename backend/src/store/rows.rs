//! Rows as the protocol shows them: an `agents` row as an [`Agent`], an `agent_messages` row as a
//! [`StoredMessage`]. A row that does not fit (written by something else than this server) is an error, not a
//! panic.

use agentstream_wire::{Agent, ErrorInfo, StoredMessage};
use entity::{agent, agent_message};
use sea_orm::DbErr;
use serde_json::Value;
use uuid::Uuid;

/// A row that does not fit the protocol (written by something else than this server).
pub(super) fn corrupt(what: &str, detail: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("stored {what} is not valid: {detail}"))
}

/// An `agents` row as the protocol's Agent.
pub fn agent_to_wire(m: agent::Model) -> Result<Agent, DbErr> {
    let usage = crate::usage::Amounts::of_agent(&m).to_wire();
    Ok(Agent {
        id: Uuid::parse_str(&m.id).map_err(|e| corrupt("agent id", e))?,
        agent_type: m.agent_type.parse().map_err(|e| corrupt("agent type", e))?,
        status: m.status.parse().map_err(|e| corrupt("agent status", e))?,
        prompt: m.prompt,
        created_at: m.created_at,
        started_at: m.started_at,
        completed_at: m.completed_at,
        configuration: serde_json::from_str(&m.configuration).unwrap_or(Value::Null),
        session_id: m.session_id,
        model: m.model,
        error: match (m.error_code, m.error_message) {
            (Some(code), message) => Some(ErrorInfo {
                code,
                message: message.unwrap_or_default(),
            }),
            _ => None,
        },
        usage,
    })
}

/// An `agent_messages` row as the protocol's StoredMessage.
pub fn message_to_wire(m: agent_message::Model) -> Result<StoredMessage, DbErr> {
    Ok(StoredMessage {
        id: Uuid::parse_str(&m.id).map_err(|e| corrupt("message id", e))?,
        agent_id: Uuid::parse_str(&m.agent_id).map_err(|e| corrupt("message agent id", e))?,
        sequence_number: m.sequence_number,
        message_type: m
            .message_type
            .parse()
            .map_err(|e| corrupt("message type", e))?,
        role: m.role,
        content: m.content,
        raw: m.raw,
        metadata: m
            .metadata
            .as_deref()
            .map(|s| serde_json::from_str(s).unwrap_or(Value::Null))
            .unwrap_or(Value::Null),
        created_at: m.created_at,
    })
}
