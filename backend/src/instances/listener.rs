//! Listens to what the other instances announce and shows it here: their agents' messages, read back
//! from the database, and their lifecycle events, handed to this instance's room registry in the order
//! announced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use agentstream_wire::{AgentCreated, ServerEvent};
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::lifecycle::Statuses;
use super::notify::{Announcement, Inline};
use super::CHANNEL;
use crate::clock;
use crate::gateway::registry::{Broadcast, EventFrame, RoomRegistry, Scope};
use crate::json_text::AgentMessageFrame;
use crate::store;

/// Rows read per query when catching up.
const PAGE: u64 = 1000;

/// Notifications taken at once from what the listening connection has buffered.
const MAX_BATCH: usize = 256;

/// How long to wait before connecting again after the listening connection failed.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The listener of one instance.
pub struct Listener {
    instance: String,
    url: String,
    db: DatabaseConnection,
    registry: Addr<RoomRegistry>,
    /// The last message of each agent passed on to the registry.
    delivered: HashMap<Uuid, i64>,
    /// The last status of each agent passed on.
    statuses: Statuses,
    /// The listener has been connected before (a catch-up now follows a reconnection).
    connected_before: bool,
    /// Whether it listens now (`/api/health`).
    up: Arc<AtomicBool>,
}

impl Listener {
    /// A listener for the instance `instance` of the database at `url` (read through `db`).
    pub fn new(
        instance: String,
        url: String,
        db: DatabaseConnection,
        registry: Addr<RoomRegistry>,
        up: Arc<AtomicBool>,
    ) -> Self {
        Listener {
            instance,
            url,
            db,
            registry,
            delivered: HashMap::new(),
            statuses: Statuses::default(),
            connected_before: false,
            up,
        }
    }

