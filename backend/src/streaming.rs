//! The seed's StreamingService, as the persistence actor: the only writer of the database. It stores
//! first and broadcasts after, so no client ever sees a message that `GET …/messages` would lack.
//!
//! Requests queue in the actor; each flush takes everything queued and runs it in one transaction (group
//! commit), then hands the events to the room registry in commit order and answers the requesters. If a
//! batch fails, its requests are retried one per transaction so that one bad request (a message for an
//! agent deleted meanwhile) cannot fail the others. Sequence numbers are assigned inside each INSERT
//! (`MAX + 1` per agent), and since there is one writer they are contiguous.

use actix::prelude::*;
use agentstream_wire::{
    Agent, AgentComplete, AgentCreated, AgentError, AgentMessage, AgentStatus, AgentStatusChanged,
    CompletionResult, ErrorInfo, Message as WireMessage, ServerEvent,
};
use entity::agent;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, SqlErr, TransactionTrait,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::clock;
use crate::gateway::registry::{Broadcast, Event, RoomRegistry, Scope};
use crate::messages;
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
}

/// Stores a new agent; broadcasts `agent:created`.
#[derive(Message)]
#[rtype(result = "Result<Agent, StoreError>")]
pub struct InsertAgent(pub agent::Model);

/// Stores a message of an agent; broadcasts `agent:message` with the stored row.
#[derive(Message)]
#[rtype(result = "Result<WireMessage, StoreError>")]
pub struct AppendMessage {
    pub agent_id: Uuid,
    pub message: ParsedMessage,
}

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

/// Removes an agent and (by the foreign key's cascade) all its messages.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PurgeAgent(pub Uuid);

/// Marks every agent left `initializing`/`running` by a previous process as `interrupted`; replies
/// with their ids.
#[derive(Message)]
#[rtype(result = "Result<Vec<Uuid>, StoreError>")]
pub struct InterruptUnfinished;

/// A queued write.
enum Op {
    InsertAgent(agent::Model),
    Append(Uuid, ParsedMessage),
    SetStatus(SetStatus),
    SetSession(Uuid, SessionInfo),
    Purge(Uuid),
    Interrupt,
}

/// What a write produced.
enum Done {
    Agent(Agent),
    Message(WireMessage),
    Unit,
    Ids(Vec<Uuid>),
}

struct Pending {
    op: Op,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// The persistence actor.
pub struct Persistence {
    db: DatabaseConnection,
    registry: Addr<RoomRegistry>,
    queue: Vec<Pending>,
    flushing: bool,
    mailbox: usize,
}

impl Persistence {
    /// A writer of `db` that broadcasts through `registry`, taking up to `mailbox` requests at once
    /// without making a sender wait (running agents × their window of messages in flight).
    pub fn new(db: DatabaseConnection, registry: Addr<RoomRegistry>, mailbox: usize) -> Self {
        Persistence {
            db,
            registry,
            queue: Vec::new(),
            flushing: false,
            mailbox,
        }
    }

    fn enqueue(
        &mut self,
        op: Op,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Result<Done, StoreError>> {
        let (reply, rx) = oneshot::channel();
        self.queue.push(Pending { op, reply });
        self.flush(ctx);
        rx
    }

    /// Writes everything queued, unless a flush is under way (it will come back for the rest).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.queue.is_empty() {
            return;
        }
        self.flushing = true;
        let batch = std::mem::take(&mut self.queue);
        let db = self.db.clone();
        ctx.spawn(
            async move { write_batch(&db, batch).await }
                .into_actor(self)
                .map(|written, act, ctx| {
                    for (reply, result, events) in written {
                        for event in events {
                            act.registry.do_send(Broadcast(event));
                        }
                        let _ = reply.send(result);
                    }
                    act.flushing = false;
                    act.flush(ctx);
                }),
        );
    }
}

impl Actor for Persistence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Handlers only move requests into `self.queue`, so the mailbox empties fast; sized so that no
        // agent ever waits for a slot (its own window bounds what it sends).
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

