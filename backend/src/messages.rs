//! The seed's AgentMessageService: the statements that read and write agents and messages, and the
//! conversion of rows into the protocol's shapes. Reads run anywhere; the writes are executed only by the
//! persistence actor (`streaming`).

use agentstream_wire::{Agent, AgentStatus, ErrorInfo, Message};
use entity::{agent, agent_message};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect, Statement, Value as DbValue,
};
use serde_json::Value;
use uuid::Uuid;

use crate::parser::ParsedMessage;

/// A row that does not fit the protocol (written by something else than this server).
fn corrupt(what: &str, detail: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("stored {what} is not valid: {detail}"))
}

/// An `agents` row as the protocol's Agent.
pub fn agent_to_wire(m: agent::Model) -> Result<Agent, DbErr> {
    Ok(Agent {
        id: Uuid::parse_str(&m.id).map_err(|e| corrupt("agent id", e))?,
        agent_type: m.agent_type.parse().map_err(|e| corrupt("agent type", e))?,
        status: m.status.parse().map_err(|e| corrupt("agent status", e))?,
        prompt: m.prompt,
        created_at: m.created_at,
        started_at: m.started_at,
        completed_at: m.completed_at,
        configuration: serde_json::from_str(&m.configuration).unwrap_or(Value::Null),
        session_id: m.session_id,
        model: m.model,
        error: match (m.error_code, m.error_message) {
            (Some(code), message) => Some(ErrorInfo::new(code, message.unwrap_or_default())),
            _ => None,
        },
    })
}

/// An `agent_messages` row as the protocol's Message.
pub fn message_to_wire(m: agent_message::Model) -> Result<Message, DbErr> {
    Ok(Message {
        id: Uuid::parse_str(&m.id).map_err(|e| corrupt("message id", e))?,
        agent_id: Uuid::parse_str(&m.agent_id).map_err(|e| corrupt("message agent id", e))?,
        sequence_number: m.sequence_number,
        message_type: m
            .message_type
            .parse()
            .map_err(|e| corrupt("message type", e))?,
        role: m.role,
        content: m.content,
        raw: m.raw,
        metadata: m
            .metadata
            .as_deref()
            .map(|s| serde_json::from_str(s).unwrap_or(Value::Null))
            .unwrap_or(Value::Null),
        created_at: m.created_at,
    })
}

/// One agent.
pub async fn find_agent(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Agent>, DbErr> {
    entity::Agent::find_by_id(id.to_string())
        .one(db)
        .await?
        .map(agent_to_wire)
        .transpose()
}

/// Every agent, newest first.
pub async fn list_agents(db: &impl ConnectionTrait) -> Result<Vec<Agent>, DbErr> {
    entity::Agent::find()
        .order_by(agent::Column::CreatedAt, Order::Desc)
        .order_by(agent::Column::Id, Order::Desc)
        .all(db)
        .await?
        .into_iter()
        .map(agent_to_wire)
        .collect()
}

/// The agent's messages with `sequence_number > since`, ascending, at most `limit` of them.
pub async fn find_since(
    db: &impl ConnectionTrait,
    agent_id: Uuid,
    since: i64,
    limit: Option<u64>,
) -> Result<Vec<Message>, DbErr> {
    let mut query = entity::AgentMessage::find()
        .filter(agent_message::Column::AgentId.eq(agent_id.to_string()))
        .filter(agent_message::Column::SequenceNumber.gt(since))
        .order_by(agent_message::Column::SequenceNumber, Order::Asc);
    if let Some(limit) = limit {
        query = query.limit(limit);
    }
    query
        .all(db)
        .await?
        .into_iter()
        .map(message_to_wire)
        .collect()
}

/// The agent's highest sequence number (0 when it has no message).
pub async fn last_sequence(db: &impl ConnectionTrait, agent_id: Uuid) -> Result<i64, DbErr> {
    let max: Option<Option<i64>> = entity::AgentMessage::find()
        .select_only()
        .column_as(agent_message::Column::SequenceNumber.max(), "max")
        .filter(agent_message::Column::AgentId.eq(agent_id.to_string()))
        .into_tuple()
        .one(db)
        .await?;
    Ok(max.flatten().unwrap_or(0))
}

/// The agents left `initializing` or `running`.
pub async fn unfinished_agents(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    entity::Agent::find()
        .select_only()
        .column(agent::Column::Id)
        .filter(agent::Column::Status.is_in([
            AgentStatus::Initializing.as_str(),
            AgentStatus::Running.as_str(),
        ]))
        .into_tuple()
        .all(db)
        .await
}

/// One message of a multi-row insert, numbered by the persistence actor.
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub sequence_number: i64,
    pub parsed: &'a ParsedMessage,
    /// `parsed.metadata` as JSON text (written once, for the row and for the event).
    pub metadata: String,
    pub created_at: &'a str,
}

/// At most this many rows per multi-row insert (9 bound values each, well under SQLite's limit).
pub const MAX_ROWS_PER_INSERT: usize = 500;

