//! Each instance's lease on its agents, kept in its row of `instances` (PostgreSQL).
//!
//! An instance claims its row at start and renews it every third of `instance.lease_ms`; the row's
//! `epoch` is the fencing token: every write of the instance's persistence actor checks, in the same
//! statement or transaction, that the row still has the epoch it claimed ([`Fence`]). An instance whose
//! lease ran out (killed, frozen, cut off) is taken over by another: the epoch moves on, its running
//! agents become `interrupted` and their ownership passes to the taker, so a write the lost instance
//! sends late is refused by the database itself. Times are the database's clock, never an instance's.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

/// Milliseconds since the Unix epoch by the database's clock.
pub(crate) const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// `lease_until` of an instance that was taken over: nothing to take any more.
const TAKEN_OVER: i64 = -1;

/// Why this instance could not claim its lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "another running instance has the id {0:?} (its lease was renewed while this one waited): \
         give each instance its own instance.id"
    )]
    InUse(String),
    #[error("cannot claim the instance's lease: {0}")]
    Database(#[from] DbErr),
}

/// This instance's id and the epoch of its claim: what each of its writes checks.
#[derive(Clone, Debug)]
pub struct Fence {
    instance: Arc<str>,
    epoch: Arc<AtomicI64>,
}

impl Fence {
    /// A fence for `instance` at `epoch`.
    pub fn new(instance: &str, epoch: i64) -> Self {
        Fence {
            instance: instance.into(),
            epoch: Arc::new(AtomicI64::new(epoch)),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The epoch of the current claim.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn set_epoch(&self, epoch: i64) {
        self.epoch.store(epoch, Ordering::Release);
    }

    /// The statement that locks this instance's row for the rest of the transaction if it still has
    /// this claim's epoch (no row: the lease was taken over). Held until the commit, the lock makes a
    /// takeover wait for the write, or the write see the takeover.
    pub(crate) fn guard(&self) -> Statement {
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM instances WHERE id = $1 AND epoch = $2 FOR SHARE",
            [self.instance.to_string().into(), self.epoch().into()],
        )
    }
}

/// Claims the row of `instance` (reachable at `url`) for `lease`; returns the claim's epoch. The row
/// of a previous process with this id is taken once its lease has ended (it was stopped, or it was
/// killed and its lease runs out); one renewed meanwhile belongs to a running instance: refused.
pub async fn claim(
    db: &DatabaseConnection,
    instance: &str,
    url: &str,
    lease: Duration,
) -> Result<i64, LeaseError> {
    let deadline = Instant::now() + lease + Duration::from_secs(1);
    let mut told = false;
    loop {
        if let Some(epoch) = try_claim(db, instance, url, lease).await? {
            return Ok(epoch);
        }
        if Instant::now() >= deadline {
            return Err(LeaseError::InUse(instance.to_owned()));
        }
        if !told {
            tracing::warn!(
                instance,
                "the lease of a previous process with this id still runs: waiting for it to end"
            );
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One attempt of [`claim`].
async fn try_claim(
    db: &DatabaseConnection,
    instance: &str,
    url: &str,
    lease: Duration,
) -> Result<Option<i64>, DbErr> {
    let sql = format!(
        "INSERT INTO instances (id, epoch, url, lease_until, started_at) \
         VALUES ($1, 1, $2, {NOW_MS} + $3, $4) \
         ON CONFLICT (id) DO UPDATE SET epoch = instances.epoch + 1, url = EXCLUDED.url, \
           lease_until = EXCLUDED.lease_until, started_at = EXCLUDED.started_at \
         WHERE instances.lease_until < {NOW_MS} \
         RETURNING epoch"
    );
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [
                instance.into(),
                url.into(),
                (lease.as_millis() as i64).into(),
                crate::clock::now().into(),
            ],
        ))
        .await?;
    row.map(|r| r.try_get_by_index::<i64>(0)).transpose()
}

/// What a renewal found.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    /// Another instance took this one over: its agents are not this instance's any more.
    Lost,
}

/// Renews the lease of `fence`'s claim for `lease` more.
pub async fn renew(
    db: &DatabaseConnection,
    fence: &Fence,
    lease: Duration,
) -> Result<Renewal, DbErr> {
    let sql = format!(
        "UPDATE instances SET lease_until = {NOW_MS} + $3 WHERE id = $1 AND epoch = $2 AND lease_until >= 0"
    );
    let done = db
        .execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [
                fence.instance().into(),
                fence.epoch().into(),
                (lease.as_millis() as i64).into(),
            ],
        ))
        .await?;
    Ok(if done.rows_affected() == 1 {
        Renewal::Renewed
    } else {
        Renewal::Lost
    })
}

/// Ends the lease at once (an orderly stop, its agents stored as `interrupted`): the other instances
/// take its agents at their next look, and a restart with the same id claims the row without waiting.
pub async fn release(db: &DatabaseConnection, fence: &Fence) -> Result<(), DbErr> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE instances SET lease_until = 0 WHERE id = $1 AND epoch = $2",
        [fence.instance().into(), fence.epoch().into()],
    ))
    .await
    .map(|_| ())
}

/// Marks, in `txn`, every instance other than `me` whose lease has ended as taken over (its epoch moves
/// on, so its late writes are refused); returns their ids. An instance whose row is locked (a write of
/// it under way) is left for the next look.
pub(crate) async fn take_expired(
    txn: &impl ConnectionTrait,
    me: &str,
) -> Result<Vec<String>, DbErr> {
    let sql = format!(
        "UPDATE instances SET epoch = epoch + 1, lease_until = {TAKEN_OVER} WHERE id IN ( \
           SELECT id FROM instances WHERE id <> $1 AND lease_until >= 0 AND lease_until < {NOW_MS} \
           FOR UPDATE SKIP LOCKED) \
         RETURNING id"
    );
    let rows = txn
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [me.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect()
}

/// The URL of the instance that owns `agent`, and whether its lease still runs; `None` when the agent
/// has no owner recorded or does not exist.
pub async fn owner_of(db: &DatabaseConnection, agent: uuid::Uuid) -> Result<Option<Owner>, DbErr> {
    let sql = format!(
        "SELECT i.id, i.url, i.lease_until >= {NOW_MS} FROM agents a JOIN instances i ON i.id = a.owner \
         WHERE a.id = $1"
    );
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [agent.to_string().into()],
        ))
        .await?;
    row.map(|r| {
        Ok(Owner {
            instance: r.try_get_by_index(0)?,
            url: r.try_get_by_index(1)?,
            alive: r.try_get_by_index(2)?,
        })
    })
    .transpose()
}

/// The instance that owns an agent.
#[derive(Debug, Clone)]
pub struct Owner {
    pub instance: String,
    pub url: String,
    /// Its lease still runs.
    pub alive: bool,
}

/// Sets `fence` to a new claim's epoch once the previous claim was lost (see [`claim`]).
pub async fn reclaim(
    db: &DatabaseConnection,
    fence: &Fence,
    url: &str,
    lease: Duration,
) -> Result<(), LeaseError> {
    let epoch = claim(db, fence.instance(), url, lease).await?;
    fence.set_epoch(epoch);
    Ok(())
}
