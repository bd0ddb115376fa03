//! One actor per WebSocket: decodes client frames, keeps the socket alive with pings, and delivers each
//! subscribed agent's messages in strictly increasing sequence order.
//!
//! Subscribing with `since` has no race: the session joins the room *before* it reads the database, and
//! buffers what the room sends meanwhile. Every message is stored before it is broadcast, so each one is
//! in the read, in the buffer, or both; the replay goes out first, then the buffer, and a per-agent
//! "last sequence sent" drops the copies.
//!
//! The replay is read a page at a time, each page only once the previous one went out: the actor runs
//! only while its socket takes data, so a long history streams at the client's pace in bounded memory.
//! Live events count against the session's [`BacklogGauge`] until written; a client too slow for them is cut
//! with close code [`SLOW_CONSUMER_CLOSE_CODE`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws;
use agentstream_wire::{
    AgentStatus, ClientEvent, ErrorCode, FrameError, ServerEvent, StoredMessage, Subscribed,
    Unsubscribed,
};
use sea_orm::{DatabaseConnection, DbErr};
use uuid::Uuid;

use super::registry::{
    BacklogGauge, Connect, Deliver, Disconnect, EventFrame, GoingAway, Join, Leave, Overflowed,
    RoomRegistry, Scope, SessionId, SLOW_CONSUMER_CLOSE_CODE,
};
use crate::clock;
use crate::configuration::WebSocketSettings;
use crate::json_text;
use crate::metrics::{Metrics, Transport};
use crate::store;

/// A subscription to one agent.
struct Subscription {
    /// Tells a finished replay whether it still belongs to this subscription (a re-subscribe or an
    /// unsubscribe replaces it).
    generation: u64,
    /// The highest sequence number sent (or, with no `since`, already stored when subscribing).
    last_sent: i64,
    /// `Some` while the replay runs: room events wait here.
    pending: Option<Vec<EventFrame>>,
}

/// The session actor.
pub struct WsSession {
    id: Option<SessionId>,
    registry: Addr<RoomRegistry>,
    db: DatabaseConnection,
    settings: WebSocketSettings,
    last_heard: Instant,
    subscriptions: HashMap<Uuid, Subscription>,
    next_generation: u64,
    /// What the registry handed over and this session has not written yet.
    backlog: Arc<BacklogGauge>,
    /// `agentstream_messages_delivered_total{transport="ws"}`: added to once per batch written.
    delivered: prometheus::IntCounter,
    /// For the database errors of its reads.
    metrics: Metrics,
}

/// Messages read from the database per replay page.
const REPLAY_PAGE: u64 = 1000;

impl WsSession {
    /// A session not yet connected to the registry, counting what it delivers in `metrics`.
    pub fn new(
        registry: Addr<RoomRegistry>,
        db: DatabaseConnection,
        settings: WebSocketSettings,
        metrics: Metrics,
    ) -> Self {
        WsSession {
            id: None,
            registry,
            db,
            settings,
            last_heard: Instant::now(),
            subscriptions: HashMap::new(),
            next_generation: 0,
            backlog: Arc::new(BacklogGauge::default()),
            delivered: metrics.delivered(Transport::WebSocket),
            metrics,
        }
    }

    fn send(ctx: &mut ws::WebsocketContext<Self>, event: &ServerEvent) {
        ctx.text(EventFrame::new(Scope::All, event).frame);
    }

    fn send_error(
        ctx: &mut ws::WebsocketContext<Self>,
        code: ErrorCode,
        message: String,
        agent_id: Option<Uuid>,
    ) {
        Self::send(
            ctx,
            &ServerEvent::Error(FrameError {
                code: code.as_str().to_owned(),
                message,
                agent_id,
                recovered: None,
            }),
        );
    }

    /// Sends a room event now, unless it is a message this subscription already sent; either way it
    /// leaves the backlog. Returns the number of messages (`agent:message`) sent: 0 or 1.
    fn deliver_live(
        sub: &mut Subscription,
        backlog: &BacklogGauge,
        event: EventFrame,
        ctx: &mut ws::WebsocketContext<Self>,
    ) -> u64 {
        backlog.written(event.frame.len());
        let message = event.seq.is_some();
        if let Some(seq) = event.seq {
            if seq <= sub.last_sent {
                return 0;
            }
            sub.last_sent = seq;
        }
        ctx.text(event.frame);
        u64::from(message)
    }

    /// Ends a subscription (replaced, unsubscribed or failed): live events it held leave the backlog.
    fn release(backlog: &BacklogGauge, sub: Option<Subscription>) {
        for event in sub.and_then(|s| s.pending).unwrap_or_default() {
            backlog.written(event.frame.len());
        }
    }

