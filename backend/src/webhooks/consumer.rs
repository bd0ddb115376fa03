//! One consumer's delivery: a task of its own that POSTs every event it asked for, one body per
//! request, in order per agent, until the receiver answers 2xx, and stores what was acknowledged
//! (its position) only then — at least once, across restarts. It reads what to deliver from the
//! database (stored before shown: nothing uncommitted ever leaves), woken by the room registry's
//! broadcasts ([`super::Wake`]) and rescanning every agent now and then. A receiver that fails or
//! hangs is retried with exponential backoff and only ever holds up its own consumer.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use agentstream_wire::{WebhookEvent, SIGNATURE_HEADER};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::frames::{self, Body};
use super::signature::sign;
use super::store::{self, Holder, Position};
use crate::json_text::AgentMessageFrame;

/// Messages read (and acknowledged positions stored) at a time.
const PAGE: u64 = 100;

/// How often every agent is looked at, besides the wakes (a wake missed, a row changed by hand).
const RESCAN_EVERY: Duration = Duration::from_secs(5);

/// The wait before reading again after the database failed.
const DATABASE_RETRY: Duration = Duration::from_secs(1);

/// Acknowledged positions are stored at most this often while deliveries flow (and always before the
/// consumer waits, or retries): on SQLite every write takes the one write lock the persistence actor
/// needs, so a fast receiver must not cost it a commit per delivery. A crash resends at most this
/// long's worth, which at least once allows.
const COMMIT_EVERY: Duration = Duration::from_millis(250);

/// How the retries wait.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after the `attempts`-th failure in a row: `initial`, doubled each time, at most `max`.
    pub fn after(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(32);
        self.initial
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max)
    }
}

/// Why a consumer's task ends.
enum Stop {
    /// It is not this instance's to deliver any more (deleted, or taken over).
    NotMine,
    Database(DbErr),
}

impl From<DbErr> for Stop {
    fn from(e: DbErr) -> Self {
        Stop::Database(e)
    }
}

/// A consumer as its task runs it.
pub struct Consumer {
    pub id: Uuid,
    pub url: String,
    pub secret: String,
    pub agents: Option<Vec<Uuid>>,
    pub events: Option<Vec<WebhookEvent>>,
    pub db: DatabaseConnection,
    pub client: reqwest::Client,
    pub holder: Holder,
    pub timeout: Duration,
    pub backoff: Backoff,
}

/// What a running consumer has delivered and not stored yet.
struct Progress {
    /// Each agent's acknowledged position (`None`: drop it), newest last.
    unstored: HashMap<Uuid, Option<Position>>,
    stored_at: tokio::time::Instant,
    /// Failed attempts in a row.
    attempts: i64,
}

