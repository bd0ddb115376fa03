//! The bodies a consumer POSTs: WebSocket frames (`{"event", "data"}`) exactly as the protocol defines
//! them, the lifecycle ones made from the agent's stored row as `instances/lifecycle.rs` makes those a
//! listener missed. Lifecycle events are not a stored log: a consumer that fell behind gets the
//! agent's status as it is now, once (statuses it passed meanwhile are not made up), and always the
//! end of each turn. Each lifecycle body also carries `data.lastSequence`, the agent's last message
//! before it, so that a receiver can tell a repeat (at least once) from a new event.

use agentstream_wire::{
    keys, Agent, AgentComplete, AgentCreated, AgentDeleted, AgentError, AgentStatus,
    AgentStatusChanged, CompletionResult, ErrorInfo, EventType, ServerEvent, StoredMessage,
    WebhookEvent,
};
use uuid::Uuid;

use super::store::{Position, Snapshot};

/// One body to POST and its kind (a consumer POSTs only the kinds it asked for).
#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    pub kind: WebhookEvent,
    pub text: String,
}

/// `event` as its frame, with `data.lastSequence`.
fn lifecycle(kind: WebhookEvent, event: &ServerEvent, last_sequence: i64) -> Body {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(data) = value.get_mut("data").and_then(|d| d.as_object_mut()) {
        data.insert("lastSequence".into(), last_sequence.into());
    }
    Body {
        kind,
        text: value.to_string(),
    }
}

/// `agent:created`, for an agent the consumer had not been told of (before its first message).
pub fn created(agent: &Agent, timestamp: &str) -> Body {
    lifecycle(
        WebhookEvent::Created,
        &ServerEvent::AgentCreated(AgentCreated {
            agent: agent.clone(),
            timestamp: timestamp.to_owned(),
        }),
        0,
    )
}

/// `agent:deleted` of an agent whose row is gone (`purged`), after its last message delivered.
pub fn purged(agent: Uuid, last_sequence: i64, timestamp: &str) -> Body {
    lifecycle(
        WebhookEvent::Deleted,
        &ServerEvent::AgentDeleted(AgentDeleted {
            agent_id: agent,
            timestamp: timestamp.to_owned(),
            purged: true,
        }),
        last_sequence,
    )
}

/// Whether the consumer owes the receiver the agent's status: it was never told this status, or the
/// status ends a turn and a turn ended since it was told (`turn_ended` says whether a `result` was
/// stored after `position.status_sequence`).
pub fn status_due(position: &Position, snapshot: &Snapshot, turn_ended: bool) -> bool {
    if position.status.as_deref() != Some(snapshot.status.as_str()) {
        return true;
    }
    let ends_a_turn = snapshot
        .status
        .parse::<AgentStatus>()
        .is_ok_and(AgentStatus::is_terminal);
    ends_a_turn && snapshot.last_sequence > position.status_sequence && turn_ended
}

