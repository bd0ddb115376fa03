//! Turns at SQLite's one write lock for the writers of this process: the persistence actor and the
//! search indexer.
//!
//! SQLite lets one connection write at a time. A writer that finds the lock taken does not wait for it
//! to be released: it sleeps in SQLite's busy handler (1, 2, 5, 10, 15… ms) and tries again, so a
//! 3 ms transaction of the indexer can cost a message 8 ms, and the persistence actor, which writes
//! without pause under load, is the one that finds the lock taken. Taking a turn here first, the
//! waiter is woken the moment the other's transaction ends, and turns are taken in order (the queue
//! is fair), so neither writer starves the other. PostgreSQL locks rows, not the database: no turns.

use std::sync::Arc;

use sea_orm::DbBackend;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The turns of one database; clones share them.
#[derive(Clone, Debug, Default)]
pub struct WriteTurns(Option<Arc<Mutex<()>>>);

/// A writer's turn, until dropped (after its transaction ended).
#[derive(Debug)]
pub struct Turn(#[allow(dead_code)] Option<OwnedMutexGuard<()>>);

impl WriteTurns {
    /// Turns for a database of `backend`: taken on SQLite, free on PostgreSQL.
    pub fn for_backend(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Sqlite => WriteTurns(Some(Arc::new(Mutex::new(())))),
            _ => WriteTurns(None),
        }
    }

    /// Waits for this writer's turn.
    pub async fn take(&self) -> Turn {
        match &self.0 {
            Some(turns) => Turn(Some(Arc::clone(turns).lock_owned().await)),
            None => Turn(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn on_sqlite_a_second_writer_waits_until_the_first_turn_ends() {
        let turns = WriteTurns::for_backend(DbBackend::Sqlite);
        let first = turns.take().await;
        let waiting = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "took a turn while another was held");
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the turn was not passed on")
            .expect("the waiter panicked");
    }

    #[tokio::test]
    async fn on_postgres_writers_never_wait() {
        let turns = WriteTurns::for_backend(DbBackend::Postgres);
        let _first = turns.take().await;
        tokio::time::timeout(Duration::from_secs(1), turns.take())
            .await
            .expect("waited on PostgreSQL");
    }
}
