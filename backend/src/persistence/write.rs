//! One write of the persistence actor: a batch of requests in one transaction, or, should that fail,
//! each request in its own, so that one bad request (a message for an agent deleted meanwhile) cannot
//! fail the others.

use std::collections::HashSet;

use agentstream_wire::{AgentStatus, ErrorCode, ErrorInfo};
use entity::agent;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::frames;
use super::insert::{append_many, sqlx_error, Statements, LEASE_LOST, MAX_ROWS_PER_INSERT};
use super::numbering::{resolve_last, LastSequences, Staged};
use super::requests::{Request, SetStatus, StoreError};
use super::usage;
use crate::gateway::registry::EventFrame;
use crate::instances::lease::{self, Fence};
use crate::instances::notify;
use crate::store;

/// Each request of a write with its outcome and the frames to broadcast.
pub(super) type Written = Vec<(Request, Result<(), StoreError>, Vec<EventFrame>)>;

/// Runs a batch in one transaction; on failure, each request in its own.
pub(super) async fn write_batch(
    db: &DatabaseConnection,
    mut batch: Vec<Request>,
    last: &mut LastSequences,
    fence: Option<&Fence>,
) -> Written {
    if batch.len() > 1 {
        match write_all(db, &mut batch, last, fence).await {
            Ok(frames) => {
                return batch
                    .into_iter()
                    .zip(frames)
                    .map(|(request, frames)| (request, Ok(()), frames))
                    .collect()
            }
            Err(e) if classify(&e) == StoreError::LeaseLost => {
                tracing::warn!("writes refused: this instance's lease was taken over");
                return batch
                    .into_iter()
                    .map(|request| (request, Err(StoreError::LeaseLost), Vec::new()))
                    .collect();
            }
            Err(e) => {
                tracing::debug!(error = %e, size = batch.len(), "batch failed; writing one by one");
                // Whatever the failure, numbers are read afresh from the database from now on.
                for request in &batch {
                    if let Request::Append { agent_id, .. } = request {
                        last.remove(agent_id);
                    }
                }
            }
        }
    }
    let mut written = Vec::with_capacity(batch.len());
    // Agents already told (once per batch) that their output could not be stored.
    let mut told = HashSet::new();
    for mut request in batch {
        let result = write_all(db, std::slice::from_mut(&mut request), last, fence).await;
        written.push(match result {
            Ok(mut frames) => (request, Ok(()), frames.pop().unwrap_or_default()),
            Err(e) => {
                let error = classify(&e);
                let mut frames = Vec::new();
                if let (StoreError::AgentGone, Request::Append { agent_id, .. }) =
                    (&error, &request)
                {
                    tracing::warn!(%agent_id, "message refused: its agent was deleted meanwhile");
                    frames.push(frames::agent_error(
                        *agent_id,
                        ErrorInfo::new(
                            ErrorCode::AgentDeleted,
                            "the agent was deleted; its output is no longer stored",
                        ),
                    ));
                } else if error == StoreError::LeaseLost {
                    // The agents were taken over: their new owner has said how they ended.
                    tracing::warn!("write refused: this instance's lease was taken over");
                } else if !matches!(error, StoreError::AgentGone) {
                    let operation = request.operation();
                    match request.agent() {
                        Some(agent_id) => {
                            tracing::error!(%agent_id, operation, error = %e, "write failed")
                        }
                        None => tracing::error!(operation, error = %e, "write failed"),
                    }
                    // Not stored, so not broadcast: the agent's subscribers learn why it stops.
                    if let Request::Append { agent_id, .. } = &request {
                        if told.insert(*agent_id) {
                            frames.push(frames::agent_error(
                                *agent_id,
                                ErrorInfo::new(
                                    ErrorCode::StorageError,
                                    format!("the agent's output could not be stored: {e}"),
                                ),
                            ));
                        }
                    }
                }
                (request, Err(error), frames)
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
            DbErr::Custom(m) if m == LEASE_LOST => StoreError::LeaseLost,
            other => StoreError::Database(other.to_string()),
        },
    }
}

/// Runs `requests` in one transaction, recording what each produced in it; returns the frames each
/// broadcasts once committed.
async fn write_all(
    db: &DatabaseConnection,
    requests: &mut [Request],
    last: &mut LastSequences,
    fence: Option<&Fence>,
) -> Result<Vec<Vec<EventFrame>>, DbErr> {
    let mut staged = Staged::default();
    // The usual batch under load: messages only. Few enough for one statement, which is atomic by
    // itself, they go without BEGIN and COMMIT round trips to the database thread — unless the write
    // must also be announced to other instances (a fence), in the same transaction.
    // Messages that report usage are counted in the same transaction, so they take the general way.
    if fence.is_none() && requests.iter().all(Request::is_plain_message) {
        let one_statement = requests.len() <= MAX_ROWS_PER_INSERT;
        if matches!(db, DatabaseConnection::SqlxSqlitePoolConnection(_)) {
            // On SQLite straight through sqlx.
            resolve_last(db, requests, last, &mut staged).await?;
            let pool = db.get_sqlite_connection_pool();
            let numbered = if one_statement {
                let mut conn = pool.acquire().await.map_err(sqlx_error)?;
                append_many(&mut *conn, requests, last, &mut staged).await?
            } else {
                // Rolled back when dropped uncommitted (a statement failed).
                let mut txn = pool.begin().await.map_err(sqlx_error)?;
                let numbered = append_many(&mut *txn, requests, last, &mut staged).await?;
                txn.commit().await.map_err(sqlx_error)?;
                numbered
            };
            staged.apply(last);
            return Ok(record_numbers(requests, numbered));
        }
        if one_statement {
            resolve_last(db, requests, last, &mut staged).await?;
            let numbered =
                append_many(&mut Statements(db, fence), requests, last, &mut staged).await?;
            staged.apply(last);
            return Ok(record_numbers(requests, numbered));
        }
    }
    let txn = db.begin().await?;
    // Messages check the fence in their own INSERT; any other write takes the same lock first.
    if let Some(fence) = fence.filter(|_| !requests.iter().all(Request::is_message)) {
        // Held to the commit: nothing of this write lands once another instance has taken this one
        // over, and a takeover waits for it.
        if txn.query_one(fence.guard()).await?.is_none() {
            return Err(DbErr::Custom(LEASE_LOST.into()));
        }
    }
    let mut out = Vec::with_capacity(requests.len());
    let mut i = 0;
    while i < requests.len() {
        // A run of messages goes in as multi-row INSERTs (`append_many`); everything else one by one,
        // in order.
        let run = requests[i..]
            .iter()
            .take_while(|request| request.is_message())
            .count();
        if run > 0 {
            let run = &mut requests[i..i + run];
            resolve_last(&txn, run, last, &mut staged).await?;
            let numbered =
                append_many(&mut Statements(&txn, fence), run, last, &mut staged).await?;
            out.extend(record_numbers(run, numbered));
            usage::count(&txn, run).await?;
            i += run.len();
        } else {
            out.push(write_one(&txn, &mut requests[i], &mut staged, fence).await?);
            i += 1;
        }
    }
    if let Some(fence) = fence {
        // In write order: another instance shows a final status after the messages.
        notify::send(
            &txn,
            notify::announcements(fence.instance(), out.iter().flatten()),
        )
        .await?;
    }
    txn.commit().await?;
    staged.apply(last);
    Ok(out)
}

/// Gives each message of `requests` its number; returns each one's frame.
fn record_numbers(
    requests: &mut [Request],
    numbered: Vec<(i64, EventFrame)>,
) -> Vec<Vec<EventFrame>> {
    let mut frames = Vec::with_capacity(numbered.len());
    let messages = requests.iter_mut().filter_map(|request| match request {
        Request::Append {
            sequence_number, ..
        } => Some(sequence_number),
        _ => None,
    });
    for (slot, (number, frame)) in messages.zip(numbered) {
        *slot = number;
        frames.push(vec![frame]);
    }
    frames
}

/// Writes a request other than a run of messages, inside `txn`.
async fn write_one(
    txn: &impl ConnectionTrait,
    request: &mut Request,
    staged: &mut Staged,
    fence: Option<&Fence>,
) -> Result<Vec<EventFrame>, DbErr> {
    match request {
        Request::InsertAgent { model, agent, .. } => {
            staged.set.insert(agent.id, 0);
            entity::Agent::insert(model.clone().into_active_model().reset_all())
                .exec_without_returning(txn)
                .await?;
            Ok(vec![frames::created(agent)])
        }
        // `write_all` stores messages with `append_many`; should one come here, it goes there too.
        Request::Append { .. } => {
            let requests = std::slice::from_mut(request);
            let none = LastSequences::new();
            resolve_last(txn, requests, &none, staged).await?;
            let numbered =
                append_many(&mut Statements(txn, fence), requests, &none, staged).await?;
            let frames = record_numbers(requests, numbered)
                .pop()
                .ok_or_else(|| DbErr::Custom("nothing written".into()))?;
            usage::count(txn, requests).await?;
            Ok(frames)
        }
        Request::SetStatus { change, .. } => {
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
            } else if change.reopen {
                let none: Option<String> = None;
                update = update
                    .col_expr(agent::Column::ErrorCode, Expr::value(none.clone()))
                    .col_expr(agent::Column::ErrorMessage, Expr::value(none));
            }
            if change.reopen && change.completed_at.is_none() {
                let none: Option<String> = None;
                update = update.col_expr(agent::Column::CompletedAt, Expr::value(none));
            }
            if update.exec(txn).await?.rows_affected == 0 {
                return Err(DbErr::RecordNotUpdated);
            }
            if change.status.is_terminal() {
                staged.forget.push(change.agent_id);
            }
            // A turn's end shows the agent's totals with the turn counted (its `result` was stored
            // before, in this transaction or an earlier one).
            let usage = match change.status.is_terminal() {
                true => entity::Agent::find_by_id(change.agent_id.to_string())
                    .one(txn)
                    .await?
                    .map(|row| crate::usage::Amounts::of_agent(&row).to_wire()),
                false => None,
            };
            Ok(frames::status(change, usage))
        }
        Request::SetSession {
            agent_id, session, ..
        } => {
            entity::Agent::update_many()
                .col_expr(
                    agent::Column::SessionId,
                    Expr::value(session.session_id.clone()),
                )
                .col_expr(agent::Column::Model, Expr::value(session.model.clone()))
                .filter(agent::Column::Id.eq(agent_id.to_string()))
                .exec(txn)
                .await?;
            Ok(vec![])
        }
        Request::Delete {
            agent_id, purge, ..
        } => {
            if *purge {
                entity::Agent::delete_by_id(agent_id.to_string())
                    .exec(txn)
                    .await?;
                staged.forget.push(*agent_id);
            }
            Ok(vec![frames::deleted(*agent_id, *purge)])
        }
        Request::InterruptUnfinished {
            owner, interrupted, ..
        } => {
            let ids = store::unfinished_agents(txn, owner.as_deref()).await?;
            *interrupted = interrupt(txn, &ids).await?;
            Ok(interrupted_frames(interrupted))
        }
        Request::TakeOver { taken, .. } => {
            let Some(fence) = fence else {
                return Ok(vec![]);
            };
            taken.instances = lease::take_expired(txn, fence.instance()).await?;
            taken.interrupted.clear();
            for gone in &taken.instances {
                let ids = store::unfinished_agents(txn, Some(gone)).await?;
                taken.interrupted.extend(interrupt(txn, &ids).await?);
                entity::Agent::update_many()
                    .col_expr(agent::Column::Owner, Expr::value(fence.instance()))
                    .filter(agent::Column::Owner.eq(gone.as_str()))
                    .exec(txn)
                    .await?;
            }
            Ok(interrupted_frames(&taken.interrupted))
        }
        Request::Flush { .. } => Ok(vec![]),
    }
}

/// Marks the agents `ids` as `interrupted`; returns their ids.
async fn interrupt(txn: &impl ConnectionTrait, ids: &[String]) -> Result<Vec<Uuid>, DbErr> {
    let mut interrupted = Vec::with_capacity(ids.len());
    for id in ids {
        entity::Agent::update(agent::ActiveModel {
            id: ActiveValue::Unchanged(id.clone()),
            status: ActiveValue::Set(AgentStatus::Interrupted.as_str().to_owned()),
            ..Default::default()
        })
        .exec(txn)
        .await?;
        if let Ok(uuid) = Uuid::parse_str(id) {
            interrupted.push(uuid);
        }
    }
    Ok(interrupted)
}

/// The `agent:status` frames of agents made `interrupted`.
fn interrupted_frames(ids: &[Uuid]) -> Vec<EventFrame> {
    ids.iter()
        .flat_map(|id| frames::status(&SetStatus::new(*id, AgentStatus::Interrupted), None))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{ParsedMessage, SessionInfo};
    use agentstream_wire::MessageType;
    use std::collections::HashMap;
    use std::rc::Rc;

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

    /// Stands for an agent's actor: the tests read what a write recorded, not what it sent.
    struct NoAgent;
    impl actix::Actor for NoAgent {
        type Context = actix::Context<Self>;
    }
    impl actix::Handler<super::super::requests::Stored> for NoAgent {
        type Result = ();
        fn handle(&mut self, _: super::super::requests::Stored, _: &mut Self::Context) {}
    }

    /// A message to store, as queued (its outcome goes nowhere: the test reads what the write recorded).
    fn append(agent_id: Uuid, text: &str) -> Request {
        let (ack, _) = actix::dev::channel::channel::<NoAgent>(1);
        Request::Append {
            agent_id,
            message: token(text),
            sequence_number: 0,
            ack: crate::persistence::requests::Ack::Batch(Rc::new(
                actix::Addr::new(ack).recipient(),
            )),
        }
    }

    /// The numbers the write gave the messages of `requests`, in order.
    fn numbers_of(requests: &[Request]) -> Vec<(Uuid, i64)> {
        requests
            .iter()
            .filter_map(|r| match r {
                Request::Append {
                    agent_id,
                    sequence_number,
                    ..
                } => Some((*agent_id, *sequence_number)),
                _ => None,
            })
            .collect()
    }

    /// A write of several statements (more messages than one INSERT takes, with another request
    /// among them) numbers each agent's messages contiguously across the statements, and is all or
    /// nothing: a message refused in a later statement stores none of the earlier ones.
    #[tokio::test]
    async fn a_write_of_many_statements_numbers_across_them_and_is_all_or_nothing() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (db, _scratch) = crate::db::scratch(&[a, b]).await;
        let per_agent = MAX_ROWS_PER_INSERT + 150;
        let mut ops = Vec::new();
        for i in 0..per_agent {
            ops.push(append(a, &format!("a{i}")));
            ops.push(append(b, &format!("b{i}")));
            if i == per_agent / 2 {
                ops.push(Request::SetSession {
                    agent_id: b,
                    session: SessionInfo {
                        session_id: "s".into(),
                        model: Some("m".into()),
                    },
                    reply: tokio::sync::oneshot::channel().0,
                });
            }
        }
        let mut last = LastSequences::new();
        let done = write_all(&db, &mut ops, &mut last, None).await.unwrap();
        assert_eq!(done.len(), ops.len());
        let mut numbers = HashMap::<Uuid, Vec<i64>>::new();
        for (agent, n) in numbers_of(&ops) {
            numbers.entry(agent).or_default().push(n);
        }
        let expected: Vec<i64> = (1..=per_agent as i64).collect();
        assert_eq!(numbers.get(&a), Some(&expected));
        assert_eq!(numbers.get(&b), Some(&expected));
        let stored = store::find_since(&db, a, 0, None).await.unwrap();
        let contents: Vec<String> = stored.iter().map(|m| m.content.clone()).collect();
        let sent: Vec<String> = (0..per_agent).map(|i| format!("a{i}")).collect();
        assert_eq!(contents, sent);
        assert_eq!(last.get(&a), Some(&(per_agent as i64)));

        // Messages only (on SQLite straight through sqlx), several statements: numbers go on from the
        // kept ones, and from the database for an agent this writer has not kept.
        last.remove(&b);
        let mut ops: Vec<Request> = (0..per_agent)
            .flat_map(|i| {
                [
                    append(a, &format!("a{}", per_agent + i)),
                    append(b, &format!("b{}", per_agent + i)),
                ]
            })
            .collect();
        let done = write_all(&db, &mut ops, &mut last, None).await.unwrap();
        assert_eq!(done.len(), ops.len());
        let numbers: Vec<i64> = numbers_of(&ops).into_iter().map(|(_, n)| n).collect();
        let expected: Vec<i64> = (per_agent as i64 + 1..=2 * per_agent as i64)
            .flat_map(|n| [n, n])
            .collect();
        assert_eq!(numbers, expected);
        let stored = store::find_since(&db, b, 0, None).await.unwrap();
        assert_eq!(stored.len(), 2 * per_agent);
        assert!(stored
            .iter()
            .enumerate()
            .all(|(i, m)| m.sequence_number == i as i64 + 1 && m.content == format!("b{i}")));
        let per_agent = 2 * per_agent;

        // A message of an unknown agent in the third statement: nothing of the write is stored, and
        // the numbers kept are those of before.
        let ghost = Uuid::now_v7();
        let mut ops: Vec<Request> = (0..2 * MAX_ROWS_PER_INSERT)
            .map(|i| append(a, &format!("x{i}")))
            .collect();
        ops.push(append(ghost, "ghost"));
        assert!(write_all(&db, &mut ops, &mut last, None).await.is_err());
        assert_eq!(
            store::last_sequence(&db, a).await.unwrap(),
            per_agent as i64
        );
        assert_eq!(last.get(&a), Some(&(per_agent as i64)));
    }
}
