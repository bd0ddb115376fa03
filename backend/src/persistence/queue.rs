//! The persistence actor's queue, and the order in which it writes what is queued.
//!
//! Messages are the hot path and cost one statement for any number of them; every other request (a
//! status or session change, a new agent, a purge) costs its own statement, each a round trip to the
//! database thread. Written in one transaction in arrival order, a batch holding a few of those — 100
//! agents starting or ending together — kept every token queued meanwhile waiting for all of them
//! (the latency benchmark's p99.9 was made of exactly that). So writes alternate: every queued message
//! that may go first goes in one write of messages only (the fast path), then at most
//! [`MAX_OTHERS_PER_WRITE`] other requests, in arrival order, then the messages that came meanwhile,
//! and so on.
//!
//! A message may go ahead of an earlier request only when that request is about another agent: each
//! agent's requests keep their order (a message stays behind its own agent's purge; a final status is
//! only ever sent once the agent's messages are stored, so it is never overtaken by them), and a request
//! not about one agent (`Interrupt`) is overtaken by nothing. Requests of different agents touch
//! different rows, so their order does not matter to what is stored, and clients order by agent.

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

use super::requests::Request;

/// Other requests written at most per write, between two writes of messages: bounds how long a token
/// can wait behind them (each is a round trip of the writer's connection, ~0.1–0.2 ms).
pub const MAX_OTHERS_PER_WRITE: usize = 16;

/// Requests not yet written.
#[derive(Default)]
pub struct WriteQueue {
    /// Messages free to go ahead of `held` (no earlier request of their agent is waiting).
    messages: Vec<Request>,
    /// Everything else, and the messages that must stay behind it, in arrival order.
    held: VecDeque<Request>,
    /// How many of `held` are about each agent…
    held_agents: HashMap<Uuid, usize>,
    /// …and how many about every agent.
    held_barriers: usize,
    /// Whether the next write is `held`'s turn (alternation keeps both moving).
    held_turn: bool,
}

impl WriteQueue {
    /// Queues a request after everything queued before it.
    pub fn push(&mut self, pending: Request) {
        // The usual case under load, without a lookup: a message with nothing held.
        if self.held.is_empty() && pending.is_message() {
            self.messages.push(pending);
            return;
        }
        let agent = pending.agent();
        let free = pending.is_message()
            && self.held_barriers == 0
            && agent.is_some_and(|a| !self.held_agents.contains_key(&a));
        if free {
            self.messages.push(pending);
            return;
        }
        match agent {
            Some(a) => *self.held_agents.entry(a).or_default() += 1,
            None => self.held_barriers += 1,
        }
        self.held.push_back(pending);
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.held.is_empty()
    }

    /// The next write: all free messages (messages only: the fast path), or, taking turns when both are
    /// waiting, the held requests up to the [`MAX_OTHERS_PER_WRITE`]th that is not a message. Messages
    /// held behind their agent's request go with it, in order.
    pub fn next_batch(&mut self) -> Vec<Request> {
        let held_now = !self.held.is_empty() && (self.held_turn || self.messages.is_empty());
        // Free messages must be written before what is held behind them (an agent's status sent after
        // its messages): when one of them is of an agent with a held request, they go first.
        let must_precede = || {
            (!self.messages.is_empty() && self.held_barriers > 0)
                || self.messages.iter().any(|p| match p {
                    Request::Append { agent_id, .. } => self.held_agents.contains_key(agent_id),
                    _ => false,
                })
        };
        if !held_now || must_precede() {
            self.held_turn = true;
            return std::mem::take(&mut self.messages);
        }
        self.held_turn = false;
        let mut batch = Vec::new();
        let mut others = 0;
        while let Some(front) = self.held.front() {
            let other = !front.is_message();
            if other && others == MAX_OTHERS_PER_WRITE {
                break;
            }
            others += usize::from(other);
            batch.extend(self.held.pop_front());
        }
        // What stays is queued again, in order: messages held only behind what was just taken are free.
        let held = std::mem::take(&mut self.held);
        self.held_agents.clear();
        self.held_barriers = 0;
        for pending in held {
            self.push(pending);
        }
        batch
    }
}

