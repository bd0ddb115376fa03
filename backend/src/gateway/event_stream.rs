//! Server-Sent Events, for clients that cannot speak WebSocket (curl, a browser's `EventSource`, a proxy
//! that strips upgrades): `GET /api/agents/{id}/events` follows one agent as a `/ws` subscription does,
//! and `GET /api/events` the lifecycle of every agent. Each event is `event:` the WebSocket event's name
//! and `data:` its `data` object; an `agent:message` also has `id:` its sequence number, so that a
//! client that reconnects with `Last-Event-ID: N` (what `EventSource` sends by itself) or `?since=N`
//! gets everything after N, exactly once, in order.
//!
//! The rules are the WebSocket session's: the stream joins the agent's room *before* it reads the
//! history, the room's events wait meanwhile, and the last sequence number sent drops the copies; the
//! history is read a page at a time as the client takes it; live events count against a
//! [`BacklogGauge`], and a client too slow for them is cut (its stream ends; it reconnects with its last
//! id). A stream holds one of `websocket.max_connections`, and a comment every heartbeat keeps proxies
//! from closing an idle one.

use std::sync::Arc;

use actix::prelude::*;
use actix_web::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use agentstream_wire::{ErrorCode, ServerEvent, Subscribed};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::registry::{
    BacklogGauge, Connect, Deliver, Disconnect, EventFrame, GoingAway, Join, Overflowed,
    RoomRegistry, Scope, SessionId,
};
use super::GatewayState;
use crate::error::ApiError;
use crate::json_text::AgentMessageFrame;
use crate::limits::Permit;
use crate::metrics::Transport;
use crate::{clock, store};

/// Messages read from the database per page of the history.
const HISTORY_PAGE: u64 = 1000;

/// What the registry tells a stream.
enum Told {
    Frames(Vec<EventFrame>),
    /// Its backlog passed the limit: it ends.
    Cut,
    /// The server is shutting down.
    GoingAway,
}

/// The registry's end of a stream: an actor (the registry talks to actors) that passes on what it is
/// told; it stops once the stream is gone.
struct Forwarder(mpsc::UnboundedSender<Told>);

impl Forwarder {
    fn tell(&self, told: Told, ctx: &mut Context<Self>) {
        if self.0.send(told).is_err() {
            ctx.stop();
        }
    }
}

impl Actor for Forwarder {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Forwarder {
    type Result = ();
    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        self.tell(Told::Frames(msg.0), ctx);
    }
}

impl Handler<Overflowed> for Forwarder {
    type Result = ();
    fn handle(&mut self, _: Overflowed, ctx: &mut Context<Self>) {
        self.tell(Told::Cut, ctx);
    }
}

impl Handler<GoingAway> for Forwarder {
    type Result = ();
    fn handle(&mut self, _: GoingAway, ctx: &mut Context<Self>) {
        self.tell(Told::GoingAway, ctx);
    }
}

/// A stream known to the registry; dropped with the response body (the client went away, or the
/// stream ended), it leaves the registry and frees its place.
struct Registered {
    registry: Addr<RoomRegistry>,
    id: SessionId,
    backlog: Arc<BacklogGauge>,
    told: mpsc::UnboundedReceiver<Told>,
    _permit: Permit,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.do_send(Disconnect(self.id));
    }
}

/// Connects a new stream to the registry, if there is room for one more connection.
async fn register(state: &GatewayState) -> Result<Registered, ApiError> {
    let Some(permit) = state.connections.try_acquire() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyConnections,
            "this server has as many streams open as it allows; try again later",
        )
        .retry_after(std::time::Duration::from_secs(5)));
    };
    let (tx, told) = mpsc::unbounded_channel();
    let forwarder = Forwarder(tx).start();
    let backlog = Arc::new(BacklogGauge::default());
    let connect = Connect {
        transport: Transport::Sse,
        deliver: forwarder.clone().recipient(),
        overflowed: forwarder.clone().recipient(),
        going_away: forwarder.recipient(),
        backlog: backlog.clone(),
    };
    let id = state
        .registry
        .send(connect)
        .await
        .map_err(|_| ApiError::unavailable())?;
    Ok(Registered {
        registry: state.registry.clone(),
        id,
        backlog,
        told,
        _permit: permit,
    })
}

/// Where a client resumes: `Last-Event-ID` (an `EventSource` reconnecting) or `?since=`, else the
/// beginning. Not a whole number >= 0: 400 `invalid_since`.
fn resume_point(req: &HttpRequest, since: Option<&str>) -> Result<i64, ApiError> {
    // An empty one is no id, as browsers treat it.
    let header = req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .filter(|v| !v.trim().is_empty());
    let Some(raw) = header.or(since) else {
        return Ok(0);
    };
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(ApiError::bad_request(
            ErrorCode::InvalidSince,
            format!(
                "Last-Event-ID and since must be a sequence number (an integer >= 0), got {raw:?}"
            ),
        )),
    }
}

