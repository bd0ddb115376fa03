//! Webhooks: consumers registered over `/api/webhooks` get every event they asked for POSTed to their
//! URL, signed, in order per agent, at least once (docs/webhooks.md).
//!
//! `store` holds the consumers and, per consumer and agent, the durable position the receiver
//! acknowledged; a `consumer` task per consumer delivers from the database, woken by the room
//! registry ([`Wake`]); `frames` makes the bodies (the WebSocket frames); `signature` signs them;
//! `validate` checks what a client registers. The [`Webhooks`] manager runs one task per consumer
//! this instance delivers: on PostgreSQL each consumer has one owner instance at a time, taken over
//! by another once the owner's lease has ended.

mod consumer;
mod frames;
pub mod signature;
pub mod store;
pub mod validate;
mod wake;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::configuration::WebhookSettings;
pub use consumer::Backoff;
use consumer::Consumer;
use store::Holder;
pub use validate::Rules;
pub use wake::Wake;

/// How often the manager reads the consumers (someone else's change, a dead owner's consumers).
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// What the API asks of the manager.
enum Command {
    /// Read the consumers now (one was created or changed); replied once the tasks match them.
    Sync(oneshot::Sender<()>),
    /// Stop the consumer's task, then remove it; replied whether it existed.
    Delete(Uuid, oneshot::Sender<Result<bool, DbErr>>),
}

/// The API's handle on the webhooks of this instance.
#[derive(Clone)]
pub struct Webhooks {
    pub rules: Arc<Rules>,
    pub max_consumers: u64,
    /// The instance that creates a consumer delivers it (PostgreSQL).
    pub owner: Option<String>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Webhooks {
    /// Starts the manager on this runtime (its consumer tasks run there too).
    pub fn start(
        db: DatabaseConnection,
        settings: &WebhookSettings,
        rules: Rules,
        instance: Option<String>,
        wake: Wake,
    ) -> Webhooks {
        let (commands, inbox) = mpsc::unbounded_channel();
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let client = reqwest::Client::builder()
            // A redirect could lead anywhere, past `webhooks.allowed_hosts`: a 3xx is a failure.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let manager = Manager {
            db,
            holder: match &instance {
                Some(me) => Holder::Instance(me.clone()),
                None => Holder::Alone,
            },
            wake,
            client,
            timeout,
            backoff: Backoff {
                initial: Duration::from_millis(settings.initial_backoff_ms.max(1)),
                max: Duration::from_millis(
                    settings
                        .max_backoff_ms
                        .max(settings.initial_backoff_ms)
                        .max(1),
                ),
            },
            running: HashMap::new(),
        };
        tokio::spawn(manager.run(inbox));
        Webhooks {
            rules: Arc::new(rules),
            max_consumers: settings.max_consumers,
            owner: instance,
            commands,
        }
    }

    /// Brings the consumer tasks in line with the stored consumers at once.
    pub async fn sync(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Sync(reply)).is_ok() {
            let _ = done.await;
        }
    }

    /// Stops a consumer's deliveries (the one under way included) and removes it.
    pub async fn delete(&self, id: Uuid) -> Result<bool, DbErr> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::Delete(id, reply))
            .map_err(|_| DbErr::Custom("the server is stopping".into()))?;
        done.await
            .map_err(|_| DbErr::Custom("the server is stopping".into()))?
    }
}

/// The task that keeps one consumer task running for each consumer this instance delivers.
struct Manager {
    db: DatabaseConnection,
    holder: Holder,
    wake: Wake,
    client: reqwest::Client,
    timeout: Duration,
    backoff: Backoff,
    /// Each running consumer's task, with the revision it runs.
    running: HashMap<Uuid, (i64, JoinHandle<()>)>,
}

impl Manager {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(SYNC_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(Command::Sync(reply)) => {
                        self.sync().await;
                        let _ = reply.send(());
                    }
                    Some(Command::Delete(id, reply)) => {
                        if let Some((_, task)) = self.running.remove(&id) {
                            task.abort();
                        }
                        let _ = reply.send(store::delete(&self.db, id).await);
                    }
                    None => break,
                },
                _ = tick.tick() => self.sync().await,
            }
        }
        for (_, (_, task)) in self.running.drain() {
            task.abort();
        }
    }

    /// Starts a task for each consumer this instance delivers that has none (or whose task runs an
    /// older revision, or ended), and stops the others' tasks.
    async fn sync(&mut self) {
        if let Holder::Instance(me) = &self.holder {
            if let Err(e) = store::claim(&self.db, me).await {
                tracing::warn!(error = %e, "cannot take over the webhooks of instances gone");
            }
        }
        let rows = match store::list(&self.db).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhooks");
                return;
            }
        };
        let mut wanted: HashMap<Uuid, entity::webhook::Model> = HashMap::new();
        for row in rows {
            let mine = match &self.holder {
                Holder::Alone => true,
                Holder::Instance(me) => row.owner.as_deref() == Some(me.as_str()),
            };
            if let (true, false, Ok(id)) = (mine, row.paused, Uuid::parse_str(&row.id)) {
                wanted.insert(id, row);
            }
        }
        self.running.retain(|id, (revision, task)| {
            let keep = wanted
                .get(id)
                .is_some_and(|row| row.revision == *revision && !task.is_finished());
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, row) in wanted {
            if self.running.contains_key(&id) {
                continue;
            }
            let consumer = Consumer {
                id,
                agents: store::agent_ids(&row),
                events: store::events(&row),
                url: row.url,
                secret: row.secret,
                db: self.db.clone(),
                client: self.client.clone(),
                holder: self.holder.clone(),
                timeout: self.timeout,
                backoff: self.backoff,
            };
            let task = tokio::spawn(consumer.run(self.wake.subscribe()));
            self.running.insert(id, (row.revision, task));
        }
    }
}
