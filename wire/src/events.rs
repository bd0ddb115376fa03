//! What the server sends over the WebSocket: every frame is `{"event": "<name>", "data": {…}}`
//! ([`ServerEvent`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::errors::ErrorInfo;
use crate::names::AgentStatus;
use crate::rest::{Agent, StoredMessage};
use crate::usage::UsageTotals;

/// `agent:created`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentCreated {
    pub agent: Agent,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
}

/// `agent:status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentStatusChanged {
    pub agent_id: Uuid,
    pub status: AgentStatus,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
    /// Extension: on a status that ends a turn, the agent's usage totals with that turn counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageTotals>,
}

/// `agent:deleted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentDeleted {
    pub agent_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
    /// Extension: true when the agent and its history were removed (`?purge=true`).
    #[serde(default)]
    pub purged: bool,
}

/// `agent:message`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentMessage {
    pub agent_id: Uuid,
    pub message: StoredMessage,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
}

/// The `result` of `agent:complete`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CompletionResult {
    /// `completed` or `failed`.
    pub status: AgentStatus,
    /// From the runner's start to its end.
    pub duration_ms: i64,
    /// The sequence number of the agent's last message.
    pub last_sequence: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

/// `agent:complete`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentComplete {
    pub agent_id: Uuid,
    pub result: CompletionResult,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
}

/// `agent:error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentError {
    pub agent_id: Uuid,
    pub error: ErrorInfo,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
}

/// `subscribed`: the reply to `subscribe`, sent before any replayed message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Subscribed {
    pub agent_id: Uuid,
    /// The highest sequence number stored when the subscription took effect (0: none yet).
    pub last_sequence: i64,
    /// Extension: the agent's status at that moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
    /// Extension, sent when the subscribe gave `since`: `true` when every message after `since` follows
    /// (the position was recovered); `false` when `since` lies beyond the last stored message, so the
    /// client holds messages this server does not have and must reload the history instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
}

/// `unsubscribed` (extension): the reply to `unsubscribe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Unsubscribed {
    pub agent_id: Uuid,
}

/// `error`: a frame the server could not act on. The connection stays open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FrameError {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::errors::ErrorCode))]
    pub code: String,
    pub message: String,
    /// Extension: the agent the failed request named, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    /// Extension: `false` on a failed `subscribe` that gave `since` — the position cannot be recovered
    /// (the agent is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
}

/// Every frame the server sends: `{"event": "<name>", "data": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", content = "data")]
pub enum ServerEvent {
    #[serde(rename = "agent:created")]
    AgentCreated(AgentCreated),
    #[serde(rename = "agent:status")]
    AgentStatus(AgentStatusChanged),
    #[serde(rename = "agent:deleted")]
    AgentDeleted(AgentDeleted),
    #[serde(rename = "agent:message")]
    AgentMessage(AgentMessage),
    #[serde(rename = "agent:complete")]
    AgentComplete(AgentComplete),
    #[serde(rename = "agent:error")]
    AgentError(AgentError),
    #[serde(rename = "subscribed")]
    Subscribed(Subscribed),
    #[serde(rename = "unsubscribed")]
    Unsubscribed(Unsubscribed),
    #[serde(rename = "error")]
    Error(FrameError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_event_has_protocol_shape() {
        let id = Uuid::nil();
        let event = ServerEvent::AgentStatus(AgentStatusChanged {
            agent_id: id,
            status: AgentStatus::Running,
            timestamp: "2026-11-24T10:30:00.123Z".into(),
            usage: None,
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "agent:status", "data": {
                "agentId": id, "status": "running", "timestamp": "2026-11-24T10:30:00.123Z"}})
        );
        let back: ServerEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
