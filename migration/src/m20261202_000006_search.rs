//! The full-text index behind `GET /api/agents?q=`: per agent, the text of its prompt and messages in
//! chunks (`search_chunks`), and how far its messages are indexed (`search_cursors`).
//!
//! Each backend indexes with what it has built in, so the SQL is written per backend: SQLite a
//! contentless FTS5 table of the chunks' words, PostgreSQL a `tsvector` column with a GIN index. Both tables cascade from `agents`, so a purge takes an agent out of the index in
//! its own transaction.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Adds `search_chunks`, its index, and `search_cursors`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000006_search"
    }
}

/// Per agent, the last message indexed, and its status when everything it had stored was indexed (the
/// same on both databases).
const CURSORS: &str = "CREATE TABLE search_cursors (
    agent_id TEXT PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    indexed_seq BIGINT NOT NULL,
    settled TEXT NULL
)";

/// SQLite: `search_fts` indexes each chunk's words as the indexer split them (the words of the query
/// rules, lower-cased, space-separated), under the chunk's id; it keeps no text of its own (contentless:
/// the text is in the chunk, for the passage a result shows). The indexer, not `unicode61`, decides
/// what a word is: `unicode61` alone would keep `$HOME` or `a+b` as one token, which PostgreSQL splits,
/// and one query must find the same agents on both. A chunk's delete (also by the cascade of a purge)
/// takes its words out of the index.
const SQLITE_UP: &[&str] = &[
    "CREATE TABLE search_chunks (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        body TEXT NOT NULL
    )",
    "CREATE INDEX idx_search_chunks_agent ON search_chunks(agent_id)",
    "CREATE VIRTUAL TABLE search_fts USING fts5(
        words, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 0'
    )",
    "CREATE TRIGGER search_chunks_delete AFTER DELETE ON search_chunks BEGIN
        DELETE FROM search_fts WHERE rowid = old.id;
    END",
    CURSORS,
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TABLE IF EXISTS search_cursors",
    "DROP TRIGGER IF EXISTS search_chunks_delete",
    "DROP TABLE IF EXISTS search_fts",
    "DROP TABLE IF EXISTS search_chunks",
];

/// PostgreSQL: `words` is the chunk's words as the indexer normalized them (lower-cased, split as the
/// query is split), turned into a `tsvector` with the `simple` configuration (no stemming, no stop
/// words), the same words SQLite's tokenizer makes.
const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE search_chunks (
        id BIGSERIAL PRIMARY KEY,
        agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        body TEXT NOT NULL,
        words TSVECTOR NOT NULL
    )",
    "CREATE INDEX idx_search_chunks_agent ON search_chunks(agent_id)",
    "CREATE INDEX idx_search_chunks_words ON search_chunks USING GIN (words)",
    CURSORS,
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TABLE IF EXISTS search_cursors",
    "DROP TABLE IF EXISTS search_chunks",
];

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_UP).await,
            _ => run(manager, SQLITE_UP).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_DOWN).await,
            _ => run(manager, SQLITE_DOWN).await,
        }
    }
}
