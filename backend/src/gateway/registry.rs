//! The room registry actor: knows every WebSocket session and which agents' rooms each one joined, and
//! fans each event out to the sessions it is for. Events arrive already serialized, so one JSON encoding
//! serves every subscriber.

use std::collections::{HashMap, HashSet};

use actix::prelude::*;
use agentstream_wire::ServerEvent;
use bytestring::ByteString;
use uuid::Uuid;

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
pub struct Event {
    pub scope: Scope,
    /// The message's sequence number, for `agent:message`: sessions use it to drop what they sent already.
    pub seq: Option<i64>,
    /// The JSON text frame.
    pub frame: ByteString,
}

impl Event {
    /// Serializes `event` for `scope`.
    pub fn new(scope: Scope, event: &ServerEvent) -> Self {
        let seq = match event {
            ServerEvent::AgentMessage(m) => Some(m.message.sequence_number),
            _ => None,
        };
        // Serializing these plain data types cannot fail; an empty object is a safe fallback anyway.
        let frame = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
        Event {
            scope,
            seq,
            frame: ByteString::from(frame),
        }
    }
}

/// An event handed to a session.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Deliver(pub Event);

/// A new session; the reply is its id.
#[derive(Message)]
#[rtype(result = "SessionId")]
pub struct Connect(pub Recipient<Deliver>);

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

/// Sends an event to its scope.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Broadcast(pub Event);

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
#[derive(Default)]
pub struct RoomRegistry {
    sessions: HashMap<SessionId, Recipient<Deliver>>,
    rooms: HashMap<Uuid, HashSet<SessionId>>,
    /// Rooms of each session, so a disconnect leaves them all without scanning every room.
    joined: HashMap<SessionId, HashSet<Uuid>>,
    next_id: SessionId,
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;
}

impl Handler<Connect> for RoomRegistry {
    type Result = SessionId;
    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> SessionId {
        self.next_id += 1;
        self.sessions.insert(self.next_id, msg.0);
        self.next_id
    }
}

impl Handler<Disconnect> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.sessions.remove(&msg.0);
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
        let event = msg.0;
        match event.scope {
            Scope::All => {
                for session in self.sessions.values() {
                    session.do_send(Deliver(event.clone()));
                }
            }
            Scope::Room(agent) => {
                for id in self.rooms.get(&agent).into_iter().flatten() {
                    if let Some(session) = self.sessions.get(id) {
                        session.do_send(Deliver(event.clone()));
                    }
                }
            }
        }
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