/// Answers a request once its write is done.
fn reply<T: 'static>(
    rx: oneshot::Receiver<Result<Done, StoreError>>,
    pick: fn(Done) -> Option<T>,
) -> ResponseFuture<Result<T, StoreError>> {
    Box::pin(async move {
        match rx.await {
            Ok(Ok(done)) => {
                pick(done).ok_or_else(|| StoreError::Database("unexpected reply".into()))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Stopped),
        }
    })
}

impl Handler<InsertAgent> for Persistence {
    type Result = ResponseFuture<Result<Agent, StoreError>>;
    fn handle(&mut self, msg: InsertAgent, ctx: &mut Context<Self>) -> Self::Result {
        reply(self.enqueue(Op::InsertAgent(msg.0), ctx), |d| match d {
            Done::Agent(a) => Some(a),
            _ => None,
        })
    }
}

impl Handler<AppendMessage> for Persistence {
    type Result = ResponseFuture<Result<WireMessage, StoreError>>;
    fn handle(&mut self, msg: AppendMessage, ctx: &mut Context<Self>) -> Self::Result {
        reply(
            self.enqueue(Op::Append(msg.agent_id, msg.message), ctx),
            |d| match d {
                Done::Message(m) => Some(m),
                _ => None,
            },
        )
    }
}

impl Handler<SetStatus> for Persistence {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, msg: SetStatus, ctx: &mut Context<Self>) -> Self::Result {
        reply(self.enqueue(Op::SetStatus(msg), ctx), |d| match d {
            Done::Unit => Some(()),
            _ => None,
        })
    }
}

impl Handler<SetSession> for Persistence {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, msg: SetSession, ctx: &mut Context<Self>) -> Self::Result {
        reply(
            self.enqueue(Op::SetSession(msg.agent_id, msg.session), ctx),
            |d| match d {
                Done::Unit => Some(()),
                _ => None,
            },
        )
    }
}

impl Handler<PurgeAgent> for Persistence {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, msg: PurgeAgent, ctx: &mut Context<Self>) -> Self::Result {
        reply(self.enqueue(Op::Purge(msg.0), ctx), |d| match d {
            Done::Unit => Some(()),
            _ => None,
        })
    }
}

impl Handler<InterruptUnfinished> for Persistence {
    type Result = ResponseFuture<Result<Vec<Uuid>, StoreError>>;
    fn handle(&mut self, _: InterruptUnfinished, ctx: &mut Context<Self>) -> Self::Result {
        reply(self.enqueue(Op::Interrupt, ctx), |d| match d {
            Done::Ids(ids) => Some(ids),
            _ => None,
        })
    }
}

type Written = Vec<(
    oneshot::Sender<Result<Done, StoreError>>,
    Result<Done, StoreError>,
    Vec<Event>,
)>;

/// Runs a batch in one transaction; on failure, each request in its own.
async fn write_batch(db: &DatabaseConnection, batch: Vec<Pending>) -> Written {
    let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
    if ops.len() > 1 {
        match write_all(db, &ops).await {
            Ok(done) => {
                return replies
                    .into_iter()
                    .zip(done)
                    .map(|(reply, (done, events))| (reply, Ok(done), events))
                    .collect()
            }
            Err(e) => {
                tracing::debug!(error = %e, size = ops.len(), "batch failed; writing one by one")
            }
        }
    }
    let mut written = Vec::with_capacity(ops.len());
    for (op, reply) in ops.into_iter().zip(replies) {
        let result = write_all(db, std::slice::from_ref(&op)).await;
        written.push(match result {
            Ok(mut done) => match done.pop() {
                Some((done, events)) => (reply, Ok(done), events),
                None => (
                    reply,
                    Err(StoreError::Database("nothing written".into())),
                    vec![],
                ),
            },
            Err(e) => {
                let error = classify(&e);
                let mut events = Vec::new();
                if let (StoreError::AgentGone, Op::Append(agent_id, _)) = (&error, &op) {
                    tracing::warn!(%agent_id, "message refused: its agent was deleted meanwhile");
                    events.push(agent_error(
                        *agent_id,
                        ErrorInfo::new(
                            "agent_deleted",
                            "the agent was deleted; its output is no longer stored",
                        ),
                    ));
                } else if !matches!(error, StoreError::AgentGone) {
                    tracing::error!(error = %e, "write failed");
                }
                (reply, Err(error), events)
            }
        });
    }
    written
}

