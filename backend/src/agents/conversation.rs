//! Talking to a running agent: follow-ups ([`SendInput`]), interrupts ([`Interrupt`]) and answers to
//! its permission requests ([`AnswerPermission`]), handled by its [`AgentActor`].
//!
//! Whatever a client sends is stored first, as the agent's next message, and only then written to the
//! agent, one at a time and in the order the requests came (the agent's inbox): every client sees the
//! conversation in the order the agent got it. A follow-up the running agent can take (the Claude CLI
//! reads stream-json on stdin, and so does the synthetic agent) goes to it at once, and a follow-up
//! written during a turn becomes the next turn; one it cannot take (its input closed, a proxy's run,
//! no run at all) waits and starts the next run, which continues the session.

use std::collections::VecDeque;

use actix::prelude::*;
use actix_web::http::StatusCode;
use agentstream_wire::{
    keys, AgentStatus, AgentType, ErrorCode, EventType, MessageType, PermissionAnswer,
    PermissionDecision, StoredMessage,
};
use serde_json::json;
use tokio::sync::oneshot;

use super::agent::{AgentActor, Phase};
use crate::error::ApiError;
use crate::parser::{ParsedMessage, RunOutcome};
use crate::persistence::{SetStatus, StoreError, StoreMessage};
use crate::runners::{stream_json, CannotContinue};
use crate::store;

/// Why a conversation request was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConversationError {
    #[error("the agent is being deleted, or the server is shutting down")]
    Stopping,
    #[error("no turn of the agent is under way")]
    NotRunning,
    #[error("the agent never reported a session (it ended before it started one), so it cannot be continued")]
    NoSession,
    #[error("agents of type {0} cannot be continued")]
    Unsupported(AgentType),
    #[error("the agent was asked no permission {0:?}")]
    PermissionNotFound(String),
    #[error("the permission request {0:?} is not waiting for an answer (answered already, or its turn ended)")]
    PermissionNotPending(String),
    #[error("the agent has {0} follow-ups waiting already; try again when it has answered")]
    InboxFull(usize),
    #[error("the agent no longer exists")]
    AgentGone,
    #[error("the message could not be stored: {0}")]
    Storage(String),
    #[error(
        "another instance has taken the agent over (this one's lease had run out); send it again"
    )]
    TakenOver,
}

impl ConversationError {
    /// The REST error of `agent_id`'s request.
    pub fn into_api(self, agent_id: uuid::Uuid) -> ApiError {
        let message = self.to_string();
        let (status, code) = match self {
            ConversationError::Stopping => (StatusCode::CONFLICT, ErrorCode::AgentStopping),
            ConversationError::NotRunning => (StatusCode::CONFLICT, ErrorCode::NotRunning),
            ConversationError::NoSession => (StatusCode::CONFLICT, ErrorCode::NoSession),
            ConversationError::Unsupported(_) => {
                (StatusCode::CONFLICT, ErrorCode::ConversationUnsupported)
            }
            ConversationError::PermissionNotFound(_) => {
                (StatusCode::NOT_FOUND, ErrorCode::PermissionNotFound)
            }
            ConversationError::PermissionNotPending(_) => {
                (StatusCode::CONFLICT, ErrorCode::PermissionNotPending)
            }
            ConversationError::InboxFull(_) => {
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::InboxFull)
            }
            ConversationError::AgentGone => return ApiError::agent_not_found(agent_id),
            ConversationError::Storage(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StorageError)
            }
            ConversationError::TakenOver => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::OwnerUnavailable)
            }
        };
        ApiError::new(status, code, message)
    }
}

impl From<CannotContinue> for ConversationError {
    fn from(e: CannotContinue) -> Self {
        match e {
            CannotContinue::NoSession => ConversationError::NoSession,
            CannotContinue::Unsupported(agent_type) => ConversationError::Unsupported(agent_type),
        }
    }
}

impl From<StoreError> for ConversationError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AgentGone => ConversationError::AgentGone,
            StoreError::Stopped => ConversationError::Stopping,
            StoreError::Database(e) => ConversationError::Storage(e),
            StoreError::LeaseLost => ConversationError::TakenOver,
        }
    }
}

/// What a conversation request replies: the message it stored.
pub type Reply = Result<StoredMessage, ConversationError>;

/// A follow-up: stored as the agent's next message (`user`, `user_input`), then written to it, or kept
/// for its next run. Replied once it is stored.
#[derive(Message)]
#[rtype(result = "Reply")]
pub struct SendInput {
    pub content: String,
    /// Who wrote it when not a client (`restart`: the server resumes an agent a restart cut off).
    pub origin: Option<&'static str>,
}

