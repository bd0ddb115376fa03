//! The seed's StreamingService, as the persistence actor: the only writer of the database. It stores
//! first and broadcasts after, so no client ever sees a message that `GET …/messages` would lack.
//!
//! Requests queue in the actor; each flush takes what is queued and runs it in one transaction (group
//! commit), then hands the events to the room registry in commit order and answers the requesters.
//! Messages go first, in writes of messages only, with other requests written in bounded turns
//! between them ([`queue`]). If a batch fails, its requests are retried one per transaction so that
//! one bad request (a message for an agent deleted meanwhile) cannot fail the others.
//!
//! Sequence numbers are `MAX(sequence_number) + 1` per agent. This actor is the only writer, so it keeps
//! each running agent's last number (read from the database in the batch's transaction the first time,
//! updated only once a batch is committed) and writes a run of messages as one plain multi-row INSERT —
//! no per-row read-back. `UNIQUE(agent_id, sequence_number)` still guards the numbers: should anything
//! else have written, the batch fails and is retried one message at a time with the `MAX + 1` computed
//! inside each INSERT, which also refreshes the kept numbers.

use actix::prelude::*;
use std::collections::HashMap;
use std::rc::Rc;

use agentstream_wire::{
    Agent, AgentComplete, AgentCreated, AgentError, AgentStatus, AgentStatusChanged,
    CompletionResult, ErrorInfo, ServerEvent,
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
use crate::json_text;
use crate::messages;
use crate::parser::{ParsedMessage, SessionInfo};

mod queue;
use queue::WriteQueue;

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

/// The outcome of an agent's messages ([`AppendMessages`]) of one write batch, in the order they were sent: the
/// sequence number each got, or why it was not stored.
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
    Agent(Box<Agent>),
    /// A message was stored with this sequence number.
    Stored(i64),
    Unit,
    Ids(Vec<Uuid>),
}

/// Where a write's outcome goes.
enum ReplyTo {
    /// A request awaiting its answer.
    Once(oneshot::Sender<Result<Done, StoreError>>),
    /// An agent's actor, told in batches ([`Stored`]); shared by all the messages of one
    /// [`AppendMessages`] (a `Recipient` clone per message was an allocation per message).
    Agent {
        agent: Uuid,
        to: Rc<Recipient<Stored>>,
    },
}

struct Pending {
    op: Op,
    reply: ReplyTo,
}

/// The last sequence number of each agent that wrote through this actor (see the module comment).
type LastSequences = HashMap<Uuid, i64>;

/// A write batch taking longer than this is logged (every message in it, and every one queued behind it,
/// waits that long to be shown).
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(100);

/// The persistence actor.
pub struct Persistence {
    db: DatabaseConnection,
    registry: Addr<RoomRegistry>,
    queue: WriteQueue,
    flushing: bool,
    mailbox: usize,
    /// Lent to the batch being written (only one is at a time).
    last: LastSequences,
}

impl Persistence {
    /// A writer of `db` that broadcasts through `registry`, taking up to `mailbox` requests at once
    /// without making a sender wait (running agents × their window of messages in flight).
    pub fn new(db: DatabaseConnection, registry: Addr<RoomRegistry>, mailbox: usize) -> Self {
        Persistence {
            db,
            registry,
            queue: WriteQueue::default(),
            flushing: false,
            mailbox,
            last: LastSequences::new(),
        }
    }

