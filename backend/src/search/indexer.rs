//! The indexer: follows what the persistence actor stored and adds it to the full-text index, off the
//! hot path. The persistence actor writes tens of thousands of tokens a second, each a few characters:
//! indexing each as it is stored would multiply the work of every write and index half-words. Instead,
//! every `search.interval_ms` this task reads, per agent, the messages after its durable cursor
//! (`search_cursors`), joins their text ([`assemble`]: streamed pieces glued into words) and writes it
//! as one chunk with the moved cursor. On SQLite a pass writes in short transactions, in turn with the
//! persistence actor ([`WriteTurns`]).
//!
//! It runs on a thread of its own, with connections of its own, so that reading and joining text never
//! takes the thread the agents, the persistence actor and the registry share. Everything it knows is
//! in the database: it catches up after a restart, and on PostgreSQL it indexes what every instance
//! stored. There, one instance indexes at a time (a transaction-scoped advisory lock per pass, taken
//! before anything is read), and a cursor moves only from where it was read, so two instances never
//! index the same messages twice.

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqlErr,
    TransactionTrait,
};

use super::text::{assemble, chunks};
use crate::configuration::DatabaseSettings;
use crate::store::search::{messages_after, unindexed_agents, write_step, Chunk, Step, Unindexed};
use crate::write_turns::WriteTurns;

/// Messages read per agent per pass.
const PAGE: u64 = 2000;

/// Agents looked at per pass. More running at once than this (across every instance of a database)
/// would be indexed in the order they were created, the last ones only when the first ones finish.
const MAX_AGENTS_PER_PASS: u64 = 1000;

/// The advisory lock one pass holds on PostgreSQL, so that instances take turns.
const PASS_LOCK: i64 = 0x7365_6172_6368;

/// Starts the indexer on its own thread: it opens its own connections to the database of `settings`
/// and indexes every `interval` (at once again while it is behind), writing in its `turns`.
pub fn spawn(
    settings: DatabaseSettings,
    interval: Duration,
    turns: WriteTurns,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("search-indexer".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!(error = %e, "the search indexer cannot start; search finds nothing new");
                    return;
                }
            };
            runtime.block_on(async move {
                let db = loop {
                    match crate::db::connect_pool(&settings, 2).await {
                        Ok(db) => break db,
                        Err(e) => {
                            tracing::warn!(error = %e, "the search indexer cannot open the database; trying again");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                run(db, interval, turns).await;
            });
        })
        .map(drop)
}

/// Indexes forever: a pass every `interval`, or at once while the last one left work behind.
async fn run(db: DatabaseConnection, interval: Duration, turns: WriteTurns) {
    let mut failing = false;
    loop {
        let started = tokio::time::Instant::now();
        let behind = match pass(&db, &turns).await {
            Ok(behind) => {
                if failing {
                    tracing::info!("the search indexer is indexing again");
                    failing = false;
                }
                behind
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "the search indexer cannot index; trying again");
                    failing = true;
                }
                false
            }
        };
        // Passes start an interval apart: a slow pass (under load) does not add its own time to the lag.
        if !behind {
            tokio::time::sleep_until(started + interval).await;
        }
    }
}

/// Text one pass writes at most, in bytes: past it, the rest waits for the next pass (right after).
const MAX_PASS_BYTES: usize = 1 << 20;

/// Text and agents one write transaction holds at most. On SQLite each transaction is a turn at the
/// one write lock, during which the persistence actor (and every message behind it) waits: a pass
/// writes in many short turns (about a millisecond each) rather than one long one.
const MAX_WRITE_BYTES: usize = 16 * 1024;
const MAX_WRITE_AGENTS: usize = 16;

/// One pass over the agents the index lags behind; `true` when some have more to index right away.
async fn pass(db: &DatabaseConnection, turns: &WriteTurns) -> Result<bool, DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => pass_postgres(db).await,
        _ => pass_sqlite(db, turns).await,
    }
}

/// On SQLite, everything is read and made ready first (no lock held), then written in short
/// transactions of a few agents each (a savepoint per agent), each in its turn among this process's
/// writers.
async fn pass_sqlite(db: &DatabaseConnection, turns: &WriteTurns) -> Result<bool, DbErr> {
    let started = std::time::Instant::now();
    let (prepared, behind) = read(db).await?;
    let read_ms = started.elapsed().as_millis() as u64;
    let mut transactions = 0;
    let mut rest = prepared.as_slice();
    while !rest.is_empty() {
        let (group, after) = rest.split_at(write_group_len(rest));
        rest = after;
        let _turn = turns.take().await;
        let txn = db.begin().await?;
        for (agent, step) in group {
            write(&txn, agent, step).await?;
        }
        txn.commit().await?;
        transactions += 1;
    }
    logged(&prepared, behind, transactions, read_ms, started);
    Ok(behind)
}

