//! The references on PostgreSQL (when the benchmark runs on it, `AGENTSTREAM_TEST_DATABASE=postgres`),
//! with the same rows as on SQLite, in a database of their own, over one connection:
//! - **seed-style**: one transaction per message holding the `MAX(sequence_number)+1` INSERT, then the
//!   SELECT that reads the number back;
//! - **raw multi-row INSERT**: every row in one transaction, 500 rows per statement (the server's own
//!   statement shape) — the reference the server is held to;
//! - **COPY**: every row in one transaction through `COPY … FROM STDIN` — PostgreSQL's fastest load.

use std::time::Instant;

use agentstream_testkit::TestDir;
use sqlx::{Connection, Executor, PgConnection};

use crate::references::{owner, raw_line, schema, AGENTS, METADATA};
use crate::server::BenchResult;
use crate::{per_second, Row};

/// Rows per multi-row INSERT, as the server writes them.
const ROWS_PER_INSERT: usize = 500;

/// A fresh schema with the agents in the database of `dir`.
async fn open(dir: &TestDir) -> Result<PgConnection, sqlx::Error> {
    let mut conn = PgConnection::connect(&dir.database_url()).await?;
    conn.execute("DROP TABLE IF EXISTS agent_messages; DROP TABLE IF EXISTS agents;")
        .await?;
    conn.execute(schema("BIGINT").as_str()).await?;
    let values: Vec<String> = (0..AGENTS).map(|a| format!("('agent-{a}')")).collect();
    conn.execute(format!("INSERT INTO agents (id) VALUES {}", values.join(",")).as_str())
        .await?;
    Ok(conn)
}

/// The rows, made beforehand: (id, agent, number, content, raw).
fn rows(n: u64) -> Vec<(String, String, i64, String, String)> {
    (0..n)
        .map(|i| {
            let (agent, number) = owner(i, AGENTS);
            (
                uuid::Uuid::now_v7().to_string(),
                agent,
                number,
                format!(" word{i}"),
                raw_line(i),
            )
        })
        .collect()
}

async fn seed_style(dir: &TestDir, n: u64) -> Result<f64, sqlx::Error> {
    let mut conn = open(dir).await?;
    let begun = Instant::now();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO agent_messages (id, agent_id, sequence_number, type, role, content, raw, metadata, created_at) \
             VALUES ($1, $2, (SELECT COALESCE(MAX(sequence_number), 0) + 1 FROM agent_messages WHERE agent_id = $2), \
             'assistant', NULL, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(owner(i, AGENTS).0)
        .bind(format!(" word{i}"))
        .bind(raw_line(i))
        .bind(METADATA)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await?;
        let _: (i64,) = sqlx::query_as("SELECT sequence_number FROM agent_messages WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(per_second(n, begun.elapsed()))
}

async fn multi_row_insert(dir: &TestDir, n: u64) -> Result<f64, sqlx::Error> {
    let mut conn = open(dir).await?;
    let prepared = rows(n);
    let begun = Instant::now();
    let mut tx = conn.begin().await?;
    for chunk in prepared.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO agent_messages (id, agent_id, sequence_number, type, role, content, raw, metadata, created_at) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 7;
            sql.push_str(&format!(
                "(${}, ${}, ${}, 'assistant', NULL, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
        }
        let mut query = sqlx::query(&sql);
        for (id, agent, number, content, raw) in chunk {
            query = query
                .bind(id)
                .bind(agent)
                .bind(number)
                .bind(content)
                .bind(raw)
                .bind(METADATA)
                .bind("2026-11-26T10:00:00.000Z");
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(per_second(n, begun.elapsed()))
}

/// A value in COPY's text format.
fn copy_text(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

async fn copy(dir: &TestDir, n: u64) -> Result<f64, sqlx::Error> {
    let mut conn = open(dir).await?;
    let prepared = rows(n);
    let begun = Instant::now();
    let mut tx = conn.begin().await?;
    let mut sink = tx
        .copy_in_raw(
            "COPY agent_messages (id, agent_id, sequence_number, type, role, content, raw, metadata, created_at) FROM STDIN",
        )
        .await?;
    let mut buffer = String::with_capacity(1 << 20);
    for (id, agent, number, content, raw) in &prepared {
        buffer.push_str(&format!(
            "{id}\t{agent}\t{number}\tassistant\t\\N\t{}\t{}\t{}\t2026-11-26T10:00:00.000Z\n",
            copy_text(content),
            copy_text(raw),
            copy_text(METADATA)
        ));
        if buffer.len() >= 1 << 20 {
            sink.send(std::mem::take(&mut buffer).into_bytes()).await?;
        }
    }
    if !buffer.is_empty() {
        sink.send(buffer.into_bytes()).await?;
    }
    sink.finish().await?;
    tx.commit().await?;
    Ok(per_second(n, begun.elapsed()))
}

/// The three references, in a database of their own.
pub async fn references(smoke: bool) -> BenchResult<Vec<Row>> {
    let dir = TestDir::new();
    dir.create_database().await?;
    let (seed_rows, bulk_rows) = if smoke {
        (200u64, 20_000u64)
    } else {
        (3_000, 200_000)
    };
    let failed = |e: sqlx::Error| format!("PostgreSQL reference: {e}");
    let seed = seed_style(&dir, seed_rows).await.map_err(failed)?;
    let insert = multi_row_insert(&dir, bulk_rows).await.map_err(failed)?;
    let copied = copy(&dir, bulk_rows).await.map_err(failed)?;
    Ok(vec![
        Row {
            scenario: "seed-style",
            metric: format!(
                "{seed_rows} rows of {AGENTS} agents on PostgreSQL: one INSERT(MAX+1) + SELECT per transaction"
            ),
            value: format!("{seed:.0} msg/s"),
            target: "reference",
        },
        Row {
            scenario: "raw bulk insert",
            metric: format!(
                "{bulk_rows} rows of {AGENTS} agents on PostgreSQL: one transaction, multi-row INSERTs of {ROWS_PER_INSERT}"
            ),
            value: format!("{insert:.0} msg/s"),
            target: "reference (physical limit)",
        },
        Row {
            scenario: "raw COPY",
            metric: format!("{bulk_rows} rows of {AGENTS} agents on PostgreSQL: one transaction, COPY FROM STDIN"),
            value: format!("{copied:.0} msg/s"),
            target: "reference",
        },
    ])
}
