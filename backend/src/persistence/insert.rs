//! Storing messages: the multi-row INSERT of numbered rows, on any database through sea-orm or on
//! SQLite straight through sqlx, one statement per [`MAX_ROWS_PER_INSERT`] rows.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value as DbValue};
use uuid::Uuid;

use super::frames;
use super::numbering::{numbered_rows, LastSequences, Staged};
use super::requests::Request;
use crate::clock;
use crate::gateway::registry::EventFrame;
use crate::instances::lease::Fence;
use crate::parser::ParsedMessage;

/// One message of a multi-row insert, numbered by the persistence actor.
pub(crate) struct NewMessage<'a> {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub sequence_number: i64,
    pub parsed: &'a ParsedMessage,
    /// `parsed.metadata` as JSON text (written once, for the row and for the event).
    pub metadata: String,
    pub created_at: &'a str,
}

/// At most this many rows per multi-row insert (9 bound values each, well under SQLite's limit).
pub(crate) const MAX_ROWS_PER_INSERT: usize = 500;

/// What a write refused by its fence fails with (see [`super::write`]'s `classify`).
pub(super) const LEASE_LOST: &str = "the instance's lease was taken over";

/// Many messages in one plain INSERT, with the numbers the persistence actor assigned (each agent's
/// `MAX(sequence_number) + 1, + 2…`; `UNIQUE(agent_id, sequence_number)` refuses any clash). Plain SQL
/// that SQLite and PostgreSQL both run. With a `fence` (PostgreSQL, several instances) the same
/// statement inserts nothing unless this instance's claim still holds, and locks its row until the
/// commit, so that a takeover waits for the write or the write sees the takeover.
pub(crate) fn insert_numbered_statement(
    backend: DbBackend,
    rows: &[NewMessage<'_>],
    fence: Option<&Fence>,
) -> Statement {
    let mut values: Vec<DbValue> = Vec::with_capacity(rows.len() * 9 + 2);
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
    let mut sql = String::with_capacity(300 + rows.len() * 40);
    match fence {
        Some(fence) if backend == DbBackend::Postgres => {
            use std::fmt::Write;
            let at = rows.len() * 9;
            let _ = write!(
                sql,
                "WITH lease AS (SELECT 1 FROM instances WHERE id = ${} AND epoch = ${} FOR SHARE) ",
                at + 1,
                at + 2
            );
            values.push(fence.instance().into());
            values.push(fence.epoch().into());
            sql.push_str(INSERT_INTO);
            sql.push_str(" SELECT * FROM (");
            push_values(&mut sql, backend, rows.len());
            sql.push_str(") AS v WHERE EXISTS (SELECT 1 FROM lease)");
        }
        _ => {
            sql.push_str(INSERT_INTO);
            sql.push(' ');
            push_values(&mut sql, backend, rows.len());
        }
    }
    Statement::from_sql_and_values(backend, sql, values)
}

const INSERT_INTO: &str = "INSERT INTO agent_messages (id, agent_id, sequence_number, type, role, content, raw, metadata, created_at)";

/// The plain INSERT with `rows` rows of placeholders.
fn insert_sql(backend: DbBackend, rows: usize) -> String {
    let mut sql = String::with_capacity(160 + rows * 40);
    sql.push_str(INSERT_INTO);
    sql.push(' ');
    push_values(&mut sql, backend, rows);
    sql
}

/// `VALUES (…), (…)` with `rows` rows of 9 placeholders.
fn push_values(sql: &mut String, backend: DbBackend, rows: usize) {
    sql.push_str("VALUES ");
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
}

/// [`insert_numbered_statement`] run on SQLite straight through sqlx: a sea-orm statement owns a copy
/// of every value and copies it again into sqlx's arguments; bound here by reference, each row's text
/// is copied once, by sqlx itself (it hands owned arguments to its database thread). Under load the
/// sea-orm way costs 12–16% of the persistence actor's thread (BENCHMARKS.md).
async fn insert_numbered_sqlite(
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
pub(super) fn sqlx_error(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
}

/// Where [`append_many`] inserts each statement's rows.
pub(super) trait RowSink {
    /// Inserts `rows` with one statement.
    async fn insert(&mut self, rows: &[NewMessage<'_>]) -> Result<(), DbErr>;
}

/// A sea-orm connection or transaction, on any database, and the fence its inserts hold to.
pub(super) struct Statements<'c, C>(pub(super) &'c C, pub(super) Option<&'c Fence>);

impl<C: ConnectionTrait> RowSink for Statements<'_, C> {
    async fn insert(&mut self, rows: &[NewMessage<'_>]) -> Result<(), DbErr> {
        let insert = insert_numbered_statement(self.0.get_database_backend(), rows, self.1);
        let done = self.0.execute(insert).await?;
        if self.1.is_some() && done.rows_affected() < rows.len() as u64 {
            return Err(DbErr::Custom(LEASE_LOST.into()));
        }
        Ok(())
    }
}

/// The writer's SQLite connection (or a transaction on it), through sqlx.
impl RowSink for sea_orm::sqlx::SqliteConnection {
    async fn insert(&mut self, rows: &[NewMessage<'_>]) -> Result<(), DbErr> {
        insert_numbered_sqlite(self, rows).await
    }
}

/// Stores the messages of `requests` (all [`Request::Append`]s) whose agents' last numbers are known
/// ([`super::numbering::resolve_last`]), numbering each agent's rows after its last number: one
/// statement per [`MAX_ROWS_PER_INSERT`] rows, in the caller's transaction when there are several.
/// Each statement's rows are numbered, and the previous one's frames serialized, while the database
/// thread runs the previous one, so that thread is not kept waiting between them. Returns each
/// message's number and `agent:message` frame, in order.
pub(super) async fn append_many(
    sink: &mut impl RowSink,
    requests: &[Request],
    last: &LastSequences,
    staged: &mut Staged,
) -> Result<Vec<(i64, EventFrame)>, DbErr> {
    let created_at = clock::now();
    let timestamp = clock::now();
    let mut chunks = requests.chunks(MAX_ROWS_PER_INSERT);
    let mut out = Vec::with_capacity(requests.len());
    let mut next = chunks
        .next()
        .map(|chunk| numbered_rows(chunk, last, staged, &created_at));
    while let Some(rows) = next {
        // Committed or not, the frames are only broadcast once the whole write is (and dropped if it
        // fails); numbers staged for a later statement are dropped with the transaction.
        let (inserted, following) = futures_util::future::join(sink.insert(&rows), async {
            out.extend(rows.iter().map(|row| {
                let frame = frames::message(
                    row.id,
                    row.agent_id,
                    row.sequence_number,
                    row.parsed,
                    &row.metadata,
                    &created_at,
                    &timestamp,
                );
                (row.sequence_number, frame)
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
        db.execute(insert_numbered_statement(DbBackend::Sqlite, &rows, None))
            .await
            .unwrap();
        let last = crate::store::last_sequences(&db, &[a, b, c]).await.unwrap();
        assert_eq!(
            (last.get(&a), last.get(&b), last.get(&c)),
            (Some(&3), Some(&2), None)
        );
        let numbers: Vec<i64> = crate::store::find_since(&db, a, 0, None)
            .await
            .unwrap()
            .iter()
            .map(|m| m.sequence_number)
            .collect();
        assert_eq!(numbers, vec![1, 2, 3]);
        // A number taken already is refused, and the statement stores none of its rows.
        let clash = [row(b, 3), row(a, 3)];
        assert!(db
            .execute(insert_numbered_statement(DbBackend::Sqlite, &clash, None))
            .await
            .is_err());
        assert_eq!(
            crate::store::last_sequences(&db, &[b])
                .await
                .unwrap()
                .get(&b),
            Some(&2)
        );
    }
}