/// On PostgreSQL, where several instances may index the same database, a pass is one transaction that
/// first takes a transaction-scoped advisory lock: the instance that does not get it skips the pass
/// before reading anything (the one that holds it indexes every instance's agents). Nothing waits on
/// a long transaction there: PostgreSQL locks rows, and these rows are the index's own.
async fn pass_postgres(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let started = std::time::Instant::now();
    let txn = db.begin().await?;
    let locked = txn
        .query_one(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1) AS locked",
            [PASS_LOCK.into()],
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "locked"))
        .transpose()?
        .unwrap_or(false);
    if !locked {
        // Another instance is indexing now; what it does not index, a later pass does.
        txn.rollback().await?;
        return Ok(false);
    }
    let (prepared, behind) = read(&txn).await?;
    let read_ms = started.elapsed().as_millis() as u64;
    for (agent, step) in &prepared {
        write(&txn, agent, step).await?;
    }
    txn.commit().await?;
    logged(
        &prepared,
        behind,
        usize::from(!prepared.is_empty()),
        read_ms,
        started,
    );
    Ok(behind)
}

/// Reads and makes ready what a pass writes: each agent that may have new messages with its step,
/// and whether some have more than one pass takes.
async fn read(db: &impl ConnectionTrait) -> Result<(Vec<(Unindexed, Prepared)>, bool), DbErr> {
    let agents = unindexed_agents(db, MAX_AGENTS_PER_PASS).await?;
    let mut behind = agents.len() as u64 == MAX_AGENTS_PER_PASS;
    let mut prepared = Vec::new();
    let mut bytes = 0;
    for agent in agents {
        if bytes > MAX_PASS_BYTES {
            behind = true;
            break;
        }
        let (step, more) = prepare(db, &agent).await?;
        behind |= more;
        if let Some(step) = step {
            bytes += step.bytes;
            prepared.push((agent, step));
        }
    }
    Ok((prepared, behind))
}

/// Logs a pass that wrote something (at debug level).
fn logged(
    prepared: &[(Unindexed, Prepared)],
    behind: bool,
    transactions: usize,
    read_ms: u64,
    started: std::time::Instant,
) {
    if transactions > 0 {
        tracing::debug!(
            agents = prepared.len(),
            bytes = prepared.iter().map(|(_, p)| p.bytes).sum::<usize>(),
            behind,
            transactions,
            read_ms,
            ms = started.elapsed().as_millis() as u64,
            "search pass"
        );
    }
}

/// How many of the first agents of `prepared` one write transaction takes: at least one, at most
/// [`MAX_WRITE_AGENTS`], and no more once their text reaches [`MAX_WRITE_BYTES`].
fn write_group_len(prepared: &[(Unindexed, Prepared)]) -> usize {
    let mut bytes = 0;
    let mut len = 0;
    for (_, step) in prepared.iter().take(MAX_WRITE_AGENTS) {
        if len > 0 && bytes + step.bytes > MAX_WRITE_BYTES {
            break;
        }
        bytes += step.bytes;
        len += 1;
    }
    len.max(1).min(prepared.len())
}

/// What is to be written of one agent.
struct Prepared {
    chunks: Vec<Chunk>,
    /// The length of its text.
    bytes: usize,
    to: i64,
    settled: bool,
}

/// Reads and joins the next messages of `agent`: what to write (`None`: nothing), and whether it has
/// more to read.
async fn prepare(
    db: &impl ConnectionTrait,
    agent: &Unindexed,
) -> Result<(Option<Prepared>, bool), DbErr> {
    let after = agent.indexed_seq.unwrap_or(0);
    let messages = messages_after(db, &agent.id, after, PAGE).await?;
    let more = messages.len() as u64 == PAGE;
    // A finished agent stores nothing more: all of its text is whole.
    let finished = agent.finished && !more;
    let prompt = agent.indexed_seq.is_none().then_some(agent.prompt.as_str());
    let assembled = assemble(prompt, &messages, finished);
    let to = assembled.through.unwrap_or(after);
    if agent.indexed_seq == Some(to) && !finished {
        return Ok((None, more));
    }
    let step = Prepared {
        chunks: chunks(&assembled.text)
            .into_iter()
            .map(Chunk::new)
            .collect(),
        bytes: assembled.text.len(),
        to,
        settled: finished,
    };
    Ok((Some(step), more))
}

/// Writes `prepared` for `agent` in a savepoint of `txn`; an agent purged meanwhile is skipped.
async fn write(
    txn: &DatabaseTransaction,
    agent: &Unindexed,
    prepared: &Prepared,
) -> Result<(), DbErr> {
    let step = Step {
        agent_id: &agent.id,
        chunks: &prepared.chunks,
        from: agent.indexed_seq,
        to: prepared.to,
        settled: prepared.settled.then_some(agent.marker.as_str()),
    };
    let savepoint = txn.begin().await?;
    match write_step(&savepoint, &step).await {
        Ok(true) => savepoint.commit().await,
        Ok(false) => savepoint.rollback().await,
        Err(e) => {
            savepoint.rollback().await?;
            // Purged meanwhile: nothing of it is to be indexed.
            if !matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_))) {
                return Err(e);
            }
            tracing::debug!(agent = %agent.id, "not indexed: the agent is gone");
            Ok(())
        }
    }
}