/// The events of the agent's stored status, in the order the WebSocket sends them: `agent:status`,
/// then `agent:error` (failed), `agent:complete` (completed or failed), `agent:deleted` (terminated,
/// which only a DELETE does). `last` is the agent's last message, when there is one.
pub fn status(
    agent: Uuid,
    snapshot: &Snapshot,
    last: Option<&StoredMessage>,
    timestamp: &str,
) -> Vec<Body> {
    let Ok(status) = snapshot.status.parse::<AgentStatus>() else {
        return Vec::new();
    };
    let at = snapshot.last_sequence;
    let now = timestamp.to_owned();
    let mut bodies = vec![lifecycle(
        WebhookEvent::Status,
        &ServerEvent::AgentStatus(AgentStatusChanged {
            agent_id: agent,
            status,
            timestamp: now.clone(),
            usage: snapshot.usage.clone(),
        }),
        at,
    )];
    if let (AgentStatus::Failed, Some((code, message))) = (status, &snapshot.error) {
        bodies.push(lifecycle(
            WebhookEvent::Error,
            &ServerEvent::AgentError(AgentError {
                agent_id: agent,
                error: ErrorInfo {
                    code: code.clone(),
                    message: message.clone(),
                },
                timestamp: now.clone(),
            }),
            at,
        ));
    }
    if matches!(status, AgentStatus::Completed | AgentStatus::Failed) {
        let result = last.filter(|m| EventType::of(&m.metadata) == Some(EventType::Result));
        let meta = |key: &str| result.map(|m| m.metadata[key].clone());
        bodies.push(lifecycle(
            WebhookEvent::Complete,
            &ServerEvent::AgentComplete(AgentComplete {
                agent_id: agent,
                result: CompletionResult {
                    status,
                    duration_ms: meta(keys::DURATION_MS)
                        .and_then(|v| v.as_i64())
                        .unwrap_or(0),
                    last_sequence: at,
                    total_cost_usd: meta(keys::TOTAL_COST_USD).and_then(|v| v.as_f64()),
                    num_turns: meta(keys::NUM_TURNS).and_then(|v| v.as_u64()),
                    usage: meta(keys::USAGE).filter(|v| !v.is_null()),
                },
                timestamp: now.clone(),
            }),
            at,
        ));
    }
    if status == AgentStatus::Terminated {
        bodies.push(lifecycle(
            WebhookEvent::Deleted,
            &ServerEvent::AgentDeleted(AgentDeleted {
                agent_id: agent,
                timestamp: now,
                purged: false,
            }),
            at,
        ));
    }
    bodies
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn snapshot(status: &str, last: i64) -> Snapshot {
        Snapshot {
            usage: None,
            status: status.into(),
            error: None,
            last_sequence: last,
        }
    }

    fn told(status: &str, at: i64) -> Position {
        Position {
            last_sequence: at,
            status: Some(status.into()),
            status_sequence: at,
        }
    }

    #[test]
    fn a_status_is_due_once_and_again_only_when_another_turn_ended() {
        assert!(status_due(
            &Position::default(),
            &snapshot("running", 0),
            false
        ));
        assert!(!status_due(
            &told("running", 3),
            &snapshot("running", 9),
            false
        ));
        assert!(status_due(
            &told("running", 3),
            &snapshot("completed", 9),
            false
        ));
        assert!(!status_due(
            &told("completed", 9),
            &snapshot("completed", 9),
            true
        ));
        // A follow-up is stored before its turn starts: no second `completed` for it alone.
        assert!(!status_due(
            &told("completed", 9),
            &snapshot("completed", 10),
            false
        ));
        // A whole second turn passed while the consumer was behind.
        assert!(status_due(
            &told("completed", 9),
            &snapshot("completed", 20),
            true
        ));
    }

    #[test]
    fn a_failure_is_sent_as_the_websocket_sends_it_each_with_its_last_sequence() {
        let agent = Uuid::now_v7();
        let mut failed = snapshot("failed", 7);
        failed.error = Some(("cli_exit".into(), "exit 1".into()));
        let bodies = status(agent, &failed, None, "t");
        let kinds: Vec<WebhookEvent> = bodies.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            [
                WebhookEvent::Status,
                WebhookEvent::Error,
                WebhookEvent::Complete
            ]
        );
        for body in &bodies {
            let v: Value = serde_json::from_str(&body.text).unwrap();
            assert_eq!(v["event"], body.kind.as_str());
            assert_eq!(v["data"]["agentId"], agent.to_string());
            assert_eq!(v["data"]["lastSequence"], 7);
            // Still a frame of the protocol.
            assert!(serde_json::from_str::<ServerEvent>(&body.text).is_ok());
        }
        let v: Value = serde_json::from_str(&bodies[2].text).unwrap();
        assert_eq!(v["data"]["result"]["lastSequence"], 7);
        assert_eq!(v["data"]["result"]["status"], "failed");
        let terminated = status(agent, &snapshot("terminated", 3), None, "t");
        assert_eq!(terminated.len(), 2);
        assert_eq!(terminated[1].kind, WebhookEvent::Deleted);
        assert!(status(agent, &snapshot("nonsense", 3), None, "t").is_empty());
    }
}