/// The agents a batch writes messages of.
#[cfg(test)]
fn agents_of(batch: &[Request]) -> std::collections::HashSet<Uuid> {
    batch
        .iter()
        .filter_map(|p| match p {
            Request::Append { agent_id, .. } => Some(*agent_id),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::ParsedMessage;
    use crate::persistence::requests::{SetStatus, Stored};
    use agentstream_wire::{AgentStatus, MessageType};
    use std::rc::Rc;

    /// Stands for an agent's actor: only the order of the queue is looked at.
    struct NoAgent;
    impl actix::Actor for NoAgent {
        type Context = actix::Context<Self>;
    }
    impl actix::Handler<Stored> for NoAgent {
        type Result = ();
        fn handle(&mut self, _: Stored, _: &mut Self::Context) {}
    }

    fn message(agent_id: Uuid, text: &str) -> Request {
        let (ack, _) = actix::dev::channel::channel::<NoAgent>(1);
        Request::Append {
            agent_id,
            message: ParsedMessage {
                message_type: MessageType::Assistant,
                role: None,
                content: text.into(),
                raw: text.into(),
                metadata: serde_json::Value::Null,
                outcome: None,
                session: None,
            },
            sequence_number: 0,
            ack: crate::persistence::requests::Ack::Batch(Rc::new(
                actix::Addr::new(ack).recipient(),
            )),
        }
    }

    fn status(agent: Uuid) -> Request {
        Request::SetStatus {
            change: SetStatus::new(agent, AgentStatus::Completed),
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    fn purge(agent_id: Uuid) -> Request {
        Request::Delete {
            agent_id,
            purge: true,
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    fn interrupt() -> Request {
        Request::InterruptUnfinished {
            owner: None,
            interrupted: Vec::new(),
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    /// A batch as text: `m:<agent>:<content>` or `s:<agent>` / `p:<agent>` / `i`.
    fn describe(batch: &[Request], names: &[(Uuid, &str)]) -> Vec<String> {
        let name = |id: &Uuid| {
            names
                .iter()
                .find(|(n, _)| n == id)
                .map_or("?", |(_, s)| *s)
                .to_owned()
        };
        batch
            .iter()
            .map(|p| match p {
                Request::Append {
                    agent_id, message, ..
                } => format!("m:{}:{}", name(agent_id), message.content),
                Request::SetStatus { change, .. } => format!("s:{}", name(&change.agent_id)),
                Request::Delete { agent_id, .. } => format!("p:{}", name(agent_id)),
                Request::InterruptUnfinished { .. } => "i".into(),
                _ => "other".into(),
            })
            .collect()
    }

    fn drain(q: &mut WriteQueue, names: &[(Uuid, &str)]) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        while !q.is_empty() {
            out.push(describe(&q.next_batch(), names));
        }
        out
    }

    #[test]
    fn messages_go_ahead_of_other_agents_requests_and_both_take_turns() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let names = [(a, "a"), (b, "b")];
        let mut q = WriteQueue::default();
        q.push(message(a, "1"));
        q.push(status(b));
        q.push(message(a, "2"));
        assert_eq!(
            drain(&mut q, &names),
            vec![vec!["m:a:1", "m:a:2"], vec!["s:b"]]
        );
        // While held requests wait, a write of messages is followed by a write of them.
        q.push(status(b));
        q.push(message(a, "3"));
        assert_eq!(describe(&q.next_batch(), &names), vec!["m:a:3"]);
        q.push(message(a, "4"));
        assert_eq!(describe(&q.next_batch(), &names), vec!["s:b"]);
        assert_eq!(describe(&q.next_batch(), &names), vec!["m:a:4"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_request_never_overtakes_its_agents_earlier_messages() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let names = [(a, "a"), (b, "b")];
        let mut q = WriteQueue::default();
        q.push(status(b));
        q.push(message(a, "1"));
        assert_eq!(describe(&q.next_batch(), &names), vec!["m:a:1"]);
        // The held requests' turn, but a message of `a` was queued before `a`'s final status: the
        // messages go first all the same.
        q.push(message(a, "2"));
        q.push(status(a));
        assert_eq!(describe(&q.next_batch(), &names), vec!["m:a:2"]);
        assert_eq!(describe(&q.next_batch(), &names), vec!["s:b", "s:a"]);
        assert!(q.is_empty());
    }

    #[test]
    fn an_agents_own_requests_keep_their_order() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let names = [(a, "a"), (b, "b")];
        let mut q = WriteQueue::default();
        q.push(message(a, "1"));
        q.push(purge(a));
        q.push(message(a, "2"));
        q.push(message(b, "1"));
        assert_eq!(
            drain(&mut q, &names),
            vec![vec!["m:a:1", "m:b:1"], vec!["p:a", "m:a:2"]]
        );
    }

    #[test]
    fn nothing_overtakes_a_request_about_every_agent() {
        let a = Uuid::now_v7();
        let names = [(a, "a")];
        let mut q = WriteQueue::default();
        q.push(interrupt());
        q.push(message(a, "1"));
        assert_eq!(drain(&mut q, &names), vec![vec!["i", "m:a:1"]]);
        // Nor does it overtake a message queued before it, even on the held requests' turn.
        let b = Uuid::now_v7();
        let names = [(a, "a"), (b, "b")];
        q.push(status(b));
        q.push(message(a, "2"));
        assert_eq!(describe(&q.next_batch(), &names), vec!["m:a:2"]);
        q.push(message(a, "3"));
        q.push(interrupt());
        assert_eq!(describe(&q.next_batch(), &names), vec!["m:a:3"]);
        assert_eq!(describe(&q.next_batch(), &names), vec!["s:b", "i"]);
        assert!(q.is_empty());
    }

    #[test]
    fn held_requests_go_a_bounded_number_at_a_time_and_free_what_they_held() {
        let agents: Vec<Uuid> = (0..MAX_OTHERS_PER_WRITE + 2)
            .map(|_| Uuid::now_v7())
            .collect();
        let last = *agents.last().unwrap_or(&Uuid::nil());
        let mut q = WriteQueue::default();
        for agent in &agents {
            q.push(status(*agent));
        }
        // Held behind the last agent's status, which the first write of held requests does not reach.
        q.push(message(last, "1"));
        let first = q.next_batch();
        assert_eq!(first.len(), MAX_OTHERS_PER_WRITE);
        assert!(agents_of(&first).is_empty());
        // The rest, with the message behind its agent's status (the only free message: none).
        let second = q.next_batch();
        assert_eq!(second.len(), 3);
        assert_eq!(agents_of(&second), std::collections::HashSet::from([last]));
        assert!(second[2].is_message());
        assert!(q.is_empty());
        // A message held behind a request that has been written is free again.
        let mut q = WriteQueue::default();
        let a = agents[0];
        q.push(status(a));
        q.push(message(a, "1"));
        for agent in &agents[1..=MAX_OTHERS_PER_WRITE] {
            q.push(status(*agent));
        }
        q.push(message(a, "2"));
        let first = q.next_batch();
        // The status of `a`, its message, and the next 15 statuses; the last status stays.
        assert_eq!(first.len(), MAX_OTHERS_PER_WRITE + 1);
        // `a`'s second message is no longer behind anything of `a`'s: it goes next, on its own.
        let names = [(a, "a")];
        assert_eq!(describe(&q.next_batch(), &names), vec!["m:a:2"]);
        assert_eq!(q.next_batch().len(), 1);
        assert!(q.is_empty());
    }
}
