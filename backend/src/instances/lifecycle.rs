//! The lifecycle events of another instance's agents that a listener missed (its connection was down
//! when they were announced), made again from what the database says: a status differs from the last
//! one passed on → `agent:status` (and for a run that ended, `agent:error` and `agent:complete`); an agent
//! whose row is gone → `agent:deleted`.

use std::collections::HashMap;

use agentstream_wire::{
    keys, Agent, AgentComplete, AgentDeleted, AgentError, AgentStatus, AgentStatusChanged,
    CompletionResult, EventType, ServerEvent, StoredMessage,
};
use uuid::Uuid;

use crate::clock;
use crate::gateway::registry::{EventFrame, Scope};

/// The last status passed on for each agent.
#[derive(Default)]
pub struct Statuses(HashMap<Uuid, AgentStatus>);

impl Statuses {
    /// Notes what an event frame passed on says about an agent's status (its creation included: an
    /// agent of another instance is known from then on).
    pub fn note(&mut self, frame: &str) {
        // Cheap test first: most frames are neither.
        if !frame.starts_with(r#"{"event":"agent:status""#)
            && !frame.starts_with(r#"{"event":"agent:created""#)
        {
            return;
        }
        match serde_json::from_str::<ServerEvent>(frame) {
            Ok(ServerEvent::AgentStatus(s)) => {
                self.0.insert(s.agent_id, s.status);
            }
            Ok(ServerEvent::AgentCreated(c)) => {
                self.0.entry(c.agent.id).or_insert(c.agent.status);
            }
            _ => {}
        }
    }

    /// The agents with a status passed on.
    pub fn agents(&self) -> Vec<Uuid> {
        self.0.keys().copied().collect()
    }

    /// The events that bring a client from the last status passed on to `agent`'s stored one (`None`:
    /// the agent is gone); `last` is its last result message, `last_sequence` its last message's number.
    pub fn catch_up(
        &mut self,
        id: Uuid,
        agent: Option<&Agent>,
        last: Option<&StoredMessage>,
        last_sequence: i64,
    ) -> Vec<EventFrame> {
        let now = clock::now();
        let Some(agent) = agent else {
            return match self.0.remove(&id) {
                Some(_) => vec![EventFrame::new(
                    Scope::All,
                    &ServerEvent::AgentDeleted(AgentDeleted {
                        agent_id: id,
                        timestamp: now,
                        purged: true,
                    }),
                )],
                None => Vec::new(),
            };
        };
        // An agent never announced (this instance's own: it ignores its own announcements) is only
        // noted: its clients had its events from this instance.
        match self.0.insert(id, agent.status) {
            None => return Vec::new(),
            Some(before) if before == agent.status => return Vec::new(),
            Some(_) => {}
        }
        let mut frames = vec![EventFrame::new(
            Scope::All,
            &ServerEvent::AgentStatus(AgentStatusChanged {
                agent_id: id,
                status: agent.status,
                timestamp: now.clone(),
                usage: agent.status.is_terminal().then(|| agent.usage.clone()),
            }),
        )];
        if let Some(error) = &agent.error {
            frames.push(EventFrame::new(
                Scope::Room(id),
                &ServerEvent::AgentError(AgentError {
                    agent_id: id,
                    error: error.clone(),
                    timestamp: now.clone(),
                }),
            ));
        }
        if matches!(agent.status, AgentStatus::Completed | AgentStatus::Failed) {
            let result = last.filter(|m| EventType::of(&m.metadata) == Some(EventType::Result));
            let meta = |key: &str| result.map(|m| m.metadata[key].clone());
            frames.push(EventFrame::new(
                Scope::Room(id),
                &ServerEvent::AgentComplete(AgentComplete {
                    agent_id: id,
                    result: CompletionResult {
                        status: agent.status,
                        duration_ms: meta(keys::DURATION_MS)
                            .and_then(|v| v.as_i64())
                            .unwrap_or(0),
                        last_sequence,
                        total_cost_usd: meta(keys::TOTAL_COST_USD).and_then(|v| v.as_f64()),
                        num_turns: meta(keys::NUM_TURNS).and_then(|v| v.as_u64()),
                        usage: meta(keys::USAGE).filter(|v| !v.is_null()),
                    },
                    timestamp: now,
                }),
            ));
        }
        frames
    }
}