    /// Closes a session whose client fell too far behind; the client resubscribes with `since`.
    fn cut(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Other(SLOW_CONSUMER_CLOSE_CODE),
            description: Some(
                "slow_consumer: the client read too slowly; reconnect and subscribe with since"
                    .into(),
            ),
        }));
        ctx.stop();
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        match ClientEvent::decode(text) {
            Ok(ClientEvent::Subscribe(s)) => self.subscribe(s.agent_id, s.since, ctx),
            Ok(ClientEvent::Unsubscribe(u)) => {
                Self::release(&self.backlog, self.subscriptions.remove(&u.agent_id));
                if let Some(session) = self.id {
                    self.registry.do_send(Leave {
                        session,
                        agent: u.agent_id,
                    });
                }
                Self::send(
                    ctx,
                    &ServerEvent::Unsubscribed(Unsubscribed {
                        agent_id: u.agent_id,
                    }),
                );
            }
            Err(e) => Self::send_error(ctx, e.code, e.message, e.agent_id),
        }
    }

    fn subscribe(&mut self, agent: Uuid, since: Option<i64>, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(session) = self.id else {
            // Cannot happen: frames are read only after the registry gave the id.
            return Self::send_error(
                ctx,
                ErrorCode::NotReady,
                "the session is not ready yet".into(),
                Some(agent),
            );
        };
        let max = self.settings.max_subscriptions_per_connection;
        if max > 0 && !self.subscriptions.contains_key(&agent) && self.subscriptions.len() >= max {
            let message = format!("at most {max} subscriptions per connection; unsubscribe first");
            return Self::send_error(ctx, ErrorCode::TooManySubscriptions, message, Some(agent));
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let replaced = self.subscriptions.insert(
            agent,
            Subscription {
                generation,
                last_sent: since.unwrap_or(0),
                pending: Some(Vec::new()),
            },
        );
        Self::release(&self.backlog, replaced);
        let registry = self.registry.clone();
        let db = self.db.clone();
        let work = async move {
            registry
                .send(Join { session, agent })
                .await
                .map_err(|_| SubscribeFailure::Unavailable)?;
            let Some(found) = store::find_agent(&db, agent).await? else {
                return Err(SubscribeFailure::NotFound);
            };
            let last = store::last_sequence(&db, agent).await?;
            let replay = match since {
                Some(since) if since < last => {
                    store::find_since(&db, agent, since, Some(REPLAY_PAGE)).await?
                }
                _ => Vec::new(),
            };
            Ok((found.status, last, replay))
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            act.finish_subscribe(agent, generation, since, result, ctx)
        }));
    }

    fn finish_subscribe(
        &mut self,
        agent: Uuid,
        generation: u64,
        since: Option<i64>,
        result: Result<(AgentStatus, i64, Vec<StoredMessage>), SubscribeFailure>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let Some(sub) = self.subscriptions.get_mut(&agent) else {
            return;
        };
        if sub.generation != generation {
            return;
        }
        let (status, last, replay) = match result {
            Ok(ok) => ok,
            Err(e) => {
                Self::release(&self.backlog, self.subscriptions.remove(&agent));
                if let Some(session) = self.id {
                    self.registry.do_send(Leave { session, agent });
                }
                let (code, message) = match e {
                    SubscribeFailure::NotFound => (
                        ErrorCode::AgentNotFound,
                        format!("no agent with id {agent}"),
                    ),
                    SubscribeFailure::Unavailable => (
                        ErrorCode::Unavailable,
                        "the server is shutting down".to_owned(),
                    ),
                    SubscribeFailure::Storage(err) => {
                        tracing::error!(error = %err, agent_id = %agent, "subscribe: database error");
                        self.metrics.database_error("read_history");
                        (
                            ErrorCode::StorageError,
                            "the history could not be read".to_owned(),
                        )
                    }
                };
                // A position asked for (`since`) that cannot be recovered says so explicitly.
                let error = FrameError {
                    code: code.as_str().to_owned(),
                    message,
                    agent_id: Some(agent),
                    recovered: since.map(|_| false),
                };
                return Self::send(ctx, &ServerEvent::Error(error));
            }
        };
        // With no `since`, the client asked for what comes after now. A `since` past the end cannot be
        // recovered (the reply says so); live messages follow from the end.
        sub.last_sent = since.map_or(last, |s| s.min(last));
        Self::send(
            ctx,
            &ServerEvent::Subscribed(Subscribed {
                agent_id: agent,
                last_sequence: last,
                status: Some(status),
                recovered: since.map(|s| s <= last),
            }),
        );
        self.replay_page(agent, generation, replay, ctx);
    }

    /// Sends one page of the replay, then reads the next one, or, when the history is exhausted, sends
    /// the live events that waited meanwhile.
    fn replay_page(
        &mut self,
        agent: Uuid,
        generation: u64,
        page: Vec<StoredMessage>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let Some(sub) = self.subscriptions.get_mut(&agent) else {
            return;
        };
        if sub.generation != generation {
            return;
        }
        let full = page.len() as u64 == REPLAY_PAGE;
        let timestamp = clock::now();
        let mut sent = 0;
        for message in page {
            if message.sequence_number <= sub.last_sent {
                continue;
            }
            sub.last_sent = message.sequence_number;
            let frame = json_text::AgentMessageFrame::of(&message, &timestamp);
            ctx.text(frame.to_json());
            sent += 1;
        }
        if full {
            self.delivered.inc_by(sent);
            let (db, after) = (self.db.clone(), sub.last_sent);
            let next = async move { store::find_since(&db, agent, after, Some(REPLAY_PAGE)).await };
            ctx.spawn(
                next.into_actor(self)
                    .map(move |result, act, ctx| match result {
                        Ok(page) => act.replay_page(agent, generation, page, ctx),
                        Err(e) => {
                            tracing::error!(error = %e, agent_id = %agent, "replay: database error");
                            act.metrics.database_error("read_history");
                            Self::release(&act.backlog, act.subscriptions.remove(&agent));
                            if let Some(session) = act.id {
                                act.registry.do_send(Leave { session, agent });
                            }
                            Self::send_error(
                                ctx,
                                ErrorCode::StorageError,
                                "the history could not be read".to_owned(),
                                Some(agent),
                            );
                        }
                    }),
            );
            return;
        }
        for event in sub.pending.take().unwrap_or_default() {
            sent += Self::deliver_live(sub, &self.backlog, event, ctx);
        }
        self.delivered.inc_by(sent);
    }
}

