//! How the webhook consumers learn, with low latency, that an agent has something new: the room
//! registry hands each broadcast batch's agents to [`Wake::touched`], which passes them to every
//! consumer task. A consumer reads what to deliver from the database, never from these frames (a
//! frame is broadcast after its commit, so the database has it), and one that misses a wake (its
//! channel overflowed) rescans every agent.

use std::sync::Arc;

use agentstream_wire::ServerEvent;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::gateway::registry::{EventFrame, Scope};

/// Batches a consumer may fall behind before it rescans instead.
const CAPACITY: usize = 1024;

/// The agents of broadcast batches, for the consumer tasks.
#[derive(Clone)]
pub struct Wake(broadcast::Sender<Arc<[Uuid]>>);

impl Default for Wake {
    fn default() -> Self {
        Wake(broadcast::channel(CAPACITY).0)
    }
}

impl Wake {
    /// Passes on the agents `frames` concern. Costs nothing while no consumer runs; otherwise one
    /// pass over the batch (lifecycle frames, which are rare, are parsed for their agent).
    pub fn touched(&self, frames: &[EventFrame]) {
        if self.0.receiver_count() == 0 {
            return;
        }
        let agents = agents_of(frames);
        if !agents.is_empty() {
            let _ = self.0.send(agents.into());
        }
    }

    /// A new consumer's feed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[Uuid]>> {
        self.0.subscribe()
    }
}

/// The agents `frames` concern, each once.
fn agents_of(frames: &[EventFrame]) -> Vec<Uuid> {
    let mut agents: Vec<Uuid> = Vec::new();
    for frame in frames {
        let agent = match frame.scope {
            Scope::Room(agent) => Some(agent),
            Scope::All => match serde_json::from_str::<ServerEvent>(&frame.frame) {
                Ok(ServerEvent::AgentCreated(c)) => Some(c.agent.id),
                Ok(ServerEvent::AgentStatus(s)) => Some(s.agent_id),
                Ok(ServerEvent::AgentDeleted(d)) => Some(d.agent_id),
                _ => None,
            },
        };
        // A batch is mostly one agent's run of messages: comparing with the last one added is
        // usually enough.
        if let Some(agent) = agent {
            if agents.last() != Some(&agent) && !agents.contains(&agent) {
                agents.push(agent);
            }
        }
    }
    agents
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::{AgentDeleted, AgentStatus, AgentStatusChanged};

    #[test]
    fn a_batch_names_each_agent_of_its_messages_and_lifecycle_events_once() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut frames: Vec<EventFrame> = (1..=3)
            .map(|s| EventFrame::from_frame(Scope::Room(a), Some(s), format!("m{s}")))
            .collect();
        frames.push(EventFrame::new(
            Scope::All,
            &ServerEvent::AgentStatus(AgentStatusChanged {
                agent_id: b,
                status: AgentStatus::Running,
                timestamp: String::new(),
                usage: None,
            }),
        ));
        frames.push(EventFrame::new(
            Scope::All,
            &ServerEvent::AgentDeleted(AgentDeleted {
                agent_id: a,
                timestamp: String::new(),
                purged: true,
            }),
        ));
        assert_eq!(agents_of(&frames), vec![a, b]);
    }
}