/// The query of `GET /api/agents/{id}/events`.
#[derive(serde::Deserialize)]
pub struct EventsQuery {
    since: Option<String>,
}

/// `GET /api/agents/{id}/events`.
#[utoipa::path(
    get,
    path = "/api/agents/{id}/events",
    operation_id = "agentEvents",
    summary = "One agent's events (Server-Sent Events)",
    tag = "streams",
    description = "Server-Sent Events of one agent, as a `/ws` subscription: `event: subscribed` first, \
                   then its stored messages (`event: agent:message`, `id:` the sequence number) after the \
                   resume point, then its live events (`agent:message`, `agent:status`, `agent:complete`, \
                   `agent:error`, `agent:deleted`). Each `data:` is the `data` object of the `ServerEvent` \
                   of that name. A comment every heartbeat; a client too slow is cut and reconnects with \
                   `Last-Event-ID`. The stream does not end by itself.",
    params(crate::openapi::params::AgentId, crate::openapi::params::StreamQuery, crate::openapi::params::LastEventId),
    security(("bearerAuth" = []), ("tokenQuery" = [])),
    responses(
        (status = 200, description = "The event stream.", content_type = "text/event-stream", body = String),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
        (status = 500, response = crate::openapi::responses::StorageFailure),
        (status = 503, response = crate::openapi::responses::Unavailable),
    ),
)]
pub async fn agent_events(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, ApiError> {
    let agent = crate::api::agents::parse_id(&path)?;
    let since = resume_point(&req, query.since.as_deref())?;
    let mut registered = register(&state).await?;
    let join = Join {
        session: registered.id,
        agent,
    };
    state
        .registry
        .send(join)
        .await
        .map_err(|_| ApiError::unavailable())?;
    // Joined first: whatever is stored from now on is in the room's events, the rest in the history.
    let db = state.db.clone();
    let found = store::find_agent(&db, agent)
        .await?
        .ok_or_else(|| ApiError::agent_not_found(agent))?;
    let last = store::last_sequence(&db, agent).await?;
    let heartbeat = state.settings.heartbeat_interval();
    let delivered = state.metrics.delivered(Transport::Sse);
    let metrics = state.metrics.clone();
    let body = async_stream::stream! {
        let subscribed = ServerEvent::Subscribed(Subscribed {
            agent_id: agent,
            last_sequence: last,
            status: Some(found.status),
            recovered: Some(since <= last),
        });
        let mut last_sent = since.min(last);
        // With the resume point as its id: a client whose stream breaks before the next message
        // reconnects from there (a client library keeps the last id it saw, even an absent one).
        let frame = EventFrame::new(Scope::Room(agent), &subscribed);
        yield Ok::<_, actix_web::Error>(sse(Some(last_sent), &frame.frame));
        while last_sent < last {
            let page = match store::find_since(&db, agent, last_sent, Some(HISTORY_PAGE)).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, agent_id = %agent, "event stream: the history could not be read");
                    metrics.database_error("read_history");
                    return;
                }
            };
            let timestamp = clock::now();
            let full = page.len() as u64 == HISTORY_PAGE;
            delivered.inc_by(page.len() as u64);
            for message in page {
                last_sent = message.sequence_number;
                let frame = AgentMessageFrame::of(&message, &timestamp).to_json();
                yield Ok(message_event(message.sequence_number, &frame));
            }
            if !full {
                break;
            }
        }
        let mut beat = beats(heartbeat);
        loop {
            let frames = match wake(&mut registered.told, &mut beat).await {
                Wake::Beat => {
                    yield Ok(Bytes::from_static(KEEP_ALIVE));
                    continue;
                }
                Wake::Told(Some(Told::Frames(frames))) => frames,
                Wake::Told(Some(Told::Cut)) => {
                    yield Ok(Bytes::from_static(
                        b": slow_consumer: the client read too slowly; reconnect with Last-Event-ID\n\n",
                    ));
                    return;
                }
                Wake::Told(Some(Told::GoingAway) | None) => return,
            };
            for frame in frames {
                registered.backlog.written(frame.frame.len());
                match (frame.scope, frame.seq) {
                    // A message the history gave already is dropped.
                    (Scope::Room(a), Some(seq)) if a == agent && seq > last_sent => {
                        last_sent = seq;
                        delivered.inc();
                        yield Ok(message_event(seq, &frame.frame));
                    }
                    (Scope::Room(a), None) if a == agent => yield Ok(event_of(&frame)),
                    (Scope::All, _) if concerns(&frame.frame, agent) => yield Ok(event_of(&frame)),
                    _ => {}
                }
            }
        }
    };
    Ok(event_stream(body))
}

