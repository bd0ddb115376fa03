//! The database: opens the one named by the settings and brings its schema up to date.
//!
//! SQLite runs in WAL mode: readers (history, gap fill, replay) never
//! block the single writer and the writer never blocks them, and a commit appends to the log instead of
//! rewriting pages twice. Foreign keys are on (a message of a deleted agent is refused), and a busy timeout
//! makes a rare lock wait instead of failing.

use std::path::Path;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
};

use crate::configuration::{DatabaseSettings, SyncMode};

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbOpenError {
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database {url}: {source}")]
    Connect { url: String, source: DbErr },
    #[error("cannot migrate the database: {0}")]
    Migrate(DbErr),
}

/// SQLite's default page size, which this server keeps.
const PAGE_SIZE: u64 = 4096;

/// Opens the database (creating a SQLite file and its folder when missing) and runs every migration:
/// the pool that every reader (REST, replays, the checkpointer) shares.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbOpenError> {
    let db = open(settings, settings.max_connections.max(1), None).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        migrate_postgres(&db, &settings.url).await?;
    } else {
        Migrator::up(&db, None)
            .await
            .map_err(DbOpenError::Migrate)?;
    }
    Ok(db)
}

/// The advisory lock that serializes the migrations of instances started together on one database.
const MIGRATION_LOCK: i64 = 0x6167_656e_7473;

/// Runs the migrations while holding [`MIGRATION_LOCK`] on a connection of its own: instances started
/// at once on a new database would otherwise create the same tables together, and all but one fail.
async fn migrate_postgres(db: &DatabaseConnection, url: &str) -> Result<(), DbOpenError> {
    use sea_orm::sqlx::{Connection, PgConnection};
    let migrate = |e: sea_orm::sqlx::Error| DbOpenError::Migrate(DbErr::Custom(e.to_string()));
    let mut lock = PgConnection::connect(url).await.map_err(migrate)?;
    sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut lock)
        .await
        .map_err(migrate)?;
    let migrated = Migrator::up(db, None).await.map_err(DbOpenError::Migrate);
    // Closing the connection releases the lock too.
    let _ = lock.close().await;
    migrated
}

/// The writer's own connection (a pool of exactly one), for the persistence actor, the only writer. One
/// connection keeps its page cache (`database.writer_cache_bytes`) warm across batches: with writes
/// spread over the pool, each connection found its cache stale (another one had written) and read the
/// index pages again. It is never tested before use (a round trip per batch); a failed write reports
/// its own error. Open it after [`connect`] (which creates the schema).
pub async fn connect_writer(
    settings: &DatabaseSettings,
) -> Result<DatabaseConnection, DbOpenError> {
    open(settings, 1, Some(settings.writer_cache_bytes)).await
}

/// A pool of its own of `connections` to the database of `settings`, for a task that must not wait
/// for the shared pool's connections (the search indexer). Open it after [`connect`].
pub async fn connect_pool(
    settings: &DatabaseSettings,
    connections: u32,
) -> Result<DatabaseConnection, DbOpenError> {
    open(settings, connections, None).await
}

