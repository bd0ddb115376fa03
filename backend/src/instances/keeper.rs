//! The task that keeps this instance's lease ([`super::lease`]) and watches the others' (PostgreSQL):
//! it renews the lease every third of `instance.lease_ms`, and looks for instances whose lease ran
//! out several times a lease, so that their agents are `interrupted` (and, with
//! `agents.resume_interrupted`, continued here) within a lease and a look of the last heartbeat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use sea_orm::DatabaseConnection;

use super::lease::{self, Fence, Renewal};
use crate::agents::{DisownAll, Orchestrator};
use crate::persistence::{Flush, Persistence, TakeOver};

/// At most this long between two looks for instances whose lease ran out.
const MAX_LOOK_EVERY: Duration = Duration::from_secs(1);

/// What the keeper works with.
pub struct Keeper {
    pub db: DatabaseConnection,
    pub fence: Fence,
    /// This instance's URL, as the others reach it.
    pub url: String,
    pub lease: Duration,
    pub persistence: Addr<Persistence>,
    pub orchestrator: Addr<Orchestrator>,
    /// Continue here the agents taken over from a dead instance.
    pub resume: bool,
    /// Whether the lease was renewed at the last heartbeat (`/api/health`).
    pub held: Arc<AtomicBool>,
}

impl Keeper {
    /// Runs until dropped (its task is stopped at shutdown, before the lease is released).
    pub async fn run(self) {
        let renew_every = self.lease / 3;
        let look_every = (self.lease / 4).min(MAX_LOOK_EVERY);
        let mut renew = tokio::time::interval(renew_every);
        let mut look = tokio::time::interval(look_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = renew.tick() => self.renew().await,
                _ = look.tick() => self.take_over().await,
            }
        }
    }

    async fn renew(&self) {
        match lease::renew(&self.db, &self.fence, self.lease).await {
            Ok(Renewal::Renewed) => self.held.store(true, Ordering::Relaxed),
            Ok(Renewal::Lost) => {
                self.held.store(false, Ordering::Relaxed);
                self.recover().await;
            }
            Err(e) => {
                self.held.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot renew this instance's lease");
            }
        }
    }

    /// The lease was taken over: this instance's agents are another's now. They stop without writing,
    /// everything queued with the old claim is refused, and only then is a new claim made — a write
    /// of the old agents can never carry the new one.
    async fn recover(&self) {
        tracing::error!(
            instance = self.fence.instance(),
            "this instance's lease was taken over by another (it was frozen or cut off past \
             instance.lease_ms): its agents are interrupted there; claiming a new lease"
        );
        let _ = self.orchestrator.send(DisownAll).await;
        let _ = self.persistence.send(Flush).await;
        match lease::reclaim(&self.db, &self.fence, &self.url, self.lease).await {
            Ok(()) => {
                self.held.store(true, Ordering::Relaxed);
                tracing::info!(epoch = self.fence.epoch(), "new lease claimed");
            }
            Err(e) => tracing::error!(error = %e, "cannot claim a new lease"),
        }
    }

    async fn take_over(&self) {
        if !self.held.load(Ordering::Relaxed) {
            // Not while this instance's own lease is in doubt: its writes would be refused anyway.
            return;
        }
        let taken = match self.persistence.send(TakeOver).await {
            Ok(Ok(taken)) => taken,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot look for instances whose lease ran out");
                return;
            }
            Err(_) => return,
        };
        if taken.instances.is_empty() {
            return;
        }
        tracing::warn!(
            instances = ?taken.instances,
            interrupted = taken.interrupted.len(),
            "took over the agents of instances whose lease ran out"
        );
        if self.resume {
            crate::startup::resume_interrupted(&self.orchestrator, taken.interrupted);
        }
    }
}
