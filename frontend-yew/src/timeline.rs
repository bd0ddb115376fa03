//! One agent's messages as the app holds them: deduplicated by id, applied strict
//! in sequence order, with gaps detected and reported so they can be filled.
//!
//! A message arrives from history (REST), from the live socket, or from a gap fill, in any order and any
//! number of times. Messages are *applied* (handed on to the transcript) only once each and only in
//! contiguous sequence order: 1, 2, 3… An early arrival waits in a `BTreeMap` (O(log n)) until the hole
//! before it is filled; nothing is ever re-sorted. Plain Rust with no browser API: tested natively.

use std::collections::{BTreeMap, HashSet};

use agentstream_wire::StoredMessage;
use uuid::Uuid;

/// What became of a pushed message.
#[derive(Debug, PartialEq)]
pub enum Pushed {
    /// These messages are now applicable, in order (the pushed one and any that waited behind it).
    Applied(Vec<StoredMessage>),
    /// Seen before: ignored.
    Duplicate,
    /// It is ahead of a hole: kept, and the messages after `since` must be fetched.
    Gap { since: i64 },
}

/// The ordered, deduplicated messages of one agent.
#[derive(Debug, Default)]
pub struct Timeline {
    /// The highest sequence number such that every message up to it was applied.
    last: i64,
    /// Arrived ahead of a hole, by sequence number.
    waiting: BTreeMap<i64, StoredMessage>,
    /// Every id applied or waiting.
    ids: HashSet<Uuid>,
    /// Messages applied so far.
    applied: usize,
}

impl Timeline {
    /// An empty timeline (nothing applied yet).
    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest contiguous sequence number applied: what `since` should be on a resubscribe.
    pub fn last_sequence(&self) -> i64 {
        self.last
    }

    /// How many messages were applied.
    pub fn applied(&self) -> usize {
        self.applied
    }

    /// True when messages wait behind a hole.
    pub fn has_gap(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Takes one message.
    pub fn push(&mut self, message: StoredMessage) -> Pushed {
        let seq = message.sequence_number;
        if seq <= self.last || self.ids.contains(&message.id) || self.waiting.contains_key(&seq) {
            return Pushed::Duplicate;
        }
        self.ids.insert(message.id);
        if seq != self.last + 1 {
            self.waiting.insert(seq, message);
            return Pushed::Gap { since: self.last };
        }
        let mut out = vec![message];
        self.last = seq;
        while let Some(next) = self.waiting.remove(&(self.last + 1)) {
            self.last += 1;
            out.push(next);
        }
        self.applied += out.len();
        Pushed::Applied(out)
    }

    /// Takes many messages (history, a gap fill) in any order; returns what became applicable, in order,
    /// and the `since` of a gap that remains, if any.
    pub fn push_all(
        &mut self,
        messages: impl IntoIterator<Item = StoredMessage>,
    ) -> (Vec<StoredMessage>, Option<i64>) {
        let mut applied = Vec::new();
        for message in messages {
            if let Pushed::Applied(now) = self.push(message) {
                applied.extend(now);
            }
        }
        let gap = self.has_gap().then_some(self.last);
        (applied, gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::MessageType;
    use serde_json::json;

    fn msg(seq: i64) -> StoredMessage {
        StoredMessage {
            id: Uuid::from_u128(seq as u128),
            agent_id: Uuid::nil(),
            sequence_number: seq,
            message_type: MessageType::Assistant,
            role: None,
            content: format!("t{seq}"),
            raw: None,
            metadata: json!({"eventType": "content_delta"}),
            created_at: String::new(),
        }
    }

    fn seqs(applied: &[StoredMessage]) -> Vec<i64> {
        applied.iter().map(|m| m.sequence_number).collect()
    }

    #[test]
    fn in_order_messages_apply_at_once() {
        let mut t = Timeline::new();
        for s in 1..=3 {
            assert_eq!(t.push(msg(s)), Pushed::Applied(vec![msg(s)]));
        }
        assert_eq!((t.last_sequence(), t.applied()), (3, 3));
    }

    #[test]
    fn duplicates_by_id_or_sequence_are_dropped() {
        let mut t = Timeline::new();
        t.push(msg(1));
        assert_eq!(t.push(msg(1)), Pushed::Duplicate);
        let mut same_id = msg(5);
        same_id.id = msg(1).id;
        assert_eq!(t.push(same_id), Pushed::Duplicate);
        assert_eq!(t.push(msg(3)), Pushed::Gap { since: 1 });
        assert_eq!(
            t.push(msg(3)),
            Pushed::Duplicate,
            "a waiting message is not taken twice"
        );
        assert_eq!(t.applied(), 1);
    }

    #[test]
    fn a_gap_is_reported_and_filled_in_order() {
        let mut t = Timeline::new();
        t.push(msg(1));
        assert_eq!(t.push(msg(4)), Pushed::Gap { since: 1 });
        assert_eq!(t.push(msg(6)), Pushed::Gap { since: 1 });
        assert!(t.has_gap());
        // The fill returns 2..=6; what waited is applied once, in order.
        let (applied, gap) = t.push_all((2..=6).map(msg));
        assert_eq!(seqs(&applied), vec![2, 3, 4, 5, 6]);
        assert_eq!(gap, None);
        assert_eq!((t.last_sequence(), t.applied()), (6, 6));
    }

    #[test]
    fn history_in_any_order_converges() {
        let mut t = Timeline::new();
        let (applied, gap) = t.push_all([5, 3, 1, 2, 4, 2, 1].map(msg));
        assert_eq!(seqs(&applied), vec![1, 2, 3, 4, 5]);
        assert_eq!(gap, None);
        let (applied, gap) = t.push_all([8, 7].map(msg));
        assert_eq!(seqs(&applied), Vec::<i64>::new());
        assert_eq!(gap, Some(5));
    }

    #[test]
    fn a_reconnect_replay_overlapping_what_was_seen_applies_only_the_new_part() {
        let mut t = Timeline::new();
        t.push_all((1..=100).map(msg));
        // The server replays from `since`, possibly overlapping live messages already seen.
        let (applied, _) = t.push_all((90..=150).map(msg));
        assert_eq!(seqs(&applied), (101..=150).collect::<Vec<_>>());
        assert_eq!(t.applied(), 150);
    }

    #[test]
    fn ten_thousand_shuffled_messages_apply_exactly_once_in_order() {
        let mut order: Vec<i64> = (1..=10_000).collect();
        // A deterministic shuffle (an LCG), plus every tenth message twice.
        let mut x: u64 = 42;
        for i in (1..order.len()).rev() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            order.swap(i, (x >> 33) as usize % (i + 1));
        }
        let dupes: Vec<i64> = order.iter().copied().filter(|s| s % 10 == 0).collect();
        let mut t = Timeline::new();
        let mut applied = Vec::new();
        for s in order.into_iter().chain(dupes) {
            if let Pushed::Applied(now) = t.push(msg(s)) {
                applied.extend(now);
            }
        }
        assert_eq!(seqs(&applied), (1..=10_000).collect::<Vec<_>>());
        assert!(!t.has_gap());
    }
}
