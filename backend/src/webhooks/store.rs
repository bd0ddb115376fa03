//! The webhook tables: consumers (`webhooks`) and their durable positions (`webhook_positions`), and
//! the reads a consumer's delivery needs. The statements are written once for both databases
//! (`$n` placeholders, made `?n` for SQLite).

use std::collections::HashMap;

use agentstream_wire::{WebhookEvent, WebhookFailure};
use entity::webhook;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    IntoActiveModel, Order, QueryOrder, Statement, TransactionTrait, Value,
};
use uuid::Uuid;

/// The last message of the agent `a` (0 when none): one lookup in the `(agent_id, sequence_number)`
/// index.
const LAST_OF_A: &str =
    "COALESCE((SELECT MAX(m.sequence_number) FROM agent_messages m WHERE m.agent_id = a.id), 0)";

/// `text` with its `$n` placeholders as `backend` takes them.
fn statement(backend: DbBackend, text: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => text.to_owned(),
        _ => text.replace('$', "?"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `a.id IN ($first, …)` for `ids`, their values appended to `values`; `None`: no condition.
fn agents_in(ids: Option<&[Uuid]>, values: &mut Vec<Value>) -> String {
    let Some(ids) = ids else {
        return "1 = 1".to_owned();
    };
    if ids.is_empty() {
        return "1 = 0".to_owned();
    }
    let marks: Vec<String> = ids
        .iter()
        .map(|id| {
            values.push(id.to_string().into());
            format!("${}", values.len())
        })
        .collect();
    format!("a.id IN ({})", marks.join(", "))
}

/// What a consumer's receiver acknowledged of one agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// The last message delivered or passed over.
    pub last_sequence: i64,
    /// The last status delivered.
    pub status: Option<String>,
    /// The agent's last message when that status was delivered.
    pub status_sequence: i64,
}

/// An agent as a consumer reads it: its status (and failure) with its last message, in one statement
/// (one snapshot: every message stored before that status is at or below `last_sequence`).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub status: String,
    pub error: Option<(String, String)>,
    pub last_sequence: i64,
    /// The agent's usage totals, which `agent:status` carries at a turn's end.
    pub usage: Option<agentstream_wire::UsageTotals>,
}

/// The consumer's agent filter.
pub fn agent_ids(row: &webhook::Model) -> Option<Vec<Uuid>> {
    row.agent_ids
        .as_deref()
        .map(|text| serde_json::from_str(text).unwrap_or_default())
}

/// The consumer's event kinds.
pub fn events(row: &webhook::Model) -> Option<Vec<WebhookEvent>> {
    row.events
        .as_deref()
        .map(|text| serde_json::from_str(text).unwrap_or_default())
}

/// The filter columns of `agent_ids` and `events`.
pub fn filter_columns(
    agent_ids: Option<&[Uuid]>,
    events: Option<&[WebhookEvent]>,
) -> (Option<String>, Option<String>) {
    (
        agent_ids.map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())),
        events.map(|e| serde_json::to_string(e).unwrap_or_else(|_| "[]".into())),
    )
}

/// How many consumers there are.
pub async fn count(db: &DatabaseConnection) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    entity::Webhook::find().count(db).await
}

/// Every consumer, oldest first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<webhook::Model>, DbErr> {
    entity::Webhook::find()
        .order_by(webhook::Column::CreatedAt, Order::Asc)
        .order_by(webhook::Column::Id, Order::Asc)
        .all(db)
        .await
}

/// One consumer.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<webhook::Model>, DbErr> {
    entity::Webhook::find_by_id(id.to_string()).one(db).await
}

/// Stores a new consumer with a position at the end of each agent it covers: it gets what is stored
/// from now on (the agents created later, from their start).
pub async fn create(db: &DatabaseConnection, row: webhook::Model) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let ids = agent_ids(&row);
    let id = row.id.clone();
    row.into_active_model().insert(&txn).await?;
    start_at_the_end(&txn, &id, ids.as_deref()).await?;
    txn.commit().await
}

