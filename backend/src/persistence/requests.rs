//! What the persistence actor is asked to do: the requests (actix messages) its callers send, and the
//! form in which each waits in its queue, carrying its own typed reply.

use std::collections::HashMap;
use std::rc::Rc;

use actix::prelude::*;
use agentstream_wire::{Agent, AgentStatus, CompletionResult, ErrorInfo};
use entity::agent;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::parser::{ParsedMessage, SessionInfo};

/// Why a write was refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The agent's row is gone (purged meanwhile): its messages cannot be stored.
    #[error("the agent no longer exists")]
    AgentGone,
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// The persistence actor is gone (shutting down).
    #[error("the persistence actor has stopped")]
    Stopped,
    /// This instance's lease was taken over by another (PostgreSQL): its agents are not its own any
    /// more, and the database refused the write.
    #[error("this instance's lease was taken over by another instance")]
    LeaseLost,
}

impl StoreError {
    /// The agent is not this instance's to write any more (purged, or taken over): its actor stops
    /// without writing.
    pub fn disowns(&self) -> bool {
        matches!(self, StoreError::AgentGone | StoreError::LeaseLost)
    }
}

/// Stores a new agent; broadcasts `agent:created`.
#[derive(Message)]
#[rtype(result = "Result<Agent, StoreError>")]
pub struct InsertAgent(pub agent::Model);

/// Stores messages of an agent, in order; broadcasts `agent:message` with each stored row. The outcomes
/// go to `ack`, batched in a [`Stored`]: an agent with many messages in flight gets one message per write
/// batch instead of a future per message (an actor polls every future it holds at each wake-up).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendMessages {
    pub agent_id: Uuid,
    pub messages: Vec<ParsedMessage>,
    pub ack: Recipient<Stored>,
}

/// Stores one message of an agent outside its output (a user's follow-up, a permission answer), in
/// the same numbering and order as its output; replies with the number it got once it is stored and
/// broadcast.
#[derive(Message)]
#[rtype(result = "Result<i64, StoreError>")]
pub struct StoreMessage {
    pub agent_id: Uuid,
    pub message: ParsedMessage,
}

/// The outcome of an agent's messages ([`AppendMessages`]) of one write batch, in the order they were
/// sent: the sequence number each got, or why it was not stored.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Stored(pub Vec<Outcome>);

/// What became of one message: its sequence number, or why it was not stored.
pub type Outcome = Result<i64, StoreError>;

/// Changes an agent's status; broadcasts `agent:status`, then `agent:error` and `agent:complete` when
/// given.
#[derive(Message, Clone, Debug)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SetStatus {
    pub agent_id: Uuid,
    pub status: AgentStatus,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub error: Option<ErrorInfo>,
    pub complete: Option<CompletionResult>,
    /// A new turn begins: the previous turn's end (`completed_at`, `error`) is cleared.
    pub reopen: bool,
}

impl SetStatus {
    /// A status change with nothing else.
    pub fn new(agent_id: Uuid, status: AgentStatus) -> Self {
        SetStatus {
            agent_id,
            status,
            started_at: None,
            completed_at: None,
            error: None,
            complete: None,
            reopen: false,
        }
    }
}

/// Keeps the agent CLI's session id and model on the agent.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SetSession {
    pub agent_id: Uuid,
    pub session: SessionInfo,
}

/// Announces that an agent was deleted (`agent:deleted`), after removing it and, by the foreign key's
/// cascade, all its messages when `purge` is set. Written after everything queued before it about the
/// agent (its final status), so clients see the deletion last.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct StoreDeletion {
    pub agent_id: Uuid,
    pub purge: bool,
}

/// Marks every agent left `initializing`/`running` by a previous process as `interrupted` — on a
/// database of several instances, those `owner` owns; replies with their ids.
#[derive(Message)]
#[rtype(result = "Result<Vec<Uuid>, StoreError>")]
pub struct InterruptUnfinished {
    pub owner: Option<String>,
}

/// Takes over every other instance whose lease has ended (PostgreSQL): its running agents become
/// `interrupted`, and all its agents this instance's. Replies with what was taken.
#[derive(Message)]
#[rtype(result = "Result<TakenOver, StoreError>")]
pub struct TakeOver;

/// What a [`TakeOver`] took.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TakenOver {
    /// The instances whose lease had ended.
    pub instances: Vec<String>,
    /// Their agents that were running, now `interrupted`.
    pub interrupted: Vec<Uuid>,
}

/// Replied once everything queued before it is written (or refused).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Flush;

/// Where a request's outcome goes.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Who learns a stored message's number.
pub(super) enum Ack {
    /// The agent's actor, in a [`Stored`] per write batch; shared by all the messages of one
    /// [`AppendMessages`].
    Batch(Rc<Recipient<Stored>>),
    /// The sender of a [`StoreMessage`].
    One(Reply<i64>),
}

