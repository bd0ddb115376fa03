//! Two references measured on the same disk in the same run, with the rows of the throughput scenario
//! (token lines of as many agents, interleaved, each agent numbered 1, 2, 3…):
//! - **seed-style**: the original design's persistence — SQLite with the DELETE journal (synchronous FULL,
//!   SQLite's default there), one INSERT with the `MAX(sequence_number)+1` subquery per transaction,
//!   then the SELECT that reads the number back;
//! - **raw bulk insert**: the same rows in one transaction through one prepared statement, in the
//!   server's own durability mode (WAL, synchronous NORMAL) — the physical limit of the storage.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{params, Connection};

use crate::server::BenchResult;
use crate::{per_second, Row};

/// The server's schema, with the sequence number's integer type of the database (SQLite's `INTEGER`,
/// PostgreSQL's `BIGINT`).
pub fn schema(integer: &str) -> String {
    format!(
        "
CREATE TABLE agents (id TEXT PRIMARY KEY NOT NULL);
CREATE TABLE agent_messages (
  id TEXT PRIMARY KEY NOT NULL,
  agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  sequence_number {integer} NOT NULL,
  type TEXT NOT NULL, role TEXT, content TEXT NOT NULL, raw TEXT, metadata TEXT, created_at TEXT NOT NULL,
  UNIQUE(agent_id, sequence_number));
CREATE INDEX idx_agent_messages_created_at ON agent_messages(created_at);
"
    )
}

/// The agents of the throughput scenario, whose rows both references write, interleaved.
pub const AGENTS: u64 = 100;

/// The agent of the `i`th row (rows go round-robin over the agents, as concurrent agents' do) and its
/// number within that agent.
pub fn owner(i: u64, agents: u64) -> (String, i64) {
    (format!("agent-{}", i % agents), (i / agents) as i64 + 1)
}

/// A token row's raw line, as long as the synthetic runner's.
pub fn raw_line(i: u64) -> String {
    format!(
        r#"{{"type":"stream_event","event":{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":" word{i}"}}}},"session_id":"0c45e3a8-1158-4dae-b739-8831e5b76594","parent_tool_use_id":null,"uuid":"{}","api_message_id":"msg_synthetic_30610bce79d34fb092b452741fb8a166"}}"#,
        uuid::Uuid::new_v4()
    )
}

pub const METADATA: &str = r#"{"eventType":"content_delta","blockIndex":0,"messageId":"msg_synthetic_30610bce79d34fb092b452741fb8a166"}"#;

/// A fresh database of the server's schema, in `journal` mode with `synchronous`.
fn open(path: &Path, journal: &str, synchronous: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", journal)?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(&schema("INTEGER"))?;
    for a in 0..AGENTS {
        conn.execute(
            "INSERT INTO agents (id) VALUES (?1)",
            params![format!("agent-{a}")],
        )?;
    }
    Ok(conn)
}

/// The seed's persistence: per message, one transaction holding the INSERT whose number is the
/// `MAX(sequence_number)+1` subquery, then the SELECT that reads the number back.
fn seed_style(path: &Path, rows: u64) -> rusqlite::Result<f64> {
    let conn = open(path, "DELETE", "FULL")?;
    let mut insert = conn.prepare(
        "INSERT INTO agent_messages (id, agent_id, sequence_number, type, role, content, raw, metadata, created_at) \
         VALUES (?1, ?2, (SELECT COALESCE(MAX(sequence_number), 0) + 1 FROM agent_messages WHERE agent_id = ?2), \
         'assistant', NULL, ?3, ?4, ?5, ?6)",
    )?;
    let mut select = conn.prepare("SELECT sequence_number FROM agent_messages WHERE id = ?1")?;
    let begun = Instant::now();
    for i in 0..rows {
        let id = uuid::Uuid::new_v4().to_string();
        insert.execute(params![
            id,
            owner(i, AGENTS).0,
            format!(" word{i}"),
            raw_line(i),
            METADATA,
            chrono::Utc::now().to_rfc3339()
        ])?;
        let _: i64 = select.query_row(params![id], |row| row.get(0))?;
    }
    Ok(per_second(rows, begun.elapsed()))
}

/// The physical limit: the same rows, prepared beforehand, in one transaction through one prepared
/// statement, in the server's own durability mode (WAL, synchronous NORMAL).
fn raw_bulk(path: &Path, rows: u64) -> rusqlite::Result<f64> {
    let mut conn = open(path, "WAL", "NORMAL")?;
    // The page cache the server's writer has (`database.writer_cache_bytes`, 64 MiB): with SQLite's
    // default 2 MiB, 100 agents' index pages spill from the cache in mid-transaction, and this
    // reference ran at half its speed.
    conn.pragma_update(None, "cache_size", -65536)?;
    let prepared: Vec<(String, String, i64, String, String)> = (0..rows)
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
        .collect();
    let begun = Instant::now();
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO agent_messages (id, agent_id, sequence_number, type, role, content, raw, metadata, created_at) \
             VALUES (?1, ?2, ?3, 'assistant', NULL, ?4, ?5, ?6, ?7)",
        )?;
        for (id, agent, number, content, raw) in &prepared {
            insert.execute(params![
                id,
                agent,
                number,
                content,
                raw,
                METADATA,
                "2026-11-26T10:00:00.000Z"
            ])?;
        }
    }
    tx.commit()?;
    Ok(per_second(rows, begun.elapsed()))
}

/// Both references; `dir` is on the disk the server uses. On PostgreSQL, its own references.
pub async fn references(_binary: PathBuf, smoke: bool) -> BenchResult<Vec<Row>> {
    if agentstream_testkit::backend() == agentstream_testkit::Backend::Postgres {
        return crate::references_postgres::references(smoke).await;
    }
    let dir = tempfile::TempDir::new().map_err(|e| e.to_string())?;
    let (seed_rows, bulk_rows) = if smoke {
        (200u64, 20_000u64)
    } else {
        // As many rows as the throughput scenario stores (100 agents × 2,000 tokens).
        (3_000, 200_000)
    };
    let path = dir.path().to_owned();
    let (seed_rate, bulk_rate) = tokio::task::spawn_blocking(move || {
        Ok::<_, rusqlite::Error>((
            seed_style(&path.join("seed.db"), seed_rows)?,
            raw_bulk(&path.join("bulk.db"), bulk_rows)?,
        ))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("reference: {e}"))?;
    Ok(vec![
        Row {
            scenario: "seed-style",
            metric: format!(
                "{seed_rows} rows of {AGENTS} agents: DELETE journal, one INSERT(MAX+1) + SELECT per transaction"
            ),
            value: format!("{seed_rate:.0} msg/s"),
            target: "reference",
        },
        Row {
            scenario: "raw bulk insert",
            metric: format!(
                "{bulk_rows} rows of {AGENTS} agents: WAL/NORMAL, one transaction, prepared statement (rusqlite)"
            ),
            value: format!("{bulk_rate:.0} msg/s"),
            target: "reference (physical limit)",
        },
    ])
}
