//! The announcement of one committed write: which agents got which messages (most of them inline, so
//! that the other instances show them without reading them back), and the lifecycle events.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::CHANNEL;
use crate::gateway::registry::{EventFrame, Scope};

/// PostgreSQL refuses a payload of 8000 bytes or more: announcements are cut below it.
const MAX_PAYLOAD: usize = 7000;

/// Payloads of a write that may carry its messages' frames. A message that does not fit in them is
/// announced by its number only and read back by the listeners: a large write costs its commit a
/// bounded amount of notification text, while a write of the usual size under a steady load (tens of
/// messages) crosses to the other instances with no read of the database on their side.
const MAX_INLINE_PAYLOADS: usize = 4;

/// A message's `agent:message` frame, carried as it is (JSON in the payload, not a string in it).
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Inline(pub Box<RawValue>);

impl PartialEq for Inline {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// One notification's payload.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    /// The instance that wrote (it ignores its own).
    pub instance: String,
    /// `[agent, first, last]`: the agent's messages numbered `first..=last` are stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<(Uuid, i64, i64)>,
    /// The frames of some of those messages (whole runs, in order): shown as they are, when they
    /// follow what was shown of their agent. An instance that does not know this field reads the
    /// messages back, as before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Inline>,
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
        self.frames.extend(next.frames);
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
    // Each agent's messages, in number order (a write stores them so).
    let mut messages: BTreeMap<Uuid, Vec<(i64, &'a EventFrame)>> = BTreeMap::new();
    let mut events = Vec::new();
    let mut created = Vec::new();
    for frame in frames {
        let room = match frame.scope {
            Scope::Room(agent) => Some(agent),
            Scope::All => None,
        };
        match (frame.seq, room) {
            (Some(seq), Some(agent)) => messages.entry(agent).or_default().push((seq, frame)),
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
    let empty = || Announcement {
        instance: instance.to_owned(),
        ..Announcement::default()
    };
    let fresh = 64 + instance.len();
    let mut out = vec![empty()];
    let mut size = fresh;
    // Messages first, inline while the payloads allowed for that last; the rest by number.
    let mut by_number = Vec::new();
    for (agent, run) in messages {
        let mut i = 0;
        while i < run.len() {
            let start = i;
            let mut added = 70;
            while let Some((_, frame)) = run.get(i) {
                let len = frame.frame.len() + 1;
                if size + added + len > MAX_PAYLOAD {
                    break;
                }
                added += len;
                i += 1;
            }
            let inline: Vec<Inline> = run[start..i]
                .iter()
                .filter_map(|(_, f)| RawValue::from_string(f.frame.to_string()).ok())
                .map(Inline)
                .collect();
            if inline.len() < i - start || (i == start && size == fresh) {
                // A frame that is not JSON, or too large for any payload: the rest goes by number.
                i = start;
                break;
            }
            if i > start {
                if let Some(a) = out.last_mut() {
                    a.messages.push((agent, run[start].0, run[i - 1].0));
                    a.frames.extend(inline);
                }
                size += added;
            }
            if i < run.len() {
                if out.len() == MAX_INLINE_PAYLOADS {
                    break;
                }
                out.push(empty());
                size = fresh;
            }
        }
        if let (Some((first, _)), Some((last, _))) = (run.get(i), run.last()) {
            by_number.push((agent, *first, *last));
        }
    }
    let next = |size: &mut usize, added: usize| {
        if *size + added > MAX_PAYLOAD {
            *size = fresh;
            return true;
        }
        *size += added;
        false
    };
    for (agent, first, last) in by_number {
        if next(&mut size, 70) {
            out.push(empty());
        }
        if let Some(a) = out.last_mut() {
            a.messages.push((agent, first, last));
        }
    }
    // The events of a write (a final status) follow its messages.
    for (room, frame) in events {
        if next(&mut size, frame.len() + 50) {
            out.push(empty());
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
    if announcements.is_empty() {
        return Ok(());
    }
    // One statement for them all (one round trip): PostgreSQL computes a select list from left to
    // right, so they are queued, and delivered, in this order.
    let mut sql = String::from("SELECT ");
    let mut values = vec![CHANNEL.into()];
    for (i, announcement) in announcements.iter().enumerate() {
        let payload =
            serde_json::to_string(announcement).map_err(|e| DbErr::Custom(e.to_string()))?;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("pg_notify($1, ${})", i + 2));
        values.push(payload.into());
    }
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await?;
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
        sized(agent, seq, 0)
    }

    /// A message frame of about `pad` bytes more than the smallest.
    fn sized(agent: Uuid, seq: i64, pad: usize) -> EventFrame {
        let frame = serde_json::json!({"a": agent, "s": seq, "p": "x".repeat(pad)}).to_string();
        EventFrame::from_frame(Scope::Room(agent), Some(seq), frame)
    }

    /// Checks what any write's announcements must hold, and returns how many messages went inline:
    /// each payload fits; each agent's messages are announced once each, in order; a payload's frames
    /// are exactly the messages of some of its ranges, whole, in order.
    fn check(frames: &[EventFrame], out: &[Announcement]) -> usize {
        let mut expected: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
        for f in frames {
            if let (Scope::Room(agent), Some(seq)) = (f.scope, f.seq) {
                expected.entry(agent).or_default().push(seq);
            }
        }
        let mut announced: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
        let mut inline = 0;
        for a in out {
            let payload = serde_json::to_string(a).unwrap();
            assert!(payload.len() < 8000, "a payload of {} bytes", payload.len());
            let carried: Vec<(Uuid, i64)> = a
                .frames
                .iter()
                .map(|Inline(f)| {
                    let v: serde_json::Value = serde_json::from_str(f.get()).unwrap();
                    (
                        v["a"].as_str().unwrap().parse().unwrap(),
                        v["s"].as_i64().unwrap(),
                    )
                })
                .collect();
            let mut rest = carried.as_slice();
            for &(agent, first, last) in &a.messages {
                announced.entry(agent).or_default().extend(first..=last);
                if rest.first().map(|(a, _)| *a) == Some(agent) {
                    let run: Vec<(Uuid, i64)> = (first..=last).map(|s| (agent, s)).collect();
                    assert_eq!(&rest[..run.len()], run.as_slice());
                    rest = &rest[run.len()..];
                }
            }
            assert!(rest.is_empty(), "frames of no range: {rest:?}");
            inline += carried.len();
        }
        assert_eq!(announced, expected);
        inline
    }

    #[test]
    fn a_write_of_the_usual_size_carries_every_message_in_one_payload() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut frames: Vec<EventFrame> = (5..=9).map(|s| sized(a, s, 200)).collect();
        frames.extend((1..=3).map(|s| sized(b, s, 200)));
        frames.push(EventFrame::from_frame(Scope::Room(a), None, "{}".into()));
        let out = announcements("i1", &frames);
        assert_eq!(out.len(), 1);
        assert_eq!(check(&frames, &out), 8);
        assert_eq!(out[0].events, vec![(Some(a), "{}".to_owned())]);
    }

    #[test]
    fn a_large_write_carries_what_its_payloads_allow_and_announces_the_rest_by_number() {
        let agents: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
        let mut frames = Vec::new();
        for seq in 1..=50 {
            for &agent in &agents {
                frames.push(sized(agent, seq, 250));
            }
        }
        frames.push(EventFrame::from_frame(Scope::All, None, "{}".into()));
        let out = announcements("i1", &frames);
        let inline = check(&frames, &out);
        // About MAX_INLINE_PAYLOADS payloads' worth of ~310-byte frames went inline, the rest not.
        assert!(
            (70..=MAX_INLINE_PAYLOADS * MAX_PAYLOAD / 300).contains(&inline),
            "{inline}"
        );
        assert!(out
            .iter()
            .skip(MAX_INLINE_PAYLOADS)
            .all(|a| a.frames.is_empty()));
        // The event comes last.
        assert_eq!(out.last().map(|a| a.events.len()), Some(1));
        assert!(out.iter().rev().skip(1).all(|a| a.events.is_empty()));
    }

    #[test]
    fn a_message_too_large_for_a_payload_is_announced_by_number() {
        let a = Uuid::now_v7();
        let frames = vec![sized(a, 1, 100), sized(a, 2, 9000), sized(a, 3, 100)];
        let out = announcements("i1", &frames);
        // 1 is carried; 2 cannot be, and 3 must not be shown before it.
        assert_eq!(check(&frames, &out), 1);
        assert_eq!(out.iter().map(|a| a.messages.len()).sum::<usize>(), 2);
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