/// Positions at the current end of each agent of `ids` (every agent when `None`) that has none.
async fn start_at_the_end(
    txn: &impl ConnectionTrait,
    webhook: &str,
    ids: Option<&[Uuid]>,
) -> Result<(), DbErr> {
    let mut values: Vec<Value> = vec![webhook.into()];
    let filter = agents_in(ids, &mut values);
    // The WHERE clause also keeps SQLite from reading `ON CONFLICT` as a join's.
    let sql = format!(
        "INSERT INTO webhook_positions (webhook_id, agent_id, last_sequence, status, status_sequence) \
         SELECT $1, a.id, {LAST_OF_A}, a.status, {LAST_OF_A} FROM agents a WHERE {filter} \
         ON CONFLICT (webhook_id, agent_id) DO NOTHING"
    );
    txn.execute(statement(txn.get_database_backend(), &sql, values))
        .await
        .map(|_| ())
}

/// Stores a changed consumer (its revision moved on). When its agents changed, the positions of the
/// agents it no longer covers go, and those it now covers start at their end.
pub async fn update(
    db: &DatabaseConnection,
    row: webhook::Model,
    agents_changed: bool,
) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let ids = agent_ids(&row);
    let id = row.id.clone();
    let mut active = row.into_active_model();
    for column in [
        webhook::Column::Url,
        webhook::Column::Secret,
        webhook::Column::AgentIds,
        webhook::Column::Events,
        webhook::Column::Paused,
        webhook::Column::Revision,
    ] {
        active.reset(column);
    }
    active.update(&txn).await?;
    if agents_changed {
        if let Some(ids) = &ids {
            let mut values: Vec<Value> = vec![id.clone().into()];
            let covered = agents_in(Some(ids), &mut values).replace("a.id", "agent_id");
            let sql =
                format!("DELETE FROM webhook_positions WHERE webhook_id = $1 AND NOT ({covered})");
            txn.execute(statement(txn.get_database_backend(), &sql, values))
                .await?;
        }
        start_at_the_end(&txn, &id, ids.as_deref()).await?;
    }
    txn.commit().await
}

/// Removes a consumer and its positions; false when there was none.
pub async fn delete(db: &DatabaseConnection, id: Uuid) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    // Positions first: SQLite enforces the cascade only with foreign keys on.
    txn.execute(statement(
        backend,
        "DELETE FROM webhook_positions WHERE webhook_id = $1",
        vec![id.to_string().into()],
    ))
    .await?;
    let gone = entity::Webhook::delete_by_id(id.to_string())
        .exec(&txn)
        .await?
        .rows_affected
        > 0;
    txn.commit().await?;
    Ok(gone)
}

/// What the consumer asked for and its receiver has not acknowledged: the messages after each
/// position (with the kind `agent:message`), plus one per agent whose status or existence it was not
/// yet told (with any lifecycle kind).
pub async fn lag(db: &impl ConnectionTrait, row: &webhook::Model) -> Result<i64, DbErr> {
    let kinds = events(row);
    let wants = |e: WebhookEvent| kinds.as_ref().is_none_or(|k| k.contains(&e));
    let messages = wants(WebhookEvent::Message);
    let lifecycle = WebhookEvent::ALL
        .into_iter()
        .any(|e| e != WebhookEvent::Message && wants(e));
    let ids = agent_ids(row);
    let mut values: Vec<Value> = vec![row.id.clone().into()];
    let filter = agents_in(ids.as_deref(), &mut values);
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(CASE WHEN t.last > t.done THEN t.last - t.done ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN t.seen IS NULL OR t.told IS NULL OR t.told <> t.status \
                                  THEN 1 ELSE 0 END), 0) AS BIGINT), \
                (SELECT COUNT(*) FROM webhook_positions g WHERE g.webhook_id = $1 \
                   AND NOT EXISTS (SELECT 1 FROM agents x WHERE x.id = g.agent_id)) \
         FROM (SELECT a.status, {LAST_OF_A} AS last, COALESCE(p.last_sequence, 0) AS done, \
                      p.agent_id AS seen, p.status AS told \
               FROM agents a LEFT JOIN webhook_positions p ON p.webhook_id = $1 AND p.agent_id = a.id \
               WHERE {filter}) t"
    );
    let Some(result) = db
        .query_one(statement(db.get_database_backend(), &sql, values))
        .await?
    else {
        return Ok(0);
    };
    let behind: i64 = result.try_get_by_index(0)?;
    let untold: i64 = result.try_get_by_index(1)?;
    let gone: i64 = result.try_get_by_index(2)?;
    Ok(if messages { behind } else { 0 } + if lifecycle { untold + gone } else { 0 })
}