    fn enqueue(
        &mut self,
        op: Op,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Result<Done, StoreError>> {
        let (reply, rx) = oneshot::channel();
        self.queue.push(Pending {
            op,
            reply: ReplyTo::Once(reply),
        });
        self.flush(ctx);
        rx
    }

    /// Writes the next batch of what is queued, unless a flush is under way (it will come back for the
    /// rest).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.queue.is_empty() {
            return;
        }
        self.flushing = true;
        let batch = self.queue.next_batch();
        let mut last = std::mem::take(&mut self.last);
        let db = self.db.clone();
        ctx.spawn(
            async move {
                let size = batch.len();
                let begun = std::time::Instant::now();
                let written = write_batch(&db, batch, &mut last).await;
                let took = begun.elapsed();
                if took >= SLOW_WRITE {
                    tracing::warn!(size, ms = took.as_millis() as u64, "slow database write");
                }
                (written, last)
            }
            .into_actor(self)
            .map(|(written, last), act, ctx| {
                act.last = last;
                // Committed: announce everything (one hand-over for the batch), then answer.
                let mut events = Vec::with_capacity(written.len());
                let mut replies = Vec::with_capacity(written.len());
                for (reply, result, mut produced) in written {
                    events.append(&mut produced);
                    replies.push((reply, result));
                }
                if !events.is_empty() {
                    act.registry.do_send(Broadcast(events));
                }
                // Each agent's outcomes in one message, in order.
                let mut acks: Vec<(Rc<Recipient<Stored>>, Vec<Outcome>)> = Vec::new();
                let mut slot: HashMap<Uuid, usize> = HashMap::new();
                for (reply, result) in replies {
                    match reply {
                        ReplyTo::Once(tx) => {
                            let _ = tx.send(result);
                        }
                        ReplyTo::Agent { agent, to } => {
                            let outcome = result.and_then(|done| match done {
                                Done::Stored(seq) => Ok(seq),
                                _ => Err(StoreError::Database("unexpected reply".into())),
                            });
                            let i = *slot.entry(agent).or_insert_with(|| {
                                acks.push((to, Vec::new()));
                                acks.len() - 1
                            });
                            acks[i].1.push(outcome);
                        }
                    }
                }
                for (to, outcomes) in acks {
                    to.do_send(Stored(outcomes));
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
            Done::Agent(a) => Some(*a),
            _ => None,
        })
    }
}

impl Handler<AppendMessages> for Persistence {
    type Result = ();
    fn handle(&mut self, msg: AppendMessages, ctx: &mut Context<Self>) {
        let agent = msg.agent_id;
        let ack = Rc::new(msg.ack);
        for message in msg.messages {
            self.queue.push(Pending {
                op: Op::Append(agent, message),
                reply: ReplyTo::Agent {
                    agent,
                    to: ack.clone(),
                },
            });
        }
        self.flush(ctx);
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

type Written = Vec<(ReplyTo, Result<Done, StoreError>, Vec<Event>)>;

/// Runs a batch in one transaction; on failure, each request in its own.
async fn write_batch(
    db: &DatabaseConnection,
    batch: Vec<Pending>,
    last: &mut LastSequences,
) -> Written {
    let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
    if ops.len() > 1 {
        match write_all(db, &ops, last).await {
            Ok(done) => {
                return replies
                    .into_iter()
                    .zip(done)
                    .map(|(reply, (done, events))| (reply, Ok(done), events))
                    .collect()
            }
            Err(e) => {
                tracing::debug!(error = %e, size = ops.len(), "batch failed; writing one by one");
                // Whatever the failure, numbers are read afresh from the database from now on.
                for op in &ops {
                    if let Op::Append(agent_id, _) = op {
                        last.remove(agent_id);
                    }
                }
            }
        }
    }
    let mut written = Vec::with_capacity(ops.len());
    // Agents already told (once per batch) that their output could not be stored.
    let mut told = std::collections::HashSet::new();
    for (op, reply) in ops.into_iter().zip(replies) {
        let result = write_all(db, std::slice::from_ref(&op), last).await;
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
                    // Not stored, so not broadcast: the agent's subscribers learn why it stops.
                    if let Op::Append(agent_id, _) = &op {
                        if told.insert(*agent_id) {
                            events.push(agent_error(
                                *agent_id,
                                ErrorInfo::new(
                                    "storage_error",
                                    format!("the agent's output could not be stored: {e}"),
                                ),
                            ));
                        }
                    }
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

/// Changes to [`LastSequences`] made by a transaction, applied once it commits.
#[derive(Default)]
struct Staged {
    set: HashMap<Uuid, i64>,
    /// Agents that ended or were removed: their numbers are kept no longer.
    forget: Vec<Uuid>,
}

impl Staged {
    /// The write committed: its numbers are kept, those of agents that ended are dropped.
    fn apply(mut self, last: &mut LastSequences) {
        for id in self.forget {
            last.remove(&id);
            self.set.remove(&id);
        }
        last.extend(self.set);
    }
}

/// Runs `ops` in one transaction; returns what each produced and the events to broadcast once committed.
async fn write_all(
    db: &DatabaseConnection,
    ops: &[Op],
    last: &mut LastSequences,
) -> Result<Vec<(Done, Vec<Event>)>, DbErr> {
    let mut staged = Staged::default();
    // The usual batch under load: messages only. Few enough for one statement, which is atomic by
    // itself, they go without BEGIN and COMMIT round trips to the database thread.
    if ops.iter().all(|op| matches!(op, Op::Append(..))) {
        let one_statement = ops.len() <= messages::MAX_ROWS_PER_INSERT;
        if matches!(db, DatabaseConnection::SqlxSqlitePoolConnection(_)) {
            // On SQLite straight through sqlx (`messages::insert_numbered_sqlite`).
            resolve_last(db, ops, last, &mut staged).await?;
            let pool = db.get_sqlite_connection_pool();
            let out = if one_statement {
                let mut conn = pool.acquire().await.map_err(messages::sqlx_error)?;
                append_many(&mut *conn, ops, last, &mut staged).await?
            } else {
                // Rolled back when dropped uncommitted (a statement failed).
                let mut txn = pool.begin().await.map_err(messages::sqlx_error)?;
                let out = append_many(&mut *txn, ops, last, &mut staged).await?;
                txn.commit().await.map_err(messages::sqlx_error)?;
                out
            };
            staged.apply(last);
            return Ok(out);
        }
        if one_statement {
            resolve_last(db, ops, last, &mut staged).await?;
            let out = append_many(&mut Statements(db), ops, last, &mut staged).await?;
            staged.apply(last);
            return Ok(out);
        }
    }
    let txn = db.begin().await?;
    let mut out = Vec::with_capacity(ops.len());
    let mut i = 0;
    while i < ops.len() {
        // A run of messages goes in as multi-row INSERTs (`append_many`); everything else one by one, in order.
        let run = ops[i..]
            .iter()
            .take_while(|op| matches!(op, Op::Append(..)))
            .count();
        if run > 0 {
            let run = &ops[i..i + run];
            resolve_last(&txn, run, last, &mut staged).await?;
            out.extend(append_many(&mut Statements(&txn), run, last, &mut staged).await?);
            i += run.len();
        } else {
            out.push(write_one(&txn, &ops[i], &mut staged).await?);
            i += 1;
        }
    }
    txn.commit().await?;
    staged.apply(last);
    Ok(out)
}

/// Where [`append_many`] inserts each statement's rows.
trait RowSink {
    /// Inserts `rows` with one statement.
    async fn insert(&mut self, rows: &[messages::NewMessage<'_>]) -> Result<(), DbErr>;
}

/// A sea-orm connection or transaction, on any database.
struct Statements<'c, C>(&'c C);

impl<C: ConnectionTrait> RowSink for Statements<'_, C> {
    async fn insert(&mut self, rows: &[messages::NewMessage<'_>]) -> Result<(), DbErr> {
        let insert = messages::insert_numbered_statement(self.0.get_database_backend(), rows);
        self.0.execute(insert).await.map(|_| ())
    }
}

/// The writer's SQLite connection (or a transaction on it), through sqlx.
impl RowSink for sea_orm::sqlx::SqliteConnection {
    async fn insert(&mut self, rows: &[messages::NewMessage<'_>]) -> Result<(), DbErr> {
        messages::insert_numbered_sqlite(self, rows).await
    }
}

/// Stages the last number of every agent of `ops` that is neither staged by this write nor kept: read
/// now, through `conn` (before [`append_many`] numbers their rows).
async fn resolve_last(
    conn: &impl ConnectionTrait,
    ops: &[Op],
    last: &LastSequences,
    staged: &mut Staged,
) -> Result<(), DbErr> {
    let unknown: Vec<Uuid> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Append(agent_id, _)
                if !staged.set.contains_key(agent_id) && !last.contains_key(agent_id) =>
            {
                Some(*agent_id)
            }
            _ => None,
        })
        .collect::<std::collections::HashSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        let read = messages::last_sequences(conn, &unknown).await?;
        for id in unknown {
            staged.set.insert(id, read.get(&id).copied().unwrap_or(0));
        }
    }
    Ok(())
}

/// Stores a run of `Op::Append`s whose agents' last numbers are known ([`resolve_last`]), numbering
/// each agent's rows after its last number: one statement per [`messages::MAX_ROWS_PER_INSERT`] rows,
/// in the caller's transaction when there are several. Each statement's rows are numbered, and the
/// previous one's events serialized, while the database thread runs the previous one, so that thread
/// is not kept waiting between them.
async fn append_many(
    sink: &mut impl RowSink,
    ops: &[Op],
    last: &LastSequences,
    staged: &mut Staged,
) -> Result<Vec<(Done, Vec<Event>)>, DbErr> {
    let created_at = clock::now();
    let timestamp = clock::now();
    let mut chunks = ops.chunks(messages::MAX_ROWS_PER_INSERT);
    let mut out = Vec::with_capacity(ops.len());
    let mut next = chunks
        .next()
        .map(|chunk| numbered_rows(chunk, last, staged, &created_at));
    while let Some(rows) = next {
        // Committed or not, the events are only broadcast once the whole write is (and dropped if it
        // fails); numbers staged for a later statement are dropped with the transaction.
        let (inserted, following) = futures_util::future::join(sink.insert(&rows), async {
            out.extend(rows.iter().map(|row| {
                let event = message_event(
                    row.id,
                    row.agent_id,
                    row.sequence_number,
                    row.parsed,
                    &row.metadata,
                    &created_at,
                    &timestamp,
                );
                (Done::Stored(row.sequence_number), vec![event])
            }));
            chunks
                .next()
                .map(|chunk| numbered_rows(chunk, last, staged, &created_at))
        })
        .await;
        inserted?;
        next = following;
    }
    Ok(out)
}

/// Numbers the messages of `ops`, each agent's after its last number (staged or kept).
fn numbered_rows<'a>(
    ops: &'a [Op],
    last: &LastSequences,
    staged: &mut Staged,
    created_at: &'a str,
) -> Vec<messages::NewMessage<'a>> {
    let mut rows = Vec::with_capacity(ops.len());
    for op in ops {
        if let Op::Append(agent_id, parsed) = op {
            let previous = staged
                .set
                .get(agent_id)
                .or_else(|| last.get(agent_id))
                .copied()
                .unwrap_or(0);
            staged.set.insert(*agent_id, previous + 1);
            rows.push(messages::NewMessage {
                id: Uuid::now_v7(),
                agent_id: *agent_id,
                sequence_number: previous + 1,
                parsed,
                metadata: json_text::value_text(&parsed.metadata),
                created_at,
            });
        }
    }
    rows
}

/// The `agent:message` event of a stored message, written straight from the parsed line (no copy of its
/// text): the same JSON as [`ServerEvent::AgentMessage`] (a test holds them equal). `metadata` is the
/// message's metadata as JSON text.
fn message_event(
    id: Uuid,
    agent_id: Uuid,
    sequence_number: i64,
    parsed: &ParsedMessage,
    metadata: &str,
    created_at: &str,
    timestamp: &str,
) -> Event {
    let json = json_text::AgentMessageFrame {
        id,
        agent_id,
        sequence_number,
        message_type: parsed.message_type,
        role: parsed.role.as_deref(),
        content: &parsed.content,
        raw: Some(&parsed.raw),
        metadata: json_text::Metadata::Text(metadata),
        created_at,
        timestamp,
    }
    .to_json();
    Event::from_frame(Scope::Room(agent_id), Some(sequence_number), json)
}

async fn write_one(
    txn: &impl ConnectionTrait,
    op: &Op,
    staged: &mut Staged,
) -> Result<(Done, Vec<Event>), DbErr> {
    match op {
        Op::InsertAgent(model) => {
            if let Ok(id) = Uuid::parse_str(&model.id) {
                staged.set.insert(id, 0);
            }
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
            Ok((Done::Agent(Box::new(agent)), vec![event]))
        }
        // `write_all` stores messages with `append_many`; should one come here, it goes there too.
        Op::Append(..) => {
            let ops = std::slice::from_ref(op);
            let none = LastSequences::new();
            resolve_last(txn, ops, &none, staged).await?;
            append_many(&mut Statements(txn), ops, &none, staged)
                .await?
                .pop()
                .ok_or_else(|| DbErr::Custom("nothing written".into()))
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
            if change.status.is_terminal() {
                staged.forget.push(change.agent_id);
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
            staged.forget.push(*agent_id);
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

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::{AgentMessage, Message as WireMessage, MessageType};

    fn token(text: &str) -> ParsedMessage {
        ParsedMessage {
            message_type: MessageType::Assistant,
            role: None,
            content: text.into(),
            raw: format!(r#"{{"text":"{text}"}}"#),
            metadata: serde_json::json!({"eventType": "content_delta"}),
            outcome: None,
            session: None,
        }
    }

    /// A write of several statements (more messages than one INSERT takes, with another request
    /// among them) numbers each agent's messages contiguously across the statements, and is all or
    /// nothing: a message refused in a later statement stores none of the earlier ones.
    #[tokio::test]
    async fn a_write_of_many_statements_numbers_across_them_and_is_all_or_nothing() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (db, _scratch) = crate::db::scratch(&[a, b]).await;
        let per_agent = messages::MAX_ROWS_PER_INSERT + 150;
        let mut ops = Vec::new();
        for i in 0..per_agent {
            ops.push(Op::Append(a, token(&format!("a{i}"))));
            ops.push(Op::Append(b, token(&format!("b{i}"))));
            if i == per_agent / 2 {
                ops.push(Op::SetSession(
                    b,
                    SessionInfo {
                        session_id: "s".into(),
                        model: Some("m".into()),
                    },
                ));
            }
        }
        let mut last = LastSequences::new();
        let done = write_all(&db, &ops, &mut last).await.unwrap();
        assert_eq!(done.len(), ops.len());
        let mut numbers = HashMap::<Uuid, Vec<i64>>::new();
        for (op, (done, _)) in ops.iter().zip(&done) {
            if let (Op::Append(agent, _), Done::Stored(n)) = (op, done) {
                numbers.entry(*agent).or_default().push(*n);
            }
        }
        let expected: Vec<i64> = (1..=per_agent as i64).collect();
        assert_eq!(numbers.get(&a), Some(&expected));
        assert_eq!(numbers.get(&b), Some(&expected));
        let stored = messages::find_since(&db, a, 0, None).await.unwrap();
        let contents: Vec<String> = stored.iter().map(|m| m.content.clone()).collect();
        let sent: Vec<String> = (0..per_agent).map(|i| format!("a{i}")).collect();
        assert_eq!(contents, sent);
        assert_eq!(last.get(&a), Some(&(per_agent as i64)));

        // Messages only (on SQLite straight through sqlx), several statements: numbers go on from the
        // kept ones, and from the database for an agent this writer has not kept.
        last.remove(&b);
        let ops: Vec<Op> = (0..per_agent)
            .flat_map(|i| {
                [
                    Op::Append(a, token(&format!("a{}", per_agent + i))),
                    Op::Append(b, token(&format!("b{}", per_agent + i))),
                ]
            })
            .collect();
        let done = write_all(&db, &ops, &mut last).await.unwrap();
        let numbers: Vec<i64> = done
            .iter()
            .map(|(done, _)| match done {
                Done::Stored(n) => *n,
                _ => 0,
            })
            .collect();
        let expected: Vec<i64> = (per_agent as i64 + 1..=2 * per_agent as i64)
            .flat_map(|n| [n, n])
            .collect();
        assert_eq!(numbers, expected);
        let stored = messages::find_since(&db, b, 0, None).await.unwrap();
        assert_eq!(stored.len(), 2 * per_agent);
        assert!(stored
            .iter()
            .enumerate()
            .all(|(i, m)| m.sequence_number == i as i64 + 1 && m.content == format!("b{i}")));
        let per_agent = 2 * per_agent;

        // A message of an unknown agent in the third statement: nothing of the write is stored, and
        // the numbers kept are those of before.
        let ghost = Uuid::now_v7();
        let mut ops: Vec<Op> = (0..2 * messages::MAX_ROWS_PER_INSERT)
            .map(|i| Op::Append(a, token(&format!("x{i}"))))
            .collect();
        ops.push(Op::Append(ghost, token("ghost")));
        assert!(write_all(&db, &ops, &mut last).await.is_err());
        assert_eq!(
            messages::last_sequence(&db, a).await.unwrap(),
            per_agent as i64
        );
        assert_eq!(last.get(&a), Some(&(per_agent as i64)));
    }

    #[test]
    fn a_message_event_is_exactly_the_protocols_agent_message() {
        let parsed = ParsedMessage {
            message_type: MessageType::Assistant,
            role: Some("assistant".into()),
            content: "quote \" backslash \\ newline \n emoji 🦀 nul \u{0}".into(),
            raw: r#"{"type":"stream_event","text":"a \"quoted\" word"}"#.into(),
            metadata: serde_json::json!({"eventType": "content_delta", "blockIndex": 0, "z": [1, null]}),
            outcome: None,
            session: None,
        };
        let (id, agent_id) = (Uuid::now_v7(), Uuid::now_v7());
        let metadata = parsed.metadata.to_string();
        let ours = message_event(
            id,
            agent_id,
            42,
            &parsed,
            &metadata,
            "2026-11-26T10:00:00.000Z",
            "ts",
        );
        let theirs = Event::new(
            Scope::Room(agent_id),
            &ServerEvent::AgentMessage(AgentMessage {
                agent_id,
                message: WireMessage {
                    id,
                    agent_id,
                    sequence_number: 42,
                    message_type: parsed.message_type,
                    role: parsed.role.clone(),
                    content: parsed.content.clone(),
                    raw: Some(parsed.raw.clone()),
                    metadata: parsed.metadata.clone(),
                    created_at: "2026-11-26T10:00:00.000Z".into(),
                },
                timestamp: "ts".into(),
            }),
        );
        assert_eq!(ours.frame, theirs.frame);
        assert_eq!((ours.seq, ours.scope), (Some(42), Scope::Room(agent_id)));
        let role_less = ParsedMessage {
            role: None,
            ..parsed
        };
        let frame = message_event(id, agent_id, 1, &role_less, &metadata, "c", "t").frame;
        assert!(frame.contains(r#""role":null"#), "{frame}");
    }
}
