//! The app's one WebSocket: connects to `/ws`, reconnects with backoff and jitter, and on every
//! (re)connect resubscribes each watched agent with `since` = the last sequence number it has, so nothing
//! is missed and nothing comes twice. Events for an agent go to its watcher; the rest (agents created,
//! status changes, deletions) go to the app.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use agentstream_wire::{ClientEvent, ServerEvent, Subscribe, Unsubscribe};
use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::{Sink, SinkExt, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::Message as WsMessage;
use uuid::Uuid;
use yew::Callback;

/// After this many failed attempts in a row the indicator says offline (retries go on).
const OFFLINE_AFTER: u32 = 4;

/// The connection as the indicator shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Live,
    Reconnecting,
    Offline,
}

impl ConnState {
    /// The indicator's word.
    pub fn label(self) -> &'static str {
        match self {
            ConnState::Connecting | ConnState::Reconnecting => "reconnecting",
            ConnState::Live => "live",
            ConnState::Offline => "offline",
        }
    }
}

/// How long to wait before reconnect attempt `attempt` (1, 2, …): exponential from 250 ms, capped at
/// 10 s, with jitter (`random` in [0, 1)) so that many clients do not come back at once.
pub fn reconnect_delay(attempt: u32, random: f64) -> Duration {
    let cap_ms = (250u64 << attempt.min(6).saturating_sub(1)).min(10_000) as f64;
    Duration::from_millis((cap_ms / 2.0 + random.clamp(0.0, 1.0) * cap_ms / 2.0) as u64)
}

/// A watched agent: where its `since` comes from and where its events go.
struct Room {
    since: Rc<dyn Fn() -> i64>,
    on_event: Rc<dyn Fn(ServerEvent)>,
}

struct Inner {
    /// Frames to send, while connected.
    out: Option<UnboundedSender<String>>,
    rooms: HashMap<Uuid, Room>,
    on_global: Callback<ServerEvent>,
    on_state: Callback<ConnState>,
}

/// A handle on the connection (cheap to clone; equal when it is the same connection).
#[derive(Clone)]
pub struct Connection(Rc<RefCell<Inner>>);

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

fn encode(event: &ClientEvent) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

impl Connection {
    /// Starts connecting; `on_global` gets the events for every connection, `on_state` the indicator.
    pub fn start(on_global: Callback<ServerEvent>, on_state: Callback<ConnState>) -> Connection {
        let conn = Connection(Rc::new(RefCell::new(Inner {
            out: None,
            rooms: HashMap::new(),
            on_global,
            on_state,
        })));
        wasm_bindgen_futures::spawn_local(run(conn.clone()));
        conn
    }

    /// Watches an agent: subscribes now if connected, and again after every reconnect.
    pub fn join(
        &self,
        agent: Uuid,
        since: impl Fn() -> i64 + 'static,
        on_event: impl Fn(ServerEvent) + 'static,
    ) {
        let since: Rc<dyn Fn() -> i64> = Rc::new(since);
        let frame = encode(&ClientEvent::Subscribe(Subscribe {
            agent_id: agent,
            since: Some(since()),
        }));
        let mut inner = self.0.borrow_mut();
        inner.rooms.insert(
            agent,
            Room {
                since,
                on_event: Rc::new(on_event),
            },
        );
        if let Some(out) = &inner.out {
            let _ = out.unbounded_send(frame);
        }
    }

    /// Stops watching an agent.
    pub fn leave(&self, agent: Uuid) {
        let mut inner = self.0.borrow_mut();
        if inner.rooms.remove(&agent).is_some() {
            if let Some(out) = &inner.out {
                let _ = out.unbounded_send(encode(&ClientEvent::Unsubscribe(Unsubscribe {
                    agent_id: agent,
                })));
            }
        }
    }

    fn set_state(&self, state: ConnState) {
        let callback = self.0.borrow().on_state.clone();
        callback.emit(state);
    }