fn classify(e: &DbErr) -> StoreError {
    match e.sql_err() {
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => StoreError::AgentGone,
        _ if e.to_string().contains("FOREIGN KEY constraint failed") => StoreError::AgentGone,
        _ => match e {
            DbErr::RecordNotUpdated => StoreError::AgentGone,
            other => StoreError::Database(other.to_string()),
        },
    }
}

fn agent_error(agent_id: Uuid, error: ErrorInfo) -> Event {
    Event::new(
        Scope::Room(agent_id),
        &ServerEvent::AgentError(AgentError {
            agent_id,
            error,
            timestamp: clock::now(),
        }),
    )
}

/// Runs `ops` in one transaction; returns what each produced and the events to broadcast once committed.
async fn write_all(db: &DatabaseConnection, ops: &[Op]) -> Result<Vec<(Done, Vec<Event>)>, DbErr> {
    let txn = db.begin().await?;
    let mut out = Vec::with_capacity(ops.len());
    let mut i = 0;
    while i < ops.len() {
        // A run of messages goes in as one multi-row INSERT; everything else one by one, in order.
        let run = ops[i..]
            .iter()
            .take(messages::MAX_ROWS_PER_INSERT)
            .take_while(|op| matches!(op, Op::Append(..)))
            .count();
        if run > 1 {
            out.extend(append_many(&txn, &ops[i..i + run]).await?);
            i += run;
        } else {
            out.push(write_one(&txn, &ops[i]).await?);
            i += 1;
        }
    }
    txn.commit().await?;
    Ok(out)
}

/// Stores a run of `Op::Append`s with one statement.
async fn append_many(
    txn: &impl ConnectionTrait,
    ops: &[Op],
) -> Result<Vec<(Done, Vec<Event>)>, DbErr> {
    let created_at = clock::now();
    let mut ordinals: std::collections::HashMap<Uuid, i64> = std::collections::HashMap::new();
    let mut rows = Vec::with_capacity(ops.len());
    for op in ops {
        if let Op::Append(agent_id, parsed) = op {
            let ordinal = ordinals.entry(*agent_id).or_insert(0);
            *ordinal += 1;
            rows.push(messages::NewMessage {
                id: Uuid::now_v7(),
                agent_id: *agent_id,
                ordinal: *ordinal,
                parsed,
                created_at: &created_at,
            });
        }
    }
    let stmt = messages::insert_messages_statement(txn.get_database_backend(), &rows);
    let mut numbers: std::collections::HashMap<String, i64> =
        std::collections::HashMap::with_capacity(rows.len());
    for row in txn.query_all(stmt).await? {
        numbers.insert(row.try_get("", "id")?, row.try_get("", "sequence_number")?);
    }
    let timestamp = clock::now();
    rows.iter()
        .map(|row| {
            let sequence_number = *numbers
                .get(&row.id.to_string())
                .ok_or_else(|| DbErr::Custom("a stored message was not returned".into()))?;
            let message = WireMessage {
                id: row.id,
                agent_id: row.agent_id,
                sequence_number,
                message_type: row.parsed.message_type,
                role: row.parsed.role.clone(),
                content: row.parsed.content.clone(),
                raw: Some(row.parsed.raw.clone()),
                metadata: row.parsed.metadata.clone(),
                created_at: created_at.clone(),
            };
            let event = Event::new(
                Scope::Room(row.agent_id),
                &ServerEvent::AgentMessage(AgentMessage {
                    agent_id: row.agent_id,
                    message: message.clone(),
                    timestamp: timestamp.clone(),
                }),
            );
            Ok((Done::Message(message), vec![event]))
        })
        .collect()
}