/// Why a subscription could not be made.
enum SubscribeFailure {
    NotFound,
    Unavailable,
    Storage(DbErr),
}

impl From<DbErr> for SubscribeFailure {
    fn from(e: DbErr) -> Self {
        SubscribeFailure::Storage(e)
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let connect = Connect {
            transport: Transport::WebSocket,
            deliver: ctx.address().recipient(),
            overflowed: ctx.address().recipient(),
            going_away: ctx.address().recipient(),
            backlog: self.backlog.clone(),
        };
        ctx.wait(
            self.registry
                .send(connect)
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(id) => act.id = Some(id),
                    Err(_) => ctx.stop(),
                }),
        );
        ctx.run_interval(self.settings.heartbeat_interval(), |act, ctx| {
            if act.last_heard.elapsed() > act.settings.client_timeout() {
                tracing::debug!(session = ?act.id, "websocket client silent too long; dropping it");
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(id) = self.id {
            self.registry.do_send(Disconnect(id));
        }
    }
}

impl Handler<Deliver> for WsSession {
    type Result = ();
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        if self.backlog.is_cut() {
            return self.cut(ctx);
        }
        let mut sent = 0;
        for event in msg.0 {
            match event.scope {
                Scope::All => {
                    self.backlog.written(event.frame.len());
                    ctx.text(event.frame)
                }
                Scope::Room(agent) => match self.subscriptions.get_mut(&agent) {
                    // Waiting for the replay: still counted as queued.
                    Some(Subscription {
                        pending: Some(pending),
                        ..
                    }) => pending.push(event),
                    Some(sub) => sent += Self::deliver_live(sub, &self.backlog, event, ctx),
                    None => self.backlog.written(event.frame.len()),
                },
            }
        }
        if sent > 0 {
            self.delivered.inc_by(sent);
        }
    }
}

impl Handler<GoingAway> for WsSession {
    type Result = ();
    fn handle(&mut self, _: GoingAway, ctx: &mut Self::Context) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Away,
            description: Some(
                "the server is shutting down; reconnect and subscribe with since".into(),
            ),
        }));
        ctx.stop();
    }
}

impl Handler<Overflowed> for WsSession {
    type Result = ();
    fn handle(&mut self, _: Overflowed, ctx: &mut Self::Context) {
        self.cut(ctx);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Binary(_)) | Ok(ws::Message::Continuation(_)) => Self::send_error(
                ctx,
                ErrorCode::UnsupportedFrame,
                "only text frames holding JSON are understood".into(),
                None,
            ),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Nop) => {}
            Err(e) => {
                tracing::debug!(error = %e, "websocket protocol error; closing");
                // A frame over websocket.max_frame_bytes is "message too big" (1009); anything else
                // (a text frame that is not UTF-8, a bad opcode, …) is a protocol error (1002).
                let code = if matches!(e, ws::ProtocolError::Overflow) {
                    ws::CloseCode::Size
                } else {
                    ws::CloseCode::Protocol
                };
                ctx.close(Some(ws::CloseReason {
                    code,
                    description: Some(e.to_string()),
                }));
                ctx.stop();
            }
        }
    }
}
