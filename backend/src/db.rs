//! The seed's DatabaseService: opens the database named by the settings and brings its schema up to date.
//!
//! SQLite runs in WAL mode, unlike the seed's DELETE journal: readers (history, gap fill, replay) never
//! block the single writer and the writer never blocks them, and a commit appends to the log instead of
//! rewriting pages twice. Foreign keys are on (a message of a deleted agent is refused), and a busy timeout
//! makes a rare lock wait instead of failing.

use std::path::Path;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

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

/// Opens the database (creating a SQLite file and its folder when missing) and runs every migration.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbOpenError> {
    let url = settings.url.clone();
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(settings.max_connections.max(1))
        .min_connections(1)
        .sqlx_logging(false);
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
        options.map_sqlx_sqlite_opts(move |o| {
            let o = o
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .foreign_keys(true)
                .busy_timeout(busy);
            // A full database fails writes with SQLITE_FULL, like a full disk: the agent that wrote
            // fails with `storage_error`, everything stored stays readable.
            if max_pages > 0 {
                o.pragma("max_page_count", max_pages.to_string())
            } else {
                o
            }
        });
    }
    let db = Database::connect(options)
        .await
        .map_err(|source| DbOpenError::Connect { url, source })?;
    Migrator::up(&db, None)
        .await
        .map_err(DbOpenError::Migrate)?;
    Ok(db)
}

/// The file path of a `sqlite:` URL, without its query string; `None` for other databases and for
/// in-memory SQLite.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

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
