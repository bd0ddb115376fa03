//! Which database the servers under test use, and each one's folder.
//!
//! One switch runs every black-box test on either database: `AGENTSTREAM_TEST_DATABASE=postgres` (the
//! default is `sqlite`). On PostgreSQL (`AGENTSTREAM_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432`, the machine's server with trust authentication) each
//! [`TestDir`] gets a database of its own, created when a server first uses it and dropped with the
//! folder; on SQLite the database is a file in the folder.

use std::path::Path;

use tempfile::TempDir;

/// The databases the tests can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database of this test run (`AGENTSTREAM_TEST_DATABASE`).
pub fn backend() -> Backend {
    match std::env::var("AGENTSTREAM_TEST_DATABASE").as_deref() {
        Ok("postgres") | Ok("postgresql") => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// Whether this run uses PostgreSQL; when not, says loudly that the calling test, which needs several
/// instances on one database, does not apply, and the test returns.
pub fn on_postgres(what: &str) -> bool {
    if backend() == Backend::Postgres {
        return true;
    }
    eprintln!("NOT APPLICABLE on SQLite (PostgreSQL only): {what}");
    false
}

/// Whether this run uses SQLite; when not, says loudly that the calling test, which checks something
/// only SQLite has (its file), does not apply, and the test returns.
pub fn on_sqlite(what: &str) -> bool {
    if backend() == Backend::Sqlite {
        return true;
    }
    eprintln!("NOT APPLICABLE on PostgreSQL (SQLite only): {what}");
    false
}

/// The PostgreSQL server the tests create their databases on.
fn postgres_url() -> String {
    std::env::var("AGENTSTREAM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// A server's folder (its log; its SQLite file) and, on PostgreSQL, its database: kept by the caller to
/// restart a server on the same data, removed — folder and database — when dropped.
pub struct TestDir {
    tmp: TempDir,
    /// The PostgreSQL database's name (on PostgreSQL only).
    postgres: Option<String>,
    /// Whether dropping this folder drops the database (not for a folder sharing another's).
    owns_database: bool,
}

impl TestDir {
    /// A new folder (in the system's temporary folder), and a database name when on PostgreSQL.
    pub fn new() -> TestDir {
        Self::of(TempDir::new().expect("a temporary folder"))
    }

    /// A new folder inside `parent` (a file system with features the system's temporary one lacks).
    pub fn new_in(parent: impl AsRef<Path>) -> TestDir {
        Self::of(TempDir::new_in(parent).expect("a temporary folder"))
    }

    fn of(tmp: TempDir) -> TestDir {
        let postgres = (backend() == Backend::Postgres)
            .then(|| format!("agentstream_test_{}", uuid::Uuid::new_v4().simple()));
        TestDir {
            tmp,
            postgres,
            owns_database: true,
        }
    }

    /// Another folder on the same database (another instance's), which the first one's drop removes.
    pub fn same_database(&self) -> TestDir {
        TestDir {
            tmp: TempDir::new().expect("a temporary folder"),
            postgres: self.postgres.clone(),
            owns_database: false,
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The URL a server gives `--database-url`.
    pub fn database_url(&self) -> String {
        match &self.postgres {
            Some(name) => format!("{}/{name}", postgres_url()),
            None => format!("sqlite://{}/agent.db", self.tmp.path().display()),
        }
    }

    /// Creates the PostgreSQL database now (a server creates it when it first starts on it; nothing to
    /// do on SQLite).
    pub async fn create_database(&self) -> Result<(), String> {
        match &self.postgres {
            Some(name) => create_database(name).await,
            None => Ok(()),
        }
    }

    /// Takes the PostgreSQL database away from its servers (`false`: every connection to it is ended
    /// and new ones are refused, as when the database server is down) or gives it back (`true`).
    pub async fn set_reachable(&self, reachable: bool) {
        let name = self.postgres.as_deref().expect("a PostgreSQL database");
        admin(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS {reachable}"
        ))
        .await
        .expect("ALTER DATABASE");
        if !reachable {
            admin(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .await
            .expect("end the connections");
        }
    }

    /// The PostgreSQL database's name, on PostgreSQL.
    pub(crate) fn postgres_name(&self) -> Option<&str> {
        self.postgres.as_deref()
    }
}

/// Creates the PostgreSQL database `name` unless it exists.
pub(crate) async fn create_database(name: &str) -> Result<(), String> {
    match admin(&format!("CREATE DATABASE {name}")).await {
        Err(e) if e.contains("already exists") => Ok(()),
        other => other,
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let Some(name) = self.postgres.take().filter(|_| self.owns_database) else {
            return;
        };
        // Dropped from inside a test's runtime: the statement runs on a thread (and runtime) of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(admin(&format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
        })
        .join();
        if let Ok(Err(e)) | Err(e) = dropped.map_err(|_| "panicked".to_owned()) {
            eprintln!("could not drop a test database: {e}");
        }
    }
}

/// Runs one statement on the server's `postgres` database.
async fn admin(statement: &str) -> Result<(), String> {
    use sqlx::Connection;
    let url = format!("{}/postgres", postgres_url());
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .map_err(|e| format!("PostgreSQL at {url}: {e} (AGENTSTREAM_TEST_POSTGRES_URL)"))?;
    sqlx::query(statement)
        .execute(&mut conn)
        .await
        .map_err(|e| format!("{statement}: {e}"))?;
    let _ = conn.close().await;
    Ok(())
}