async fn write_one(txn: &impl ConnectionTrait, op: &Op) -> Result<(Done, Vec<Event>), DbErr> {
    match op {
        Op::InsertAgent(model) => {
            entity::Agent::insert(model.clone().into_active_model().reset_all())
                .exec_without_returning(txn)
                .await?;
            let agent = messages::agent_to_wire(model.clone())?;
            let event = Event::new(
                Scope::All,
                &ServerEvent::AgentCreated(AgentCreated {
                    agent: agent.clone(),
                    timestamp: clock::now(),
                }),
            );
            Ok((Done::Agent(agent), vec![event]))
        }
        Op::Append(agent_id, parsed) => {
            let id = Uuid::now_v7();
            let created_at = clock::now();
            let stmt = messages::insert_message_statement(txn, id, *agent_id, parsed, &created_at)?;
            let row = txn
                .query_one(stmt)
                .await?
                .ok_or_else(|| DbErr::Custom("the insert returned no row".into()))?;
            let sequence_number: i64 = row.try_get("", "sequence_number")?;
            let message = WireMessage {
                id,
                agent_id: *agent_id,
                sequence_number,
                message_type: parsed.message_type,
                role: parsed.role.clone(),
                content: parsed.content.clone(),
                raw: Some(parsed.raw.clone()),
                metadata: parsed.metadata.clone(),
                created_at,
            };
            let event = Event::new(
                Scope::Room(*agent_id),
                &ServerEvent::AgentMessage(AgentMessage {
                    agent_id: *agent_id,
                    message: message.clone(),
                    timestamp: clock::now(),
                }),
            );
            Ok((Done::Message(message), vec![event]))
        }
        Op::SetStatus(change) => {
            let mut update = entity::Agent::update_many()
                .col_expr(agent::Column::Status, Expr::value(change.status.as_str()))
                .filter(agent::Column::Id.eq(change.agent_id.to_string()));
            if let Some(t) = &change.started_at {
                update = update.col_expr(agent::Column::StartedAt, Expr::value(t.clone()));
            }
            if let Some(t) = &change.completed_at {
                update = update.col_expr(agent::Column::CompletedAt, Expr::value(t.clone()));
            }
            if let Some(e) = &change.error {
                update = update
                    .col_expr(agent::Column::ErrorCode, Expr::value(e.code.clone()))
                    .col_expr(agent::Column::ErrorMessage, Expr::value(e.message.clone()));
            }
            if update.exec(txn).await?.rows_affected == 0 {
                return Err(DbErr::RecordNotUpdated);
            }
            Ok((Done::Unit, status_events(change)))
        }
        Op::SetSession(agent_id, session) => {
            entity::Agent::update_many()
                .col_expr(
                    agent::Column::SessionId,
                    Expr::value(session.session_id.clone()),
                )
                .col_expr(agent::Column::Model, Expr::value(session.model.clone()))
                .filter(agent::Column::Id.eq(agent_id.to_string()))
                .exec(txn)
                .await?;
            Ok((Done::Unit, vec![]))
        }
        Op::Purge(agent_id) => {
            entity::Agent::delete_by_id(agent_id.to_string())
                .exec(txn)
                .await?;
            Ok((Done::Unit, vec![]))
        }
        Op::Interrupt => {
            let ids = messages::unfinished_agents(txn).await?;
            let mut events = Vec::with_capacity(ids.len());
            let mut uuids = Vec::with_capacity(ids.len());
            for id in ids {
                entity::Agent::update(agent::ActiveModel {
                    id: ActiveValue::Unchanged(id.clone()),
                    status: ActiveValue::Set(AgentStatus::Interrupted.as_str().to_owned()),
                    ..Default::default()
                })
                .exec(txn)
                .await?;
                if let Ok(uuid) = Uuid::parse_str(&id) {
                    uuids.push(uuid);
                    events.extend(status_events(&SetStatus::new(
                        uuid,
                        AgentStatus::Interrupted,
                    )));
                }
            }
            Ok((Done::Ids(uuids), events))
        }
    }
}

/// `agent:status`, then `agent:error` and `agent:complete` when the change carries them.
fn status_events(change: &SetStatus) -> Vec<Event> {
    let now = clock::now();
    let mut events = vec![Event::new(
        Scope::All,
        &ServerEvent::AgentStatus(AgentStatusChanged {
            agent_id: change.agent_id,
            status: change.status,
            timestamp: now.clone(),
        }),
    )];
    if let Some(error) = &change.error {
        events.push(agent_error(change.agent_id, error.clone()));
    }
    if let Some(result) = &change.complete {
        events.push(Event::new(
            Scope::Room(change.agent_id),
            &ServerEvent::AgentComplete(AgentComplete {
                agent_id: change.agent_id,
                result: result.clone(),
                timestamp: now,
            }),
        ));
    }
    events
}