/// Stops the agent's current turn, keeping its session.
#[derive(Message)]
#[rtype(result = "Result<(), ConversationError>")]
pub struct Interrupt;

/// Answers one of the agent's permission requests; the first answer wins.
#[derive(Message)]
#[rtype(result = "Reply")]
pub struct AnswerPermission {
    pub request_id: String,
    pub answer: PermissionAnswer,
}

/// Something to store and then write to the agent, in arrival order.
pub(super) enum Pending {
    Input {
        content: String,
        origin: Option<&'static str>,
        reply: oneshot::Sender<Reply>,
    },
    Answer {
        request_id: String,
        tool_name: String,
        answer: PermissionAnswer,
        reply: oneshot::Sender<Reply>,
    },
}

impl Pending {
    fn refuse(self, error: ConversationError) {
        let (Pending::Input { reply, .. } | Pending::Answer { reply, .. }) = self;
        let _ = reply.send(Err(error));
    }
}

/// At most this many follow-ups wait for an agent (stored or not): each may become a turn.
pub const MAX_WAITING_INPUTS: usize = 100;

/// What a conversation holds beyond the run: the inbox, the follow-ups waiting for a run, the turns
/// under way and the permission requests open.
#[derive(Default)]
pub(super) struct Conversation {
    /// Requests not stored yet, in arrival order; the first is being stored when `storing`.
    pub inbox: VecDeque<Pending>,
    pub storing: bool,
    /// Stored follow-ups the runner has not taken: they start the next run.
    pub waiting: VecDeque<String>,
    /// Prompts the runner has taken whose turn has not ended (no `result` yet).
    pub turns_open: usize,
    /// The runner's input is closed (its last turn ended): what comes now waits for the next run.
    pub input_closed: bool,
    /// An interrupt was asked for the current turn.
    pub interrupting: bool,
    /// The last turn that ended was interrupted.
    pub last_turn_interrupted: bool,
    /// Open permission requests: id → tool name.
    pub permissions: std::collections::HashMap<String, String>,
    /// Requests answered (or voided by their turn's end): a second answer gets 409.
    pub answered: std::collections::HashSet<String>,
    /// The agent's stored status is `awaiting_permission`.
    pub awaiting: bool,
    /// DELETE or shutdown: nothing more is taken, and no run follows.
    pub stopping: bool,
}

impl Conversation {
    /// Refuses everything not stored yet.
    pub fn refuse_all(&mut self, error: ConversationError) {
        for pending in self.inbox.drain(..) {
            pending.refuse(error.clone());
        }
    }

    /// The open requests die with their turn.
    pub fn void_permissions(&mut self) {
        for (id, _) in self.permissions.drain() {
            self.answered.insert(id);
        }
    }
}

/// The stored form of a follow-up.
fn input_message(content: &str, origin: Option<&'static str>) -> ParsedMessage {
    let mut metadata = json!({ (keys::EVENT_TYPE): EventType::UserInput });
    if let Some(origin) = origin {
        metadata[keys::ORIGIN] = json!(origin);
    }
    ParsedMessage {
        message_type: EventType::UserInput.message_type(),
        role: Some("user".to_owned()),
        content: content.to_owned(),
        raw: stream_json::user_line(content),
        metadata,
        outcome: None,
        session: None,
    }
}

/// The stored form of a permission answer.
fn answer_message(request_id: &str, tool_name: &str, answer: &PermissionAnswer) -> ParsedMessage {
    let mut metadata = json!({
        (keys::EVENT_TYPE): EventType::PermissionResponse,
        (keys::REQUEST_ID): request_id,
        (keys::TOOL_NAME): tool_name,
        (keys::DECISION): answer.decision,
    });
    if let Some(message) = &answer.message {
        metadata[keys::MESSAGE] = json!(message);
    }
    if let Some(input) = &answer.updated_input {
        metadata[keys::UPDATED_INPUT] = input.clone();
    }
    if answer.always == Some(true) {
        metadata[keys::ALWAYS] = json!(true);
    }
    ParsedMessage {
        message_type: EventType::PermissionResponse.message_type(),
        role: Some("user".to_owned()),
        content: format!("{} {tool_name}", answer.decision),
        raw: stream_json::permission_answer_line(request_id, tool_name, answer),
        metadata,
        outcome: None,
        session: None,
    }
}