    /// Listens until the process ends, connecting again whenever the connection fails.
    pub async fn run(mut self) {
        loop {
            let mut listener = match PgListener::connect(&self.url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen to the other instances; retrying");
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "cannot listen to the other instances; retrying");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
            tracing::info!(instance = %self.instance, "listening to the other instances");
            // What was announced while nobody listened.
            self.catch_up().await;
            self.up.store(true, Ordering::Relaxed);
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        // What arrived meanwhile is shown with it: one read of the database for
                        // all of them, so a listener that fell behind catches up in a few round
                        // trips instead of one per notification.
                        let mut batch = self.ours(notification.payload());
                        let mut taken = 1;
                        while taken < MAX_BATCH {
                            let Some(next) = listener.next_buffered() else {
                                break;
                            };
                            taken += 1;
                            let Some(next) = self.ours(next.payload()) else {
                                continue;
                            };
                            match batch.as_mut() {
                                None => batch = Some(next),
                                Some(merged) => {
                                    if let Err(next) = merged.absorb(next) {
                                        if let Some(done) = batch.replace(next) {
                                            self.show(done).await;
                                        }
                                    }
                                }
                            }
                        }
                        if let Some(last) = batch {
                            self.show(last).await;
                        }
                    }
                    // The connection was lost: a new listener, then what was missed meanwhile (a
                    // new one rather than the old one's own reconnection, which can wait on its pool
                    // for the dead connection's slot).
                    Ok(None) => {
                        tracing::warn!("the listening connection was lost; connecting again");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "listening failed; connecting again");
                        break;
                    }
                }
            }
            self.up.store(false, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    }

    /// The announcement a notification carries, when it is another instance's.
    fn ours(&self, payload: &str) -> Option<Announcement> {
        match serde_json::from_str::<Announcement>(payload) {
            Ok(a) if a.instance != self.instance => Some(a),
            Ok(_) => None,
            Err(_) => {
                tracing::debug!("ignored a notification that is not ours");
                None
            }
        }
    }

    /// Shows one announcement: each agent's new messages, then the events.
    async fn show(&mut self, announcement: Announcement) {
        let mut frames = Vec::new();
        // The frames it carries, by agent: only `agent:message` frames reach clients, whoever wrote
        // the notification.
        let mut inline: HashMap<Uuid, Vec<(i64, String)>> = HashMap::new();
        for Inline(frame) in announcement.frames {
            match serde_json::from_str::<ServerEvent>(frame.get()) {
                Ok(ServerEvent::AgentMessage(m)) if m.agent_id == m.message.agent_id => {
                    inline.entry(m.agent_id).or_default().push((
                        m.message.sequence_number,
                        Box::<str>::from(frame).into_string(),
                    ))
                }
                _ => tracing::debug!("ignored an announced message that is not one"),
            }
        }
        // What each agent has that was not passed on yet: from the last message passed on, when
        // known (a lost notification leaves no hole), up to the last one announced. The frames
        // carried are shown first, as far as they follow on; the rest is read back.
        let mut ranges: Vec<(Uuid, i64, i64)> = Vec::new();
        for (agent, first, last) in announcement.messages {
            let after = self.delivered.get(&agent).copied().unwrap_or(first - 1);
            if let Some(carried) = inline.get_mut(&agent) {
                self.pass_on_carried(agent, carried, after, last, &mut frames);
            }
            let after = self.delivered.get(&agent).copied().unwrap_or(after);
            if after < last {
                ranges.push((agent, after, last));
            }
        }
        let span: i64 = ranges.iter().map(|(_, after, last)| last - after).sum();
        if span as u64 <= PAGE {
            // The usual case: one query for every agent of the announcement.
            match store::find_ranges(&self.db, &ranges).await {
                Ok(rows) => self.pass_on(&rows, &mut frames),
                Err(e) => {
                    // Read again at the next announcement or reconnection.
                    tracing::warn!(error = %e, "cannot read another instance's messages");
                }
            }
        } else {
            for (agent, after, last) in ranges {
                self.read(agent, after, last, &mut frames).await;
            }
        }
        for (room, frame) in announcement.events {
            // Only events of the protocol reach clients, whoever wrote the notification.
            if serde_json::from_str::<ServerEvent>(&frame).is_err() {
                tracing::debug!("ignored an announced event that is not one");
                continue;
            }
            self.statuses.note(&frame);
            let scope = room.map_or(Scope::All, Scope::Room);
            frames.push(EventFrame::from_frame(scope, None, frame));
        }
        for id in announcement.created {
            if let Ok(Some(agent)) = store::find_agent(&self.db, id).await {
                let created = ServerEvent::AgentCreated(AgentCreated {
                    agent,
                    timestamp: clock::now(),
                });
                frames.push(EventFrame::new(Scope::All, &created));
            }
        }
        if !frames.is_empty() {
            self.registry.do_send(Broadcast(frames));
        }
    }

    /// Adds the carried frames of `agent` numbered `after + 1 ..= last` that follow on from what was
    /// passed on of it (from `after` when nothing was), and notes them passed on.
    fn pass_on_carried(
        &mut self,
        agent: Uuid,
        carried: &mut Vec<(i64, String)>,
        after: i64,
        last: i64,
        frames: &mut Vec<EventFrame>,
    ) {
        carried.sort_by_key(|(seq, _)| *seq);
        for (seq, frame) in carried.drain(..) {
            if seq > last {
                break;
            }
            let delivered = self.delivered.entry(agent).or_insert(after);
            if seq <= *delivered {
                continue;
            }
            if seq != *delivered + 1 {
                // A hole (a lost notification): read back from the last one passed on.
                break;
            }
            *delivered = seq;
            frames.push(EventFrame::from_frame(Scope::Room(agent), Some(seq), frame));
        }
    }

    /// Adds the frames of `rows` (each agent's in order) and notes them passed on; a row that does not
    /// follow what was passed on of its agent is left for a later read.
    fn pass_on(&mut self, rows: &[agentstream_wire::StoredMessage], frames: &mut Vec<EventFrame>) {
        let timestamp = clock::now();
        for m in rows {
            let delivered = self
                .delivered
                .entry(m.agent_id)
                .or_insert(m.sequence_number - 1);
            if m.sequence_number != *delivered + 1 {
                continue;
            }
            *delivered = m.sequence_number;
            frames.push(EventFrame::from_frame(
                Scope::Room(m.agent_id),
                Some(m.sequence_number),
                AgentMessageFrame::of(m, &timestamp).to_json(),
            ));
        }
    }

    /// Adds the frames of `agent`'s messages numbered `after + 1 ..= until`, a page at a time.
    async fn read(&mut self, agent: Uuid, after: i64, until: i64, frames: &mut Vec<EventFrame>) {
        let mut after = after;
        while after < until {
            let page = ((until - after) as u64).min(PAGE);
            let rows = match store::find_since(&self.db, agent, after, Some(page)).await {
                Ok(rows) => rows,
                Err(e) => {
                    // Read again at the next announcement or reconnection.
                    tracing::warn!(agent_id = %agent, error = %e, "cannot read another instance's messages");
                    return;
                }
            };
            let Some(last) = rows.last().map(|m| m.sequence_number) else {
                return;
            };
            self.delivered.entry(agent).or_insert(after);
            self.pass_on(&rows, frames);
            after = last;
            if (rows.len() as u64) < page {
                return;
            }
        }
    }

    /// Passes on every message stored after the last one passed on, for each agent known, and the
    /// lifecycle events missed meanwhile.
    async fn catch_up(&mut self) {
        let mut agents: Vec<Uuid> = self.delivered.keys().copied().collect();
        agents.extend(self.statuses.agents());
        // After a reconnection, also every agent that may be writing now, known here or not (its
        // announcements may all have been missed): an unknown one is read from its start — the
        // sessions drop what they have. Before the first connection nothing was missed (a session
        // replays from the database itself).
        if self.connected_before {
            match store::unfinished_agents(&self.db, None).await {
                Ok(ids) => agents.extend(ids.iter().filter_map(|id| id.parse::<Uuid>().ok())),
                Err(e) => tracing::warn!(error = %e, "cannot list the agents that run"),
            }
        }
        self.connected_before = true;
        agents.sort();
        agents.dedup();
        for agent in agents {
            let mut frames = Vec::new();
            let after = self.delivered.get(&agent).copied().unwrap_or(0);
            self.read(agent, after, i64::MAX, &mut frames).await;
            let row = match store::find_agent(&self.db, agent).await {
                Ok(row) => row,
                Err(e) => {
                    tracing::warn!(agent_id = %agent, error = %e, "cannot read another instance's agent");
                    continue;
                }
            };
            let last_sequence = self.delivered.get(&agent).copied().unwrap_or(0);
            let last = match last_sequence {
                0 => None,
                n => store::find_since(&self.db, agent, n - 1, Some(1))
                    .await
                    .ok()
                    .and_then(|rows| rows.into_iter().next()),
            };
            frames.extend(self.statuses.catch_up(
                agent,
                row.as_ref(),
                last.as_ref(),
                last_sequence,
            ));
            if row.is_none() {
                self.delivered.remove(&agent);
            }
            if !frames.is_empty() {
                self.registry.do_send(Broadcast(frames));
            }
        }
    }
}