/// The last failed attempt of a consumer, as the API shows it.
pub fn failure(row: &webhook::Model) -> Option<WebhookFailure> {
    match (&row.last_error, &row.last_error_at) {
        (Some(message), Some(at)) => Some(WebhookFailure {
            message: message.clone(),
            at: at.clone(),
        }),
        _ => None,
    }
}

/// Every position of a consumer.
pub async fn positions(
    db: &impl ConnectionTrait,
    webhook: Uuid,
) -> Result<HashMap<Uuid, Position>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let rows = entity::WebhookPosition::find()
        .filter(entity::webhook_position::Column::WebhookId.eq(webhook.to_string()))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let agent = Uuid::parse_str(&r.agent_id).ok()?;
            Some((
                agent,
                Position {
                    last_sequence: r.last_sequence,
                    status: r.status,
                    status_sequence: r.status_sequence,
                },
            ))
        })
        .collect())
}

/// The agents a consumer has something to deliver of, oldest first: those of its agents with no
/// position yet (created since), with messages after their position or a status it was not told,
/// and those of its positions whose agent is gone (purged).
pub async fn pending_agents(
    db: &impl ConnectionTrait,
    webhook: Uuid,
    ids: Option<&[Uuid]>,
) -> Result<Vec<Uuid>, DbErr> {
    let mut values: Vec<Value> = vec![webhook.to_string().into()];
    let filter = agents_in(ids, &mut values);
    let sql = format!(
        "SELECT a.id FROM agents a \
           LEFT JOIN webhook_positions p ON p.webhook_id = $1 AND p.agent_id = a.id \
         WHERE {filter} AND (p.agent_id IS NULL OR p.status IS NULL OR p.status <> a.status \
                             OR p.last_sequence < {LAST_OF_A}) \
         UNION \
         SELECT p.agent_id FROM webhook_positions p WHERE p.webhook_id = $1 \
           AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = p.agent_id) \
         ORDER BY 1"
    );
    let rows = db
        .query_all(statement(db.get_database_backend(), &sql, values))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
        .filter_map(|id| Uuid::parse_str(&id).ok())
        .collect())
}

/// The agent's status with its last message; `None` when the agent is gone.
pub async fn snapshot(db: &impl ConnectionTrait, agent: Uuid) -> Result<Option<Snapshot>, DbErr> {
    let sql = format!(
        "SELECT a.status, a.error_code, a.error_message, {LAST_OF_A} FROM agents a WHERE a.id = $1"
    );
    let row = db
        .query_one(statement(
            db.get_database_backend(),
            &sql,
            vec![agent.to_string().into()],
        ))
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let code: Option<String> = r.try_get_by_index(1)?;
    let message: Option<String> = r.try_get_by_index(2)?;
    let status: String = r.try_get_by_index(0)?;
    let terminal = status
        .parse::<agentstream_wire::AgentStatus>()
        .is_ok_and(agentstream_wire::AgentStatus::is_terminal);
    let usage = match terminal {
        true => entity::Agent::find_by_id(agent.to_string())
            .one(db)
            .await?
            .map(|m| crate::usage::Amounts::of_agent(&m).to_wire()),
        false => None,
    };
    Ok(Some(Snapshot {
        status,
        error: code.map(|c| (c, message.unwrap_or_default())),
        last_sequence: r.try_get_by_index(3)?,
        usage,
    }))
}