impl AgentActor {
    /// Stores the next request of the inbox (one at a time, so they are stored and written in order).
    pub(super) fn pump_inbox(&mut self, ctx: &mut Context<Self>) {
        if self.conversation.storing || matches!(self.phase, Phase::Loading) {
            return;
        }
        let Some(pending) = self.conversation.inbox.pop_front() else {
            return;
        };
        if self.conversation.stopping {
            pending.refuse(ConversationError::Stopping);
            return self.pump_inbox(ctx);
        }
        let message = match &pending {
            Pending::Input {
                content, origin, ..
            } => input_message(content, *origin),
            Pending::Answer {
                request_id,
                tool_name,
                answer,
                ..
            } => answer_message(request_id, tool_name, answer),
        };
        self.conversation.storing = true;
        let store = self.persistence.send(StoreMessage {
            agent_id: self.id,
            message,
        });
        let db = self.db.clone();
        let id = self.id;
        ctx.spawn(
            async move {
                let sequence = store.await.unwrap_or(Err(StoreError::Stopped))?;
                // Read back as every client will read it (its id and time were set by the write).
                let stored = store::find_since(&db, id, sequence - 1, Some(1))
                    .await
                    .map_err(|e| StoreError::Database(e.to_string()))?;
                stored
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::Database("the stored message was not found".into()))
            }
            .into_actor(self)
            .map(move |stored, act, ctx| {
                act.conversation.storing = false;
                match stored {
                    Ok(stored) => act.stored_pending(pending, stored, ctx),
                    Err(e) => {
                        let gone = e.disowns();
                        let refused: ConversationError = e.into();
                        pending.refuse(refused.clone());
                        if gone {
                            return act.abandon(refused, ctx);
                        }
                    }
                }
                if act.conversation.stopping && matches!(act.phase, Phase::Idle | Phase::Loading) {
                    // Stopped while it was being stored: it stays in the history, no run takes it.
                    return ctx.stop();
                }
                act.pump_inbox(ctx);
            }),
        );
    }

    /// A request is stored: write it to the agent (or keep a follow-up for the next run), and answer.
    fn stored_pending(&mut self, pending: Pending, stored: StoredMessage, ctx: &mut Context<Self>) {
        self.last_sequence = self.last_sequence.max(stored.sequence_number);
        match pending {
            Pending::Input { content, reply, .. } => {
                let _ = reply.send(Ok(stored));
                self.deliver(content, ctx);
            }
            Pending::Answer {
                request_id,
                tool_name,
                answer,
                reply,
            } => {
                let _ = reply.send(Ok(stored));
                if answer.always == Some(true) && answer.decision == PermissionDecision::Allow {
                    self.allow_always(&tool_name);
                }
                if let Some(control) = self.control() {
                    if control
                        .answer_permission(&request_id, &tool_name, &answer)
                        .is_err()
                    {
                        tracing::warn!(agent_id = %self.id, "a permission answer found the agent's input closed");
                    }
                }
                if self.conversation.permissions.is_empty() {
                    self.resume_running();
                }
            }
        }
    }

    /// Status back to `running` once no permission request waits (and the run goes on).
    pub(super) fn resume_running(&mut self) {
        if self.conversation.awaiting && matches!(self.phase, Phase::Running(_)) {
            self.conversation.awaiting = false;
            self.persistence
                .do_send(SetStatus::new(self.id, AgentStatus::Running));
        }
    }

    /// Writes a stored follow-up to the running agent, or keeps it for the next run.
    fn deliver(&mut self, content: String, ctx: &mut Context<Self>) {
        if self.conversation.stopping {
            return;
        }
        // Only a running runner takes it: one that has exited (draining) may never read it.
        let open = !self.conversation.input_closed && matches!(self.phase, Phase::Running(_));
        if let (true, Some(control)) = (open, self.control()) {
            if control.send_input(&content).is_ok() {
                self.conversation.turns_open += 1;
                return;
            }
        }
        self.conversation.waiting.push_back(content);
        if matches!(self.phase, Phase::Idle) {
            self.start_next_run(ctx);
        }
    }

    /// Writes the follow-ups that waited to a run that has just started.
    pub(super) fn deliver_waiting(&mut self) {
        while let Some(content) = self.conversation.waiting.pop_front() {
            let taken = self
                .control()
                .is_some_and(|control| control.send_input(&content).is_ok());
            if !taken {
                self.conversation.waiting.push_front(content);
                break;
            }
            self.conversation.turns_open += 1;
        }
    }

    /// A turn's `result` arrived: the turn decides how the run ends unless another follows (the first
    /// `result` of a turn counts: anything printed after it is stored, but cannot turn a completed
    /// turn into a failed one or back). With no turn left, the agent's input is closed so that it exits.
    pub(super) fn turn_ended(&mut self, outcome: &RunOutcome) {
        let c = &mut self.conversation;
        if c.turns_open > 0 {
            c.turns_open -= 1;
            c.last_turn_interrupted = c.interrupting;
            c.interrupting = false;
            self.outcome = Some(outcome.clone());
        } else if self.outcome.is_none() {
            self.outcome = Some(outcome.clone());
        }
        // What the ended turn asked dies with it.
        self.conversation.void_permissions();
        if self.conversation.turns_open > 0 {
            self.resume_running();
            return;
        }
        self.conversation.awaiting = false;
        if !self.conversation.input_closed {
            self.conversation.input_closed = true;
            if let Some(control) = self.control() {
                control.end_input();
            }
        }
    }

    /// A permission request arrived in the agent's output: it waits for an answer.
    pub(super) fn permission_asked(&mut self, message: &ParsedMessage) {
        if message.message_type != MessageType::Tool
            || EventType::of(&message.metadata) != Some(EventType::PermissionRequest)
        {
            return;
        }
        let text = |key: &str| {
            message.metadata[key]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        self.conversation
            .permissions
            .insert(text(keys::REQUEST_ID), text(keys::TOOL_NAME));
    }
}