/// Many messages in one plain INSERT, with the numbers the persistence actor assigned (each agent's
/// `MAX(sequence_number) + 1, + 2…`; `UNIQUE(agent_id, sequence_number)` refuses any clash). Plain SQL
/// that SQLite and PostgreSQL both run.
pub fn insert_numbered_statement(backend: DbBackend, rows: &[NewMessage<'_>]) -> Statement {
    let mut values: Vec<DbValue> = Vec::with_capacity(rows.len() * 9);
    for row in rows {
        values.push(row.id.to_string().into());
        values.push(row.agent_id.to_string().into());
        values.push(row.sequence_number.into());
        values.push(row.parsed.message_type.as_str().into());
        values.push(row.parsed.role.clone().into());
        values.push(row.parsed.content.clone().into());
        values.push(row.parsed.raw.clone().into());
        values.push(row.metadata.clone().into());
        values.push(row.created_at.to_owned().into());
    }
    Statement::from_sql_and_values(backend, insert_sql(backend, rows.len()), values)
}

/// The INSERT of [`insert_numbered_statement`] with `rows` rows of placeholders.
fn insert_sql(backend: DbBackend, rows: usize) -> String {
    let mut sql = String::with_capacity(160 + rows * 40);
    sql.push_str(
        "INSERT INTO agent_messages (id, agent_id, sequence_number, type, role, content, raw, metadata, created_at) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for j in 0..9 {
            if j > 0 {
                sql.push_str(", ");
            }
            match backend {
                DbBackend::Postgres => {
                    use std::fmt::Write;
                    let _ = write!(sql, "${}", i * 9 + j + 1);
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// [`insert_numbered_statement`] run on SQLite straight through sqlx: a sea-orm statement owns a copy
/// of every value and copies it again into sqlx's arguments; bound here by reference, each row's text
/// is copied once, by sqlx itself (it hands owned arguments to its database thread). Under load the
/// sea-orm way was 12–16% of the persistence actor's thread (see BENCHMARKS.md).
pub async fn insert_numbered_sqlite(
    conn: &mut sea_orm::sqlx::SqliteConnection,
    rows: &[NewMessage<'_>],
) -> Result<(), DbErr> {
    use sea_orm::sqlx::Executor;
    let sql = insert_sql(DbBackend::Sqlite, rows.len());
    let mut query = sea_orm::sqlx::query(&sql);
    for row in rows {
        query = query
            .bind(row.id.to_string())
            .bind(row.agent_id.to_string())
            .bind(row.sequence_number)
            .bind(row.parsed.message_type.as_str())
            .bind(row.parsed.role.as_deref())
            .bind(row.parsed.content.as_str())
            .bind(row.parsed.raw.as_str())
            .bind(row.metadata.as_str())
            .bind(row.created_at);
    }
    conn.execute(query).await.map(|_| ()).map_err(sqlx_error)
}

/// A sqlx error as sea-orm reports it, so that its callers read both alike (`DbErr::sql_err`).
pub fn sqlx_error(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
}

/// The highest sequence number of each of `agents` that has a message (one statement).
pub async fn last_sequences(
    db: &impl ConnectionTrait,
    agents: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, i64>, DbErr> {
    let rows: Vec<(String, Option<i64>)> = entity::AgentMessage::find()
        .select_only()
        .column(agent_message::Column::AgentId)
        .column_as(agent_message::Column::SequenceNumber.max(), "max")
        .filter(agent_message::Column::AgentId.is_in(agents.iter().map(|a| a.to_string())))
        .group_by(agent_message::Column::AgentId)
        .into_tuple()
        .all(db)
        .await?;
    rows.into_iter()
        .map(|(id, max)| {
            let id = Uuid::parse_str(&id).map_err(|e| corrupt("message agent id", e))?;
            Ok((id, max.unwrap_or(0)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::MessageType;

    fn parsed(text: &str) -> ParsedMessage {
        ParsedMessage {
            message_type: MessageType::Assistant,
            role: None,
            content: text.into(),
            raw: "{}".into(),
            metadata: serde_json::json!({"eventType": "content_delta"}),
            outcome: None,
            session: None,
        }
    }

    #[tokio::test]
    async fn many_rows_of_many_agents_in_one_statement_and_their_last_numbers() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (db, _scratch) = crate::db::scratch(&[a, b, c]).await;
        let text = parsed("x");
        let row = |agent_id, sequence_number| NewMessage {
            id: Uuid::now_v7(),
            agent_id,
            sequence_number,
            parsed: &text,
            metadata: text.metadata.to_string(),
            created_at: "t",
        };
        let rows = [row(a, 1), row(a, 2), row(b, 1), row(a, 3), row(b, 2)];
        db.execute(insert_numbered_statement(DbBackend::Sqlite, &rows))
            .await
            .unwrap();
        let last = last_sequences(&db, &[a, b, c]).await.unwrap();
        assert_eq!(
            (last.get(&a), last.get(&b), last.get(&c)),
            (Some(&3), Some(&2), None)
        );
        let numbers: Vec<i64> = find_since(&db, a, 0, None)
            .await
            .unwrap()
            .iter()
            .map(|m| m.sequence_number)
            .collect();
        assert_eq!(numbers, vec![1, 2, 3]);
        // A number taken already is refused, and the statement stores none of its rows.
        let clash = [row(b, 3), row(a, 3)];
        assert!(db
            .execute(insert_numbered_statement(DbBackend::Sqlite, &clash))
            .await
            .is_err());
        assert_eq!(last_sequences(&db, &[b]).await.unwrap().get(&b), Some(&2));
    }
}
