//! The room registry actor: knows every WebSocket session and which agents' rooms each one joined, and
//! fans each event out to the sessions it is for. Events arrive already serialized, so one JSON encoding
//! serves every subscriber.
//!
//! Nothing here ever waits for a session: each one has a [`BacklogGauge`] of the bytes handed to it and
//! not yet written to its socket. A session whose client stops reading stops draining its gauge; once
//! the gauge passes the limit the session is cut (it gets nothing more and closes with
//! [`SLOW_CONSUMER_CLOSE_CODE`] as soon as it runs), so a stalled client costs a bounded amount of memory
//! and never slows the others.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use agentstream_wire::ServerEvent;
use bytestring::ByteString;
use uuid::Uuid;

use crate::metrics::{Metrics, Transport};

/// A session's number, given by the registry.
pub type SessionId = u64;

/// Who an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every connection (`agent:created`, `agent:status`, `agent:deleted`).
    All,
    /// The connections subscribed to this agent (`agent:message`, `agent:complete`, `agent:error`).
    Room(Uuid),
}

/// A server event, serialized once.
#[derive(Clone, Debug)]
pub struct EventFrame {
    pub scope: Scope,
    /// The message's sequence number, for `agent:message`: sessions use it to drop what they sent already.
    pub seq: Option<i64>,
    /// The JSON text frame.
    pub frame: ByteString,
}

impl EventFrame {
    /// Serializes `event` for `scope`.
    pub fn new(scope: Scope, event: &ServerEvent) -> Self {
        let seq = match event {
            ServerEvent::AgentMessage(m) => Some(m.message.sequence_number),
            _ => None,
        };
        // Serializing these plain data types cannot fail; an empty object is a safe fallback anyway.
        let frame = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
        Self::from_frame(scope, seq, frame)
    }

    /// An event serialized elsewhere (`seq` as in [`EventFrame::seq`]).
    pub fn from_frame(scope: Scope, seq: Option<i64>, frame: String) -> Self {
        EventFrame {
            scope,
            seq,
            frame: ByteString::from(frame),
        }
    }
}

/// Events handed to a session, in order (those of one write batch that concern it).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Deliver(pub Vec<EventFrame>);

/// The WebSocket close code of a session cut for not reading fast enough (application range
/// 4000–4999). The client reconnects and subscribes with `since` to get what it missed.
pub const SLOW_CONSUMER_CLOSE_CODE: u16 = 4008;

/// The backlog of one session, shared by the registry (which adds what it hands over) and the session
/// (which takes away what it writes to its socket).
#[derive(Debug, Default)]
pub struct BacklogGauge {
    queued: AtomicUsize,
    cut: AtomicBool,
}

impl BacklogGauge {
    /// Bytes handed to the session and not yet written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The session fell too far behind and gets nothing more.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// The session wrote (or dropped) `bytes` it had been handed.
    pub fn written(&self, bytes: usize) {
        // Never below zero, even if a caller miscounts.
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(bytes))
            });
    }

    /// Counts `bytes` more; false (and cut from now on) when that passes `limit`.
    fn admit(&self, bytes: usize, limit: usize) -> bool {
        if self.is_cut() {
            return false;
        }
        let now = self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if now > limit {
            self.cut.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Tells a session it was cut (its backlog passed the limit): it closes once it runs again.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Overflowed;

/// Tells a session the server is shutting down: it closes with 1001 ("going away").
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct GoingAway;

/// Closes every session ("going away"); replied once each was told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll;

/// A session as the registry reaches it.
struct Member {
    transport: Transport,
    deliver: Recipient<Deliver>,
    overflowed: Recipient<Overflowed>,
    going_away: Recipient<GoingAway>,
    backlog: Arc<BacklogGauge>,
}

/// A new session; the reply is its id.
#[derive(Message)]
#[rtype(result = "SessionId")]
pub struct Connect {
    /// A WebSocket or an event stream: how it is counted.
    pub transport: Transport,
    pub deliver: Recipient<Deliver>,
    pub overflowed: Recipient<Overflowed>,
    pub going_away: Recipient<GoingAway>,
    pub backlog: Arc<BacklogGauge>,
}

/// A session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect(pub SessionId);

/// Adds a session to an agent's room. Replied once it is in: every event sent after the reply reaches it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub session: SessionId,
    pub agent: Uuid,
}

/// Removes a session from an agent's room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
    pub agent: Uuid,
}

/// Sends events to their scopes, in order: one message per write batch, so that a batch costs each
/// session one hand-over instead of one per event.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Broadcast(pub Vec<EventFrame>);

impl Broadcast {
    /// A single event.
    pub fn one(event: EventFrame) -> Self {
        Broadcast(vec![event])
    }
}

/// How many sessions and rooms there are (for health and tests).
#[derive(Message)]
#[rtype(result = "RegistryStats")]
pub struct Stats;

/// Counts of the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, MessageResponse)]
pub struct RegistryStats {
    pub sessions: usize,
    pub rooms: usize,
}

/// The registry actor.
pub struct RoomRegistry {
    sessions: HashMap<SessionId, Member>,
    rooms: HashMap<Uuid, HashSet<SessionId>>,
    /// Rooms of each session, so a disconnect leaves them all without scanning every room.
    joined: HashMap<SessionId, HashSet<Uuid>>,
    next_id: SessionId,
    /// A session's backlog beyond which it is cut (`websocket.max_queued_bytes`).
    max_queued_bytes: usize,
    /// Open connections and slow-consumer cuts are counted where sessions come and go.
    metrics: Metrics,
    /// Wakes the webhook consumers with the agents each batch concerns.
    wake: Option<crate::webhooks::Wake>,
}