/// A request waiting in the queue: what to write, and whom to tell, typed by what the request produces.
/// What a write learns (a message's number, the interrupted agents) is recorded here, and sent once the
/// write is committed.
pub(super) enum Request {
    InsertAgent {
        model: agent::Model,
        /// The agent as the protocol shows it, sent once the row is stored.
        agent: Box<Agent>,
        reply: Reply<Agent>,
    },
    Append {
        agent_id: Uuid,
        message: ParsedMessage,
        /// Set by the write that numbers the message.
        sequence_number: i64,
        /// Who learns the number.
        ack: Ack,
    },
    SetStatus {
        change: SetStatus,
        reply: Reply<()>,
    },
    SetSession {
        agent_id: Uuid,
        session: SessionInfo,
        reply: Reply<()>,
    },
    Delete {
        agent_id: Uuid,
        purge: bool,
        reply: Reply<()>,
    },
    InterruptUnfinished {
        owner: Option<String>,
        /// Set by the write.
        interrupted: Vec<Uuid>,
        reply: Reply<Vec<Uuid>>,
    },
    TakeOver {
        /// Set by the write.
        taken: TakenOver,
        reply: Reply<TakenOver>,
    },
    Flush {
        reply: Reply<()>,
    },
}

impl Request {
    /// The agent the request is about; `None`: every agent.
    pub(super) fn agent(&self) -> Option<Uuid> {
        match self {
            Request::Append { agent_id, .. }
            | Request::SetSession { agent_id, .. }
            | Request::Delete { agent_id, .. } => Some(*agent_id),
            Request::SetStatus { change, .. } => Some(change.agent_id),
            // A new agent's id is ours (a UUID); were it not, it blocks everything, which is safe.
            Request::InsertAgent { agent, .. } => Some(agent.id),
            Request::InterruptUnfinished { .. }
            | Request::TakeOver { .. }
            | Request::Flush { .. } => None,
        }
    }

    /// What it writes, as the `operation` of `agentstream_database_errors_total` (one of
    /// [`crate::metrics::DATABASE_OPERATIONS`]).
    pub(super) fn operation(&self) -> &'static str {
        match self {
            Request::InsertAgent { .. } => "insert_agent",
            Request::Append { .. } => "append_message",
            Request::SetStatus { .. } => "set_status",
            Request::SetSession { .. } => "set_session",
            Request::Delete { .. } => "delete_agent",
            Request::InterruptUnfinished { .. } => "interrupt_unfinished",
            Request::TakeOver { .. } => "take_over",
            Request::Flush { .. } => "flush",
        }
    }

    /// Whether it is a message to store.
    pub(super) fn is_message(&self) -> bool {
        matches!(self, Request::Append { .. })
    }

    /// Whether it is a message to store that reports no usage (a token): one INSERT is all it needs.
    pub(super) fn is_plain_message(&self) -> bool {
        match self {
            Request::Append { message, .. } => message
                .outcome
                .as_ref()
                .is_none_or(|o| o.reported.is_none()),
            _ => false,
        }
    }

    /// Sends the outcome of the request's write: what it produced, or `error`. Messages' outcomes are
    /// gathered into `acks`, one [`Stored`] per agent.
    pub(super) fn answer(self, result: Result<(), StoreError>, acks: &mut Acks) {
        match self {
            Request::InsertAgent { agent, reply, .. } => {
                let _ = reply.send(result.map(|()| *agent));
            }
            Request::Append {
                agent_id,
                sequence_number,
                ack,
                ..
            } => match ack {
                Ack::Batch(to) => acks.push(agent_id, to, result.map(|()| sequence_number)),
                Ack::One(reply) => {
                    let _ = reply.send(result.map(|()| sequence_number));
                }
            },
            Request::SetStatus { reply, .. }
            | Request::SetSession { reply, .. }
            | Request::Delete { reply, .. }
            | Request::Flush { reply } => {
                let _ = reply.send(result);
            }
            Request::InterruptUnfinished {
                interrupted, reply, ..
            } => {
                let _ = reply.send(result.map(|()| interrupted));
            }
            Request::TakeOver { taken, reply } => {
                let _ = reply.send(result.map(|()| taken));
            }
        }
    }
}

/// Each agent's message outcomes of one write, in order, to be sent as one [`Stored`] per agent.
#[derive(Default)]
pub(super) struct Acks {
    acks: Vec<(Rc<Recipient<Stored>>, Vec<Outcome>)>,
    slot: HashMap<Uuid, usize>,
}

impl Acks {
    fn push(&mut self, agent: Uuid, to: Rc<Recipient<Stored>>, outcome: Outcome) {
        let acks = &mut self.acks;
        let i = *self.slot.entry(agent).or_insert_with(|| {
            acks.push((to, Vec::new()));
            acks.len() - 1
        });
        acks[i].1.push(outcome);
    }

    /// Tells every agent.
    pub(super) fn send(self) {
        for (to, outcomes) in self.acks {
            to.do_send(Stored(outcomes));
        }
    }
}
