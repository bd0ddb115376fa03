//! The seed's AgentMessageService: the statements that read and write agents and messages, and the
//! conversion of rows into the protocol's shapes. Reads run anywhere; the writes are executed only by the
//! persistence actor (`streaming`).

use agentstream_wire::{Agent, AgentStatus, ErrorInfo, Message};
use entity::{agent, agent_message};
use sea_orm::sea_query::{Expr, Func, Query};
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

/// The seed's atomic save: one INSERT whose sequence number is `COALESCE(MAX(sequence_number), 0) + 1`
/// over the agent's rows, computed inside the statement, returning the number it got. The foreign key
/// refuses a message whose agent is gone; `UNIQUE(agent_id, sequence_number)` refuses a repeat.
pub fn insert_message_statement(
    db: &impl ConnectionTrait,
    id: Uuid,
    agent_id: Uuid,
    parsed: &ParsedMessage,
    created_at: &str,
) -> Result<Statement, DbErr> {
    use agent_message::Column as C;
    let agent = agent_id.to_string();
    let next = Expr::expr(Func::coalesce([
        Expr::col(C::SequenceNumber).max(),
        Expr::val(0i64).into(),
    ]))
    .add(1i64);
    let select = Query::select()
        .expr(Expr::val(id.to_string()))
        .expr(Expr::val(agent.clone()))
        .expr(next)
        .expr(Expr::val(parsed.message_type.as_str()))
        .expr(Expr::val(parsed.role.clone()))
        .expr(Expr::val(parsed.content.clone()))
        .expr(Expr::val(parsed.raw.clone()))
        .expr(Expr::val(parsed.metadata.to_string()))
        .expr(Expr::val(created_at))
        .from(entity::AgentMessage)
        .and_where(Expr::col(C::AgentId).eq(agent))
        .to_owned();
    let insert = Query::insert()
        .into_table(entity::AgentMessage)
        .columns([
            C::Id,
            C::AgentId,
            C::SequenceNumber,
            C::MessageType,
            C::Role,
            C::Content,
            C::Raw,
            C::Metadata,
            C::CreatedAt,
        ])
        .select_from(select)
        .map_err(|e| DbErr::Custom(format!("cannot build the insert: {e}")))?
        .returning_col(C::SequenceNumber)
        .to_owned();
    Ok(db.get_database_backend().build(&insert))
}

/// One message of a multi-row insert.
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub agent_id: Uuid,
    /// 1 for the agent's first message of this insert, 2 for its second…
    pub ordinal: i64,
    pub parsed: &'a ParsedMessage,
    pub created_at: &'a str,
}

/// At most this many rows per multi-row insert (9 bound values each, well under SQLite's limit).
pub const MAX_ROWS_PER_INSERT: usize = 500;

/// The same atomic save for many messages in one statement: each row's number is the agent's
/// `COALESCE(MAX(sequence_number), 0)` as the statement starts, plus the row's ordinal among that agent's
/// rows — computed inside the INSERT, as one statement instead of one per message. Returns `(id,
/// sequence_number)` of every row. Plain SQL that SQLite and PostgreSQL both run (`VALUES` columns are
/// `column1…` in both).
pub fn insert_messages_statement(backend: DbBackend, rows: &[NewMessage<'_>]) -> Statement {
    let mut sql = String::from(
        "INSERT INTO agent_messages (id, agent_id, sequence_number, type, role, content, raw, metadata, created_at) \
         SELECT v.column1, v.column2, \
         COALESCE((SELECT MAX(m.sequence_number) FROM agent_messages m WHERE m.agent_id = v.column2), 0) + v.column3, \
         v.column4, v.column5, v.column6, v.column7, v.column8, v.column9 FROM (VALUES ",
    );
    let mut values: Vec<DbValue> = Vec::with_capacity(rows.len() * 9);
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for j in 0..9 {
            if j > 0 {
                sql.push_str(", ");
            }
            match backend {
                DbBackend::Postgres => sql.push_str(&format!("${}", i * 9 + j + 1)),
                _ => sql.push('?'),
            }
        }
        sql.push(')');
        values.push(row.id.to_string().into());
        values.push(row.agent_id.to_string().into());
        values.push(row.ordinal.into());
        values.push(row.parsed.message_type.as_str().into());
        values.push(row.parsed.role.clone().into());
        values.push(row.parsed.content.clone().into());
        values.push(row.parsed.raw.clone().into());
        values.push(row.parsed.metadata.to_string().into());
        values.push(row.created_at.to_owned().into());
    }
    sql.push_str(") AS v RETURNING id, sequence_number");
    Statement::from_sql_and_values(backend, sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::{DatabaseSettings, SyncMode};
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
    async fn one_statement_numbers_many_rows_of_many_agents_contiguously() {
        let dir = std::env::temp_dir().join(format!("agentstream-msg-{}", Uuid::new_v4()));
        let settings = DatabaseSettings {
            url: format!("sqlite://{}/t.db", dir.display()),
            max_connections: 2,
            busy_timeout_ms: 1000,
            synchronous: SyncMode::Normal,
        };
        let db = crate::db::connect(&settings).await.unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        for id in [a, b] {
            db.execute(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO agents (id, type, status, prompt, configuration, created_at) VALUES (?, 'synthetic', 'running', 'p', '{}', 't')",
                [id.to_string().into()],
            ))
            .await
            .unwrap();
        }
        let text = parsed("x");
        for (round, plan) in [
            [(a, 1), (a, 2), (b, 1), (a, 3)],
            [(b, 1), (a, 1), (a, 2), (b, 2)],
        ]
        .iter()
        .enumerate()
        {
            let rows: Vec<NewMessage<'_>> = plan
                .iter()
                .map(|&(agent_id, ordinal)| NewMessage {
                    id: Uuid::now_v7(),
                    agent_id,
                    ordinal,
                    parsed: &text,
                    created_at: "t",
                })
                .collect();
            let returned = db
                .query_all(insert_messages_statement(DbBackend::Sqlite, &rows))
                .await
                .unwrap();
            assert_eq!(returned.len(), 4, "round {round}");
        }
        let numbers = |agent| {
            let db = db.clone();
            async move {
                find_since(&db, agent, 0, None)
                    .await
                    .unwrap()
                    .iter()
                    .map(|m| m.sequence_number)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(numbers(a).await, vec![1, 2, 3, 4, 5]);
        assert_eq!(numbers(b).await, vec![1, 2, 3]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