/// Whether the agent stored a `result` message numbered `after + 1 ..= until` (a turn ended there).
pub async fn result_between(
    db: &impl ConnectionTrait,
    agent: Uuid,
    after: i64,
    until: i64,
) -> Result<bool, DbErr> {
    let row = db
        .query_one(statement(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM agent_messages WHERE agent_id = $1 AND sequence_number > $2 \
             AND sequence_number <= $3 AND type = 'result'",
            vec![agent.to_string().into(), after.into(), until.into()],
        ))
        .await?;
    let count: i64 = match row {
        Some(r) => r.try_get_by_index(0)?,
        None => 0,
    };
    Ok(count > 0)
}

/// Who may commit a consumer's positions: any process on SQLite; on PostgreSQL only its owner.
#[derive(Clone, Debug)]
pub enum Holder {
    Alone,
    Instance(String),
}

/// Stores what the receiver acknowledged, per agent (`None`: the agent is gone and its last event was
/// delivered: the position goes), and when, in one transaction. False when the consumer is not this
/// holder's to deliver any more (deleted, or taken over by another instance): nothing is stored.
pub async fn commit(
    db: &DatabaseConnection,
    holder: &Holder,
    webhook: Uuid,
    positions: &[(Uuid, Option<Position>)],
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let mut values: Vec<Value> = vec![crate::clock::now().into(), webhook.to_string().into()];
    let mine = match holder {
        Holder::Alone => "",
        Holder::Instance(me) => {
            values.push(me.clone().into());
            " AND owner = $3"
        }
    };
    // Also locks the consumer's row to the commit: a takeover or a DELETE waits for it, or it sees them.
    let sql = format!(
        "UPDATE webhooks SET last_delivered_at = $1, attempts = 0, next_retry_at = NULL \
         WHERE id = $2{mine}"
    );
    if txn
        .execute(statement(backend, &sql, values))
        .await?
        .rows_affected()
        == 0
    {
        txn.rollback().await?;
        return Ok(false);
    }
    for (agent, position) in positions {
        let key = vec![webhook.to_string().into(), agent.to_string().into()];
        match position {
            Some(p) => {
                let mut values = key;
                values.extend([
                    p.last_sequence.into(),
                    p.status.clone().into(),
                    p.status_sequence.into(),
                ]);
                txn.execute(statement(
                    backend,
                    "INSERT INTO webhook_positions (webhook_id, agent_id, last_sequence, status, status_sequence) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (webhook_id, agent_id) DO UPDATE SET \
                     last_sequence = excluded.last_sequence, status = excluded.status, \
                     status_sequence = excluded.status_sequence",
                    values,
                ))
                .await?;
            }
            None => {
                txn.execute(statement(
                    backend,
                    "DELETE FROM webhook_positions WHERE webhook_id = $1 AND agent_id = $2",
                    key,
                ))
                .await?;
            }
        }
    }
    txn.commit().await?;
    Ok(true)
}

/// Notes a failed attempt: what went wrong, how many attempts failed in a row, when the next one is.
pub async fn record_failure(
    db: &DatabaseConnection,
    webhook: Uuid,
    message: &str,
    attempts: i64,
    next_retry_at: &str,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    db.execute(statement(
        backend,
        "UPDATE webhooks SET last_error = $1, last_error_at = $2, attempts = $3, next_retry_at = $4 \
         WHERE id = $5",
        vec![
            message.into(),
            crate::clock::now().into(),
            attempts.into(),
            next_retry_at.into(),
            webhook.to_string().into(),
        ],
    ))
    .await
    .map(|_| ())
}

/// PostgreSQL: makes this instance the owner of every consumer without a live one (none yet, or its
/// instance's lease ended). A consumer with a live owner is left alone: one instance delivers it.
pub async fn claim(db: &DatabaseConnection, me: &str) -> Result<(), DbErr> {
    let now = crate::instances::lease::NOW_MS;
    let sql = format!(
        "UPDATE webhooks SET owner = $1 WHERE owner IS NULL OR (owner <> $1 AND owner NOT IN \
           (SELECT id FROM instances WHERE lease_until >= {now}))"
    );
    db.execute(statement(DbBackend::Postgres, &sql, vec![me.into()]))
        .await
        .map(|_| ())
}