impl Handler<SendInput> for AgentActor {
    type Result = ResponseFuture<Reply>;

    fn handle(&mut self, msg: SendInput, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        let queued = self.conversation.inbox.len() + self.conversation.waiting.len();
        if self.conversation.stopping {
            let _ = reply.send(Err(ConversationError::Stopping));
        } else if queued >= MAX_WAITING_INPUTS {
            let _ = reply.send(Err(ConversationError::InboxFull(queued)));
        } else {
            self.conversation.inbox.push_back(Pending::Input {
                content: msg.content,
                origin: msg.origin,
                reply,
            });
            self.pump_inbox(ctx);
        }
        Box::pin(async move { answer.await.unwrap_or(Err(ConversationError::Stopping)) })
    }
}

impl Handler<Interrupt> for AgentActor {
    type Result = Result<(), ConversationError>;

    fn handle(&mut self, _: Interrupt, ctx: &mut Context<Self>) -> Self::Result {
        if self.conversation.stopping {
            return Err(ConversationError::Stopping);
        }
        let under_way = matches!(self.phase, Phase::Starting | Phase::Running(_))
            && self.conversation.turns_open > 0;
        if !under_way {
            return Err(ConversationError::NotRunning);
        }
        if self.conversation.interrupting {
            return Ok(());
        }
        self.conversation.interrupting = true;
        // The agent cancels what it asked (the CLI prints `control_cancel_request`).
        self.conversation.void_permissions();
        let request_id = format!("interrupt-{}", uuid::Uuid::new_v4().simple());
        let Some(control) = self.control() else {
            // Still starting: the turn is interrupted as soon as the runner is there.
            return Ok(());
        };
        if control.request_interrupt(&request_id).is_err() {
            // No input to ask over: a signal (a process), or the run is stopped (a proxy's).
            let interrupted = control.interrupt();
            ctx.spawn(fut::wrap_future(interrupted));
        }
        Ok(())
    }
}

impl Handler<AnswerPermission> for AgentActor {
    type Result = ResponseFuture<Reply>;

    fn handle(&mut self, msg: AnswerPermission, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        let id = msg.request_id;
        if self.conversation.stopping {
            let _ = reply.send(Err(ConversationError::Stopping));
        } else if let Some(tool_name) = self.conversation.permissions.remove(&id) {
            // Taken now: a second answer, even one that arrives before this one is stored, gets 409.
            self.conversation.answered.insert(id.clone());
            self.conversation.inbox.push_back(Pending::Answer {
                request_id: id,
                tool_name,
                answer: msg.answer,
                reply,
            });
            self.pump_inbox(ctx);
        } else if self.conversation.answered.contains(&id) {
            let _ = reply.send(Err(ConversationError::PermissionNotPending(id)));
        } else {
            let _ = reply.send(Err(ConversationError::PermissionNotFound(id)));
        }
        Box::pin(async move { answer.await.unwrap_or(Err(ConversationError::Stopping)) })
    }
}