impl RoomRegistry {
    /// A registry that cuts sessions whose backlog passes `max_queued_bytes`, counting its sessions in
    /// `metrics`.
    pub fn new(max_queued_bytes: usize, metrics: Metrics) -> Self {
        RoomRegistry {
            sessions: HashMap::new(),
            rooms: HashMap::new(),
            joined: HashMap::new(),
            next_id: 0,
            max_queued_bytes,
            metrics,
            wake: None,
        }
    }

    /// The same registry, also telling `wake` which agents each broadcast concerns.
    pub fn with_wake(mut self, wake: crate::webhooks::Wake) -> Self {
        self.wake = Some(wake);
        self
    }
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;
}

impl Handler<Connect> for RoomRegistry {
    type Result = SessionId;
    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> SessionId {
        self.next_id += 1;
        self.metrics.connection_opened(msg.transport);
        self.sessions.insert(
            self.next_id,
            Member {
                transport: msg.transport,
                deliver: msg.deliver,
                overflowed: msg.overflowed,
                going_away: msg.going_away,
                backlog: msg.backlog,
            },
        );
        self.next_id
    }
}

impl Handler<Disconnect> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        if let Some(member) = self.sessions.remove(&msg.0) {
            self.metrics.connection_closed(member.transport);
        }
        for agent in self.joined.remove(&msg.0).unwrap_or_default() {
            self.leave_room(msg.0, agent);
        }
    }
}

impl Handler<Join> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        if self.sessions.contains_key(&msg.session) {
            self.rooms.entry(msg.agent).or_default().insert(msg.session);
            self.joined
                .entry(msg.session)
                .or_default()
                .insert(msg.agent);
        }
    }
}

impl Handler<Leave> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        if let Some(rooms) = self.joined.get_mut(&msg.session) {
            rooms.remove(&msg.agent);
        }
        self.leave_room(msg.session, msg.agent);
    }
}

impl Handler<Broadcast> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) {
        if let Some(wake) = &self.wake {
            wake.touched(&msg.0);
        }
        let limit = self.max_queued_bytes;
        // Each session's share of the batch, in order.
        let mut shares: HashMap<SessionId, (Vec<EventFrame>, usize)> = HashMap::new();
        let mut add = |id: SessionId, event: &EventFrame| {
            let share = shares.entry(id).or_default();
            share.1 += event.frame.len();
            share.0.push(event.clone());
        };
        for event in &msg.0 {
            match event.scope {
                Scope::All => self.sessions.keys().for_each(|id| add(*id, event)),
                Scope::Room(agent) => {
                    self.rooms
                        .get(&agent)
                        .into_iter()
                        .flatten()
                        .for_each(|id| add(*id, event));
                }
            }
        }
        for (id, (events, bytes)) in shares {
            if let Some(member) = self.sessions.get(&id) {
                if !member.offer(events, bytes, limit) {
                    self.metrics.slow_consumer_closed(member.transport);
                }
            }
        }
    }
}

impl Member {
    /// Hands `events` (`bytes` in all) over unless that would pass the session's backlog limit; on the
    /// first refusal the session is told it was cut, and false is returned (only then).
    fn offer(&self, events: Vec<EventFrame>, bytes: usize, limit: usize) -> bool {
        if self.backlog.is_cut() {
            return true;
        }
        if self.backlog.admit(bytes, limit) {
            self.deliver.do_send(Deliver(events));
            true
        } else {
            tracing::info!(
                transport = self.transport.as_str(),
                queued = self.backlog.queued(),
                limit,
                "client too slow; cutting it"
            );
            self.overflowed.do_send(Overflowed);
            false
        }
    }
}

impl Handler<CloseAll> for RoomRegistry {
    type Result = usize;
    fn handle(&mut self, _: CloseAll, _: &mut Context<Self>) -> usize {
        for member in self.sessions.values() {
            member.going_away.do_send(GoingAway);
        }
        self.sessions.len()
    }
}

impl Handler<Stats> for RoomRegistry {
    type Result = RegistryStats;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> RegistryStats {
        RegistryStats {
            sessions: self.sessions.len(),
            rooms: self.rooms.len(),
        }
    }
}

impl RoomRegistry {
    fn leave_room(&mut self, session: SessionId, agent: Uuid) {
        if let Some(members) = self.rooms.get_mut(&agent) {
            members.remove(&session);
            if members.is_empty() {
                self.rooms.remove(&agent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BacklogGauge;

    #[test]
    fn a_backlog_gauge_is_cut_once_its_backlog_passes_the_limit_and_stays_cut() {
        let backlog = BacklogGauge::default();
        assert!(backlog.admit(60, 100));
        assert!(backlog.admit(40, 100), "exactly at the limit is allowed");
        backlog.written(50);
        assert_eq!(backlog.queued(), 50);
        assert!(backlog.admit(50, 100));
        assert!(!backlog.admit(1, 100), "one byte over is refused");
        assert!(backlog.is_cut());
        backlog.written(1000);
        assert_eq!(backlog.queued(), 0, "never below zero");
        assert!(!backlog.admit(1, 100), "a cut backlog takes nothing more");
    }
}