/// `GET /api/events`: `agent:created`, `agent:status` and `agent:deleted` of every agent, live.
#[utoipa::path(
    get,
    path = "/api/events",
    operation_id = "allEvents",
    summary = "Every agent's lifecycle (Server-Sent Events)",
    tag = "streams",
    description = "Server-Sent Events of every agent's lifecycle, live: `agent:created`, `agent:status`, \
                   `agent:deleted` (each `data:` the `data` object of that `ServerEvent`). The stream does \
                   not end by itself.",
    security(("bearerAuth" = []), ("tokenQuery" = [])),
    responses(
        (status = 200, description = "The event stream.", content_type = "text/event-stream", body = String),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
        (status = 503, response = crate::openapi::responses::Unavailable),
    ),
)]
pub async fn all_events(state: web::Data<GatewayState>) -> Result<HttpResponse, ApiError> {
    let mut registered = register(&state).await?;
    let heartbeat = state.settings.heartbeat_interval();
    let body = async_stream::stream! {
        yield Ok::<_, actix_web::Error>(Bytes::from_static(b": agentstream lifecycle events\n\n"));
        let mut beat = beats(heartbeat);
        loop {
            let frames = match wake(&mut registered.told, &mut beat).await {
                Wake::Beat => {
                    yield Ok(Bytes::from_static(KEEP_ALIVE));
                    continue;
                }
                Wake::Told(Some(Told::Frames(frames))) => frames,
                Wake::Told(_) => return,
            };
            for frame in frames {
                registered.backlog.written(frame.frame.len());
                if frame.scope == Scope::All {
                    yield Ok(event_of(&frame));
                }
            }
        }
    };
    Ok(event_stream(body))
}

/// The comment that keeps an idle stream open through proxies.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// A heartbeat every `period`, the first one `period` from now.
fn beats(period: std::time::Duration) -> tokio::time::Interval {
    tokio::time::interval_at(tokio::time::Instant::now() + period, period)
}

/// Why a stream's loop woke up.
enum Wake {
    /// What the registry said (`None`: it is gone).
    Told(Option<Told>),
    /// Time for a heartbeat.
    Beat,
}

async fn wake(told: &mut mpsc::UnboundedReceiver<Told>, beat: &mut tokio::time::Interval) -> Wake {
    tokio::select! {
        told = told.recv() => Wake::Told(told),
        _ = beat.tick() => Wake::Beat,
    }
}

/// The response of an event stream.
fn event_stream(
    body: impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/event-stream")))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        // nginx and others buffer responses unless told not to.
        .insert_header((
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ))
        .streaming(body)
}

/// Whether a lifecycle frame (`agent:status`, `agent:deleted`, …) is about `agent`.
fn concerns(frame: &str, agent: Uuid) -> bool {
    let Some((_, data)) = split(frame) else {
        return false;
    };
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|d| d.get("agentId").and_then(Value::as_str).map(str::to_owned))
        .is_some_and(|id| id == agent.to_string())
}

/// `{"event":"<name>","data":<data>}` → (name, data), as every server frame is written; `None` for
/// anything else.
fn split(frame: &str) -> Option<(&str, &str)> {
    let rest = frame.strip_prefix(r#"{"event":""#)?;
    let (name, rest) = rest.split_once('"')?;
    let data = rest.strip_prefix(r#","data":"#)?.strip_suffix('}')?;
    Some((name, data))
}

/// A frame as an SSE event: `event:` its name, `data:` its data (one line: JSON as written has no
/// raw newline).
fn event_of(frame: &EventFrame) -> Bytes {
    sse(None, &frame.frame)
}

/// An `agent:message` frame as an SSE event with its sequence number as `id:`.
fn message_event(seq: i64, frame: &str) -> Bytes {
    sse(Some(seq), frame)
}

fn sse(id: Option<i64>, frame: &str) -> Bytes {
    let (name, data) = split(frame).unwrap_or(("message", frame));
    let mut out = String::with_capacity(frame.len() + 32);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(data);
    out.push_str("\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::{AgentDeleted, AgentStatus, AgentStatusChanged};

    #[test]
    fn a_frame_becomes_an_event_with_its_name_data_and_id() {
        let frame =
            r#"{"event":"agent:message","data":{"agentId":"a","message":{"content":"x\ny"}}}"#;
        assert_eq!(
            message_event(7, frame),
            Bytes::from(
                "event: agent:message\nid: 7\ndata: {\"agentId\":\"a\",\"message\":{\"content\":\"x\\ny\"}}\n\n"
            )
        );
        assert_eq!(split("not a frame"), None);
    }

    #[test]
    fn lifecycle_frames_are_matched_to_their_agent() {
        let agent = Uuid::new_v4();
        let status = ServerEvent::AgentStatus(AgentStatusChanged {
            agent_id: agent,
            status: AgentStatus::Running,
            timestamp: "t".into(),
            usage: None,
        });
        let frame = EventFrame::new(Scope::All, &status);
        assert!(concerns(&frame.frame, agent));
        assert!(!concerns(&frame.frame, Uuid::new_v4()));
        let deleted = ServerEvent::AgentDeleted(AgentDeleted {
            agent_id: agent,
            purged: true,
            timestamp: "t".into(),
        });
        let event = event_of(&EventFrame::new(Scope::All, &deleted));
        assert!(std::str::from_utf8(&event)
            .unwrap()
            .starts_with("event: agent:deleted\ndata: {"));
    }
}
