//! Sequence numbers: each agent's `MAX(sequence_number) + 1`, kept in memory by the only writer.
//!
//! The persistence actor keeps each running agent's last number: read with `MAX` inside the batch's
//! transaction the first time, changed only once a write commits ([`Staged`]), dropped when the agent
//! ends. `UNIQUE(agent_id, sequence_number)` still guards: should anything else have written, the write
//! fails and its requests are retried one at a time with the numbers read afresh.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use super::insert::NewMessage;
use super::requests::Request;
use crate::json_text;
use crate::store;

/// The last sequence number of each agent that wrote through the persistence actor.
pub(super) type LastSequences = HashMap<Uuid, i64>;

/// Changes to [`LastSequences`] made by a transaction, applied once it commits.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) set: HashMap<Uuid, i64>,
    /// Agents that ended or were removed: their numbers are kept no longer.
    pub(super) forget: Vec<Uuid>,
}

impl Staged {
    /// The write committed: its numbers are kept, those of agents that ended are dropped.
    pub(super) fn apply(mut self, last: &mut LastSequences) {
        for id in self.forget {
            last.remove(&id);
            self.set.remove(&id);
        }
        last.extend(self.set);
    }
}

/// Stages the last number of every agent of `requests`' messages that is neither staged by this write
/// nor kept: read now, through `conn` (before [`numbered_rows`] numbers their rows).
pub(super) async fn resolve_last(
    conn: &impl ConnectionTrait,
    requests: &[Request],
    last: &LastSequences,
    staged: &mut Staged,
) -> Result<(), DbErr> {
    let unknown: Vec<Uuid> = requests
        .iter()
        .filter_map(|request| match request {
            Request::Append { agent_id, .. }
                if !staged.set.contains_key(agent_id) && !last.contains_key(agent_id) =>
            {
                Some(*agent_id)
            }
            _ => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        let read = store::last_sequences(conn, &unknown).await?;
        for id in unknown {
            staged.set.insert(id, read.get(&id).copied().unwrap_or(0));
        }
    }
    Ok(())
}

/// Numbers the messages of `requests`, each agent's after its last number (staged or kept).
pub(super) fn numbered_rows<'a>(
    requests: &'a [Request],
    last: &LastSequences,
    staged: &mut Staged,
    created_at: &'a str,
) -> Vec<NewMessage<'a>> {
    let mut rows = Vec::with_capacity(requests.len());
    for request in requests {
        if let Request::Append {
            agent_id, message, ..
        } = request
        {
            let previous = staged
                .set
                .get(agent_id)
                .or_else(|| last.get(agent_id))
                .copied()
                .unwrap_or(0);
            staged.set.insert(*agent_id, previous + 1);
            rows.push(NewMessage {
                id: Uuid::now_v7(),
                agent_id: *agent_id,
                sequence_number: previous + 1,
                parsed: message,
                metadata: json_text::value_text(&message.metadata),
                created_at,
            });
        }
    }
    rows
}