    /// Hands an event to its agent's watcher (cloned out first: a watcher may join or leave).
    fn dispatch(&self, event: ServerEvent) {
        let agent = match &event {
            ServerEvent::AgentMessage(e) => Some(e.agent_id),
            ServerEvent::AgentComplete(e) => Some(e.agent_id),
            ServerEvent::AgentError(e) => Some(e.agent_id),
            ServerEvent::Subscribed(e) => Some(e.agent_id),
            ServerEvent::Error(e) => e.agent_id,
            ServerEvent::AgentStatus(e) => Some(e.agent_id),
            ServerEvent::AgentDeleted(e) => Some(e.agent_id),
            ServerEvent::AgentCreated(_) | ServerEvent::Unsubscribed(_) => None,
        };
        let room = agent.and_then(|a| self.0.borrow().rooms.get(&a).map(|r| r.on_event.clone()));
        let global = matches!(
            event,
            ServerEvent::AgentCreated(_)
                | ServerEvent::AgentStatus(_)
                | ServerEvent::AgentDeleted(_)
        );
        if global {
            let callback = self.0.borrow().on_global.clone();
            callback.emit(event.clone());
        }
        if let Some(room) = room {
            room(event);
        }
    }
}

fn ws_url() -> String {
    let location = web_sys::window().map(|w| w.location());
    let host = location
        .as_ref()
        .and_then(|l| l.host().ok())
        .unwrap_or_default();
    let secure = location.and_then(|l| l.protocol().ok()).as_deref() == Some("https:");
    let token = crate::auth::ws_query();
    format!("{}://{host}/ws{token}", if secure { "wss" } else { "ws" })
}

/// Connects, serves, and reconnects forever.
async fn run(conn: Connection) {
    let mut failures: u32 = 0;
    loop {
        if serve_once(&conn).await {
            failures = 0;
        } else {
            // Refused (no token, or a changed one?) or unreachable: a REST call can tell, and a 401 asks
            // for the token.
            crate::api::probe().await;
        }
        failures += 1;
        conn.set_state(if failures > OFFLINE_AFTER {
            ConnState::Offline
        } else {
            ConnState::Reconnecting
        });
        gloo_timers::future::sleep(reconnect_delay(failures, js_sys::Math::random())).await;
    }
}

/// One connection, until it breaks. True if it was open at some point.
async fn serve_once(conn: &Connection) -> bool {
    let Ok(mut ws) = WebSocket::open(&ws_url()) else {
        return false;
    };
    // Wait for the socket to open (the sink is ready then).
    if futures_util::future::poll_fn(|cx| std::pin::Pin::new(&mut ws).poll_ready(cx))
        .await
        .is_err()
    {
        return false;
    }
    if !matches!(ws.state(), gloo_net::websocket::State::Open) {
        return false;
    }
    let (tx, mut rx) = unbounded::<String>();
    let resubscribe: Vec<String> = {
        let mut inner = conn.0.borrow_mut();
        inner.out = Some(tx);
        inner
            .rooms
            .iter()
            .map(|(agent, room)| {
                encode(&ClientEvent::Subscribe(Subscribe {
                    agent_id: *agent,
                    since: Some((room.since)()),
                }))
            })
            .collect()
    };
    conn.set_state(ConnState::Live);
    let (mut sink, stream) = ws.split();
    let mut stream = stream.fuse();
    let mut ok = true;
    for frame in resubscribe {
        ok &= sink.send(WsMessage::Text(frame)).await.is_ok();
    }
    while ok {
        futures_util::select! {
            frame = rx.next() => match frame {
                Some(frame) => ok = sink.send(WsMessage::Text(frame)).await.is_ok(),
                None => ok = false,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    if let Ok(event) = serde_json::from_str::<ServerEvent>(&text) {
                        conn.dispatch(event);
                    }
                }
                Some(Ok(WsMessage::Bytes(_))) => {}
                Some(Err(_)) | None => ok = false,
            },
        }
    }
    conn.0.borrow_mut().out = None;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        assert_eq!(reconnect_delay(1, 0.0), Duration::from_millis(125));
        assert_eq!(reconnect_delay(1, 1.0), Duration::from_millis(250));
        assert_eq!(reconnect_delay(3, 0.5), Duration::from_millis(750));
        for attempt in 7..100 {
            let d = reconnect_delay(attempt, 0.999);
            assert!(d <= Duration::from_secs(10), "{d:?}");
            assert!(d >= Duration::from_secs(4), "{d:?}");
        }
        assert!(reconnect_delay(5, 0.1) < reconnect_delay(5, 0.9));
    }
}
