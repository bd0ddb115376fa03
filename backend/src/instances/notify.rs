//! The announcement of one committed write: which agents got which messages, and the lifecycle events.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::CHANNEL;
use crate::gateway::registry::{EventFrame, Scope};

/// PostgreSQL refuses a payload of 8000 bytes or more: announcements are cut below it.
const MAX_PAYLOAD: usize = 7000;

/// One notification's payload.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    /// The instance that wrote (it ignores its own).
    pub instance: String,
    /// `[agent, first, last]`: the agent's messages numbered `first..=last` are stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<(Uuid, i64, i64)>,
    /// Lifecycle events as the registry sends them: `[agent of its room, or null for all, frame]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<(Option<Uuid>, String)>,
    /// Agents whose `agent:created` frame is too large for a payload: read the agent back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<Uuid>,
}

impl Announcement {
    /// Takes in the next announcement of the same writer or another, as long as that keeps every
    /// event after the messages announced before it: only while this one holds no event. Returns
    /// the announcement back when it cannot be taken in.
    pub fn absorb(&mut self, next: Announcement) -> Result<(), Announcement> {
        if !self.events.is_empty() || !self.created.is_empty() {
            return Err(next);
        }
        for (agent, first, last) in next.messages {
            match self.messages.iter_mut().find(|(a, _, _)| *a == agent) {
                Some((_, f, l)) => {
                    *f = (*f).min(first);
                    *l = (*l).max(last);
                }
                None => self.messages.push((agent, first, last)),
            }
        }
        self.events = next.events;
        self.created = next.created;
        Ok(())
    }
}

/// The announcements of a write's frames (several when one would be too large), in order.
pub fn announcements<'a>(
    instance: &str,
    frames: impl IntoIterator<Item = &'a EventFrame>,
) -> Vec<Announcement> {
    let mut ranges: BTreeMap<Uuid, (i64, i64)> = BTreeMap::new();
    let mut events = Vec::new();
    let mut created = Vec::new();
    for frame in frames {
        let room = match frame.scope {
            Scope::Room(agent) => Some(agent),
            Scope::All => None,
        };
        match (frame.seq, room) {
            (Some(seq), Some(agent)) => {
                let range = ranges.entry(agent).or_insert((seq, seq));
                range.0 = range.0.min(seq);
                range.1 = range.1.max(seq);
            }
            _ if frame.frame.len() <= MAX_PAYLOAD / 2 => {
                events.push((room, frame.frame.to_string()))
            }
            _ => {
                // Only an agent's creation carries text of unbounded size (its prompt).
                if let Some(id) = created_agent(&frame.frame) {
                    created.push(id);
                }
            }
        }
    }
    let mut out = vec![Announcement {
        instance: instance.to_owned(),
        ..Announcement::default()
    }];
    let mut size = 64;
    let next = |size: &mut usize, added: usize| {
        if *size + added > MAX_PAYLOAD {
            *size = 64;
            return true;
        }
        *size += added;
        false
    };
    // Messages first: the events of a write (a final status) follow its messages.
    for (agent, (first, last)) in ranges {
        if next(&mut size, 70) {
            out.push(Announcement {
                instance: instance.to_owned(),
                ..Announcement::default()
            });
        }
        if let Some(a) = out.last_mut() {
            a.messages.push((agent, first, last));
        }
    }
    for (room, frame) in events {
        if next(&mut size, frame.len() + 50) {
            out.push(Announcement {
                instance: instance.to_owned(),
                ..Announcement::default()
            });
        }
        if let Some(a) = out.last_mut() {
            a.events.push((room, frame));
        }
    }
    if let Some(a) = out.last_mut() {
        a.created = created;
    }
    out.retain(|a| !(a.messages.is_empty() && a.events.is_empty() && a.created.is_empty()));
    out
}

/// The agent of an `agent:created` frame.
fn created_agent(frame: &str) -> Option<Uuid> {
    let value: serde_json::Value = serde_json::from_str(frame).ok()?;
    (value["event"] == "agent:created")
        .then(|| value["data"]["agent"]["id"].as_str()?.parse().ok())
        .flatten()
}

/// Sends the announcements of a write from inside its transaction, just before the commit:
/// PostgreSQL delivers a notification only when its transaction commits, and then always, so no write
/// can be committed unannounced (the process killed between the two) nor announced uncommitted. Fails
/// the write when they cannot be sent.
pub async fn send(
    txn: &impl ConnectionTrait,
    announcements: Vec<Announcement>,
) -> Result<(), DbErr> {
    for announcement in announcements {
        let payload =
            serde_json::to_string(&announcement).map_err(|e| DbErr::Custom(e.to_string()))?;
        let notify = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), payload.into()],
        );
        txn.execute(notify).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_merge_only_while_no_event_would_move_before_a_message() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut merged = Announcement {
            messages: vec![(a, 1, 10)],
            ..Announcement::default()
        };
        let next = Announcement {
            messages: vec![(a, 11, 20), (b, 1, 3)],
            events: vec![(Some(a), "{}".into())],
            ..Announcement::default()
        };
        assert!(merged.absorb(next).is_ok());
        assert_eq!(merged.messages, vec![(a, 1, 20), (b, 1, 3)]);
        assert_eq!(merged.events.len(), 1);
        // Its event was announced after a's message 20: a later message cannot join it.
        let later = Announcement {
            messages: vec![(a, 21, 21)],
            ..Announcement::default()
        };
        assert_eq!(
            merged.absorb(later).err().map(|l| l.messages),
            Some(vec![(a, 21, 21)])
        );
    }

    fn message(agent: Uuid, seq: i64) -> EventFrame {
        EventFrame::from_frame(Scope::Room(agent), Some(seq), format!("m{seq}"))
    }

    #[test]
    fn a_write_is_announced_as_ranges_then_events_in_payloads_postgres_takes() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut frames: Vec<EventFrame> = (5..=9).map(|s| message(a, s)).collect();
        frames.push(message(b, 1));
        frames.push(EventFrame::from_frame(Scope::All, None, "status".into()));
        let out = announcements("i1", &frames);
        assert_eq!(out.len(), 1);
        let mut expected = vec![(a, 5, 9), (b, 1, 1)];
        expected.sort();
        assert_eq!(out[0].messages, expected);
        assert_eq!(out[0].events, vec![(None, "status".to_owned())]);

        // Many agents: several payloads, each small enough.
        let frames: Vec<EventFrame> = (0..500).map(|_| message(Uuid::now_v7(), 1)).collect();
        let out = announcements("i1", &frames);
        assert!(out.len() > 1);
        assert!(out
            .iter()
            .all(|a| serde_json::to_string(a).unwrap().len() < 8000));
        assert_eq!(out.iter().map(|a| a.messages.len()).sum::<usize>(), 500);
    }

    #[test]
    fn a_creation_too_large_for_a_payload_is_announced_by_its_agent() {
        let id = Uuid::now_v7();
        let frame = serde_json::json!({"event": "agent:created",
            "data": {"agent": {"id": id, "prompt": "x".repeat(100_000)}}})
        .to_string();
        let out = announcements("i1", &[EventFrame::from_frame(Scope::All, None, frame)]);
        assert_eq!(out[0].created, vec![id]);
        assert!(out[0].events.is_empty());
    }
}