impl Consumer {
    /// Delivers until the consumer is no longer this instance's (the manager aborts the task when it
    /// is paused, changed or deleted).
    pub async fn run(self, mut wake: broadcast::Receiver<Arc<[Uuid]>>) {
        let mut positions = loop {
            match store::positions(&self.db, self.id).await {
                Ok(p) => break p,
                Err(e) => {
                    tracing::warn!(webhook = %self.id, error = %e, "cannot read the webhook's positions");
                    tokio::time::sleep(DATABASE_RETRY).await;
                }
            }
        };
        let mut progress = Progress {
            unstored: HashMap::new(),
            stored_at: tokio::time::Instant::now(),
            attempts: 0,
        };
        let mut rescan = true;
        let mut dirty: BTreeSet<Uuid> = BTreeSet::new();
        loop {
            let agents: Vec<Uuid> = if rescan {
                match store::pending_agents(&self.db, self.id, self.agents.as_deref()).await {
                    Ok(agents) => {
                        rescan = false;
                        dirty.clear();
                        agents
                    }
                    Err(e) => {
                        tracing::warn!(webhook = %self.id, error = %e, "cannot read what to deliver");
                        tokio::time::sleep(DATABASE_RETRY).await;
                        continue;
                    }
                }
            } else {
                std::mem::take(&mut dirty).into_iter().collect()
            };
            for agent in agents {
                match self.agent(agent, &mut positions, &mut progress).await {
                    Ok(()) => {}
                    Err(Stop::NotMine) => {
                        tracing::info!(webhook = %self.id, "the webhook is no longer this instance's to deliver");
                        return;
                    }
                    Err(Stop::Database(e)) => {
                        tracing::warn!(webhook = %self.id, error = %e, "webhook delivery: the database failed");
                        tokio::time::sleep(DATABASE_RETRY).await;
                        // What is stored is the truth: read it again.
                        if let Ok(p) = store::positions(&self.db, self.id).await {
                            positions = p;
                        }
                        rescan = true;
                        break;
                    }
                }
            }
            // What woke meanwhile, then wait for more.
            loop {
                match wake.try_recv() {
                    Ok(ids) => self.note(&ids, &mut dirty),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => rescan = true,
                    Err(_) => break,
                }
            }
            if rescan || !dirty.is_empty() {
                continue;
            }
            // Caught up: what was acknowledged is stored before waiting.
            match self.store(&mut progress).await {
                Ok(()) => {}
                Err(Stop::NotMine) => {
                    tracing::info!(webhook = %self.id, "the webhook is no longer this instance's to deliver");
                    return;
                }
                Err(Stop::Database(e)) => {
                    tracing::warn!(webhook = %self.id, error = %e, "cannot store the webhook's positions");
                    tokio::time::sleep(DATABASE_RETRY).await;
                    continue;
                }
            }
            tokio::select! {
                woke = wake.recv() => match woke {
                    Ok(ids) => self.note(&ids, &mut dirty),
                    Err(broadcast::error::RecvError::Lagged(_)) => rescan = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(RESCAN_EVERY) => rescan = true,
            }
        }
    }

    /// Adds the agents of a wake this consumer covers.
    fn note(&self, ids: &[Uuid], dirty: &mut BTreeSet<Uuid>) {
        for id in ids {
            if self.agents.as_ref().is_none_or(|a| a.contains(id)) {
                dirty.insert(*id);
            }
        }
    }

    fn wants(&self, kind: WebhookEvent) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&kind))
    }

    /// Delivers what the consumer owes the receiver of one agent: its creation when new to it, its
    /// messages after the position, then its status when due (or its deletion when its row is gone).
    async fn agent(
        &self,
        agent: Uuid,
        positions: &mut HashMap<Uuid, Position>,
        progress: &mut Progress,
    ) -> Result<(), Stop> {
        let snapshot = store::snapshot(&self.db, agent).await?;
        let known = positions.get(&agent).cloned();
        let Some(snapshot) = snapshot else {
            if let Some(p) = known {
                if self.wants(WebhookEvent::Deleted) {
                    let body = frames::purged(agent, p.last_sequence, &crate::clock::now());
                    self.deliver(&body, progress).await?;
                }
                self.acknowledged(agent, None, progress).await?;
                positions.remove(&agent);
            }
            return Ok(());
        };
        let mut position = match known {
            Some(p) => p,
            None => {
                let Some(row) = crate::store::find_agent(&self.db, agent).await? else {
                    return Ok(());
                };
                if self.wants(WebhookEvent::Created) {
                    let body = frames::created(&row, &crate::clock::now());
                    // Nothing is stored until the creation is acknowledged: a restart sends it again.
                    self.deliver(&body, progress).await?;
                }
                let p = Position::default();
                self.acknowledged(agent, Some(&p), progress).await?;
                positions.insert(agent, p.clone());
                p
            }
        };
        let mut last_message = None;
        while position.last_sequence < snapshot.last_sequence {
            let want = ((snapshot.last_sequence - position.last_sequence) as u64).min(PAGE);
            let page =
                crate::store::find_since(&self.db, agent, position.last_sequence, Some(want))
                    .await?;
            if page.is_empty() {
                break;
            }
            let timestamp = crate::clock::now();
            for message in &page {
                if self.wants(WebhookEvent::Message) {
                    let body = Body {
                        kind: WebhookEvent::Message,
                        text: AgentMessageFrame::of(message, &timestamp).to_json(),
                    };
                    self.deliver(&body, progress).await?;
                }
                position.last_sequence = message.sequence_number;
                // Stored with what follows, or first thing should a delivery fail.
                progress.unstored.insert(agent, Some(position.clone()));
            }
            last_message = page.into_iter().last();
            self.acknowledged(agent, Some(&position), progress).await?;
            positions.insert(agent, position.clone());
        }
        let turn_ended = position.status.as_deref() == Some(snapshot.status.as_str())
            && snapshot.last_sequence > position.status_sequence
            && store::result_between(
                &self.db,
                agent,
                position.status_sequence,
                snapshot.last_sequence,
            )
            .await?;
        if !frames::status_due(&position, &snapshot, turn_ended) {
            return Ok(());
        }
        if last_message.is_none() && snapshot.last_sequence > 0 {
            last_message =
                crate::store::find_since(&self.db, agent, snapshot.last_sequence - 1, Some(1))
                    .await?
                    .into_iter()
                    .next();
        }
        let bodies = frames::status(
            agent,
            &snapshot,
            last_message
                .as_ref()
                .filter(|m| m.sequence_number == snapshot.last_sequence),
            &crate::clock::now(),
        );
        for body in bodies.iter().filter(|b| self.wants(b.kind)) {
            self.deliver(body, progress).await?;
        }
        position.status = Some(snapshot.status.clone());
        position.status_sequence = snapshot.last_sequence;
        self.acknowledged(agent, Some(&position), progress).await?;
        positions.insert(agent, position);
        Ok(())
    }

    /// Notes the agent's acknowledged position (`None`: drop it), stored with the next commit, which
    /// is due after [`COMMIT_EVERY`].
    async fn acknowledged(
        &self,
        agent: Uuid,
        position: Option<&Position>,
        progress: &mut Progress,
    ) -> Result<(), Stop> {
        progress.unstored.insert(agent, position.cloned());
        if progress.stored_at.elapsed() >= COMMIT_EVERY {
            self.store(progress).await?;
        }
        Ok(())
    }

    /// Stores every acknowledged position not stored yet.
    async fn store(&self, progress: &mut Progress) -> Result<(), Stop> {
        progress.stored_at = tokio::time::Instant::now();
        if progress.unstored.is_empty() {
            return Ok(());
        }
        let positions: Vec<(Uuid, Option<Position>)> = progress.unstored.drain().collect();
        if store::commit(&self.db, &self.holder, self.id, &positions).await? {
            Ok(())
        } else {
            Err(Stop::NotMine)
        }
    }

    /// POSTs `body` until the receiver answers 2xx. After a failure, what was acknowledged so far is
    /// stored first, then the failure, then it waits out the backoff.
    async fn deliver(&self, body: &Body, progress: &mut Progress) -> Result<(), Stop> {
        let signature = sign(self.secret.as_bytes(), body.text.as_bytes());
        loop {
            let failure = match self.post(body, &signature).await {
                Ok(()) => {
                    progress.attempts = 0;
                    return Ok(());
                }
                Err(failure) => failure,
            };
            self.store(progress).await?;
            progress.attempts += 1;
            let wait = self.backoff.after(progress.attempts);
            let next = chrono::Utc::now()
                + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
            let next = next.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            tracing::warn!(webhook = %self.id, attempts = progress.attempts, error = %failure, "webhook delivery failed; retrying");
            store::record_failure(&self.db, self.id, &failure, progress.attempts, &next).await?;
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: `Err` says why it failed.
    async fn post(&self, body: &Body, signature: &str) -> Result<(), String> {
        let sent = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header("X-Agentstream-Webhook", self.id.to_string())
            .body(body.text.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("the receiver answered {}", response.status())),
            Err(e) if e.is_timeout() => Err(format!(
                "no answer within {} ms (webhooks.timeout_ms)",
                self.timeout.as_millis()
            )),
            Err(e) if e.is_connect() => Err("cannot connect to the receiver".to_owned()),
            Err(e) => Err(format!("the request failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_its_start_up_to_its_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        let waits: Vec<u128> = (1..=6).map(|n| b.after(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.after(i64::MAX), Duration::from_millis(1000));
    }
}