/// A pool of `connections` to the database of `settings`; `cache_bytes`: the page cache of each.
async fn open(
    settings: &DatabaseSettings,
    connections: u32,
    cache_bytes: Option<u64>,
) -> Result<DatabaseConnection, DbOpenError> {
    let url = settings.url.clone();
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(connections)
        .min_connections(1)
        .sqlx_logging(false);
    if cache_bytes.is_some() {
        options.test_before_acquire(false);
    }
    if let Some(path) = sqlite_path(&url) {
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| DbOpenError::Folder {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let busy = Duration::from_millis(settings.busy_timeout_ms);
        let synchronous = match settings.synchronous {
            SyncMode::Normal => SqliteSynchronous::Normal,
            SyncMode::Full => SqliteSynchronous::Full,
        };
        let max_pages = settings.max_size_bytes.div_ceil(PAGE_SIZE);
        let background_checkpoints = settings.checkpoint_interval_ms > 0;
        options.map_sqlx_sqlite_opts(move |o| {
            let mut o = o
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .foreign_keys(true)
                .busy_timeout(busy);
            // A full database fails writes with SQLITE_FULL, like a full disk: the agent that wrote
            // fails with `storage_error`, everything stored stays readable.
            if max_pages > 0 {
                o = o.pragma("max_page_count", max_pages.to_string());
            }
            // Checkpoints run off the writer's path (`spawn_checkpointer`) when an interval is set.
            if background_checkpoints {
                o = o.pragma("wal_autocheckpoint", "0");
            }
            // A negative cache_size is in KiB.
            if let Some(bytes) = cache_bytes.filter(|b| *b > 0) {
                o = o.pragma("cache_size", format!("-{}", (bytes / 1024).max(1)));
            }
            o
        });
    }
    if url.starts_with("postgres") {
        probe_postgres(&url).await?;
        // A transaction left open by a frozen instance would hold its lease row's lock, and keep the
        // others from taking it over: PostgreSQL ends it (ours last milliseconds between statements).
        options.map_sqlx_postgres_opts(|o| {
            o.options([(
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT_MS.to_string(),
            )])
        });
    }
    Database::connect(options)
        .await
        .map_err(|source| DbOpenError::Connect {
            url: redacted(&url),
            source,
        })
}

/// How long PostgreSQL lets a connection sit idle inside a transaction before it ends it.
const IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 3_000;

/// Copies the WAL back into the database file every `interval`, from a pool connection, instead of
/// letting SQLite do it inside the commit that crosses 1000 pages: that checkpoint (and its fsyncs) would
/// stall the single writer, and every message queued behind it, for tens of milliseconds. PASSIVE never
/// waits for the writer or for readers; the writer goes on appending meanwhile. SQLite only.
pub fn spawn_checkpointer(db: DatabaseConnection, interval: Duration) {
    if db.get_database_backend() != DbBackend::Sqlite || interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let checkpoint =
                Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)");
            match db.query_one(checkpoint).await {
                Ok(Some(row)) => {
                    let log: i64 = row.try_get_by_index(1).unwrap_or(-1);
                    let done: i64 = row.try_get_by_index(2).unwrap_or(-1);
                    tracing::trace!(log, done, "wal checkpoint");
                    if log > LARGE_WAL_PAGES && done < log {
                        tracing::warn!(
                            log,
                            done,
                            "the WAL is large and not fully checkpointed (a long read holds it)"
                        );
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "wal checkpoint failed"),
            }
        }
    });
}

/// A WAL of more pages than this (about 400 MB) is worth a warning.
const LARGE_WAL_PAGES: i64 = 100_000;

/// How long opening a PostgreSQL connection may take before the server gives up starting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to PostgreSQL before the pool: a pool that cannot connect reports only that it timed
/// out after its acquire timeout (30 s); this says why (refused, unknown database, authentication) and
/// at once.
async fn probe_postgres(url: &str) -> Result<(), DbOpenError> {
    use sea_orm::sqlx::Connection;
    let failed = |reason: String| DbOpenError::Connect {
        url: redacted(url),
        source: DbErr::Conn(sea_orm::RuntimeErr::Internal(reason)),
    };
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        sea_orm::sqlx::postgres::PgConnection::connect(url),
    )
    .await
    {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// A database URL fit for a message or a log: its password, if any, replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The file path of a `sqlite:` URL, without its query string; `None` for other databases and for
/// in-memory SQLite.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// For unit tests: a fresh SQLite file with its schema, holding a `running` agent row for each of
/// `agents`. The folder is removed when the returned guard is dropped.
#[cfg(test)]
pub async fn scratch(agents: &[uuid::Uuid]) -> (DatabaseConnection, Scratch) {
    use crate::configuration::SyncMode;
    let dir = std::env::temp_dir().join(format!("agentstream-unit-{}", uuid::Uuid::new_v4()));
    let settings = DatabaseSettings {
        url: format!("sqlite://{}/t.db", dir.display()),
        max_connections: 2,
        busy_timeout_ms: 1000,
        synchronous: SyncMode::Normal,
        max_size_bytes: 0,
        checkpoint_interval_ms: 0,
        writer_cache_bytes: 0,
    };
    let db = connect(&settings).await.expect("a scratch database");
    for id in agents {
        db.execute(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO agents (id, type, status, prompt, configuration, created_at) VALUES (?, 'synthetic', 'running', 'p', '{}', 't')",
            [id.to_string().into()],
        ))
        .await
        .expect("an agent row");
    }
    (db, Scratch(dir))
}

/// Removes a [`scratch`] database's folder when dropped.
#[cfg(test)]
pub struct Scratch(std::path::PathBuf);

#[cfg(test)]
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            super::redacted("postgres://app:s3cr:et@db.local:5432/agents?sslmode=require"),
            "postgres://app:***@db.local:5432/agents?sslmode=require"
        );
        assert_eq!(
            super::redacted("postgres://app@127.0.0.1/agents"),
            "postgres://app@127.0.0.1/agents"
        );
        assert_eq!(
            super::redacted("sqlite://data/agent.db"),
            "sqlite://data/agent.db"
        );
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://data/agent.db"), Some("data/agent.db"));
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db?mode=rwc"),
            Some("/tmp/a.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/x"), None);
    }
}
