//! [`WsClient`]: a client of the WebSocket protocol, and the ways of opening one on a [`TestServer`].

use std::time::Duration;

use agentstream_wire::{
    ClientEvent, ErrorBody, ServerEvent, StoredMessage, Subscribe, Subscribed, Unsubscribe,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::{Fallible, TestServer, TIMEOUT};

impl TestServer {
    /// `ws://127.0.0.1:<port>/ws<query>`.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/ws{query}", self.port)
    }

    /// A WebSocket client connected to /ws; panics if it cannot connect.
    pub async fn ws(&self) -> WsClient {
        self.try_ws().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A WebSocket client connected to /ws.
    pub async fn try_ws(&self) -> Fallible<WsClient> {
        WsClient::connect(&self.ws_url("")).await
    }

    /// A WebSocket client whose socket has a tiny receive buffer, so that when it stops reading the
    /// server feels it at once instead of after the kernel has buffered megabytes.
    pub async fn ws_small_buffer(&self) -> WsClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = socket
            .connect(([127, 0, 0, 1], self.port).into())
            .await
            .expect("tcp connect");
        let (stream, _) =
            tokio_tungstenite::client_async(self.ws_url(""), MaybeTlsStream::Plain(tcp))
                .await
                .expect("websocket handshake");
        WsClient { stream }
    }

    /// Tries to open `/ws{query}` with extra request headers (`Origin`, `Authorization`, `Host`, …);
    /// `Err` with the status and body of a refused upgrade (panics on a failure without an HTTP answer).
    pub async fn ws_with(
        &self,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, Refused> {
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
        let mut request = self
            .ws_url(query)
            .into_client_request()
            .expect("websocket request");
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(WsClient { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(Refused {
                status: response.status().as_u16(),
                headers: response
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect(),
                body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned(),
            }),
            Err(e) => panic!("websocket connect failed without an HTTP answer: {e}"),
        }
    }
}

/// A refused WebSocket upgrade.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Refused {
    /// Asserts it is the protocol's error form with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        let body: ErrorBody = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not the error form ({e}): {self:?}"));
        assert_eq!(body.error.code, code, "{self:?}");
    }

    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a read of the socket got, pings, pongs and binary frames aside.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame: a protocol event, as sent.
    Text(String),
    /// The server's close frame (`None` if it had no code).
    Close(Option<CloseFrame<'static>>),
    /// The socket ended without a close frame.
    End,
}

/// The server closed the socket, with this close code when it sent one (or it just ended).
#[derive(Debug)]
pub struct Closed(pub Option<u16>);

/// A WebSocket client speaking the protocol. `stream` is open for what the protocol's helpers do not
/// cover (raw frames, bursts, closing).
pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// An event as the server sent it; a frame that is not one fails the test.
fn parse(text: &str) -> ServerEvent {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad server frame ({e}): {text}"))
}

impl WsClient {
    /// Connects to `url` (`ws://…`).
    pub async fn connect(url: &str) -> Fallible<WsClient> {
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| format!("websocket connect to {url}: {e}"))?;
        Ok(WsClient { stream })
    }

    /// Sends a text frame.
    pub async fn try_send_text(&mut self, text: &str) -> Fallible<()> {
        self.stream
            .send(WsMessage::Text(text.to_owned()))
            .await
            .map_err(|e| format!("websocket send: {e}"))
    }

    /// Sends a text frame; panics if it cannot.
    pub async fn send_text(&mut self, text: &str) {
        self.try_send_text(text)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends `subscribe` for `agent`, with `since` when given.
    pub async fn try_subscribe(&mut self, agent: Uuid, since: Option<i64>) -> Fallible<()> {
        let frame = ClientEvent::Subscribe(Subscribe {
            agent_id: agent,
            since,
        });
        let text = serde_json::to_string(&frame).expect("a client event serializes");
        self.try_send_text(&text).await
    }

    /// Sends `subscribe` for `agent`, with `since` when given; panics if it cannot.
    pub async fn subscribe(&mut self, agent: Uuid, since: Option<i64>) {
        self.try_subscribe(agent, since)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends `unsubscribe` for `agent`.
    pub async fn unsubscribe(&mut self, agent: Uuid) {
        let frame = ClientEvent::Unsubscribe(Unsubscribe { agent_id: agent });
        let text = serde_json::to_string(&frame).expect("a client event serializes");
        self.send_text(&text).await;
    }

    /// The next text frame or the socket's end, whichever comes first; `Ok(None)` if nothing came by
    /// `deadline`, `Err` if the read failed. Every reading helper is built on this one.
    pub async fn next_incoming(&mut self, deadline: Instant) -> Fallible<Option<Incoming>> {
        loop {
            let Ok(frame) = tokio::time::timeout_at(deadline, self.stream.next()).await else {
                return Ok(None);
            };
            match frame {
                None => return Ok(Some(Incoming::End)),
                Some(Err(e)) => return Err(format!("websocket read: {e}")),
                Some(Ok(WsMessage::Text(text))) => return Ok(Some(Incoming::Text(text))),
                Some(Ok(WsMessage::Close(frame))) => return Ok(Some(Incoming::Close(frame))),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next protocol event; panics on timeout or close.
    pub async fn next_event(&mut self) -> ServerEvent {
        self.try_next_event(TIMEOUT)
            .await
            .expect("no websocket event in time")
    }

    /// The next protocol event within `wait`, or `None` (nothing came, or the socket ended).
    pub async fn try_next_event(&mut self, wait: Duration) -> Option<ServerEvent> {
        match self.next_incoming(Instant::now() + wait).await {
            Ok(Some(Incoming::Text(text))) => Some(parse(&text)),
            Ok(Some(Incoming::Close(_) | Incoming::End) | None) => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// The next answer to this client: an event other than the agent lifecycle broadcasts every
    /// connection receives (`agent:created`, `agent:status`, `agent:deleted`), or the socket's end.
    /// Panics if neither comes within [`TIMEOUT`].
    pub async fn next_reply(&mut self) -> Result<ServerEvent, Closed> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.next_incoming(deadline).await {
                Ok(Some(Incoming::Text(text))) => match parse(&text) {
                    ServerEvent::AgentCreated(_)
                    | ServerEvent::AgentStatus(_)
                    | ServerEvent::AgentDeleted(_) => continue,
                    other => return Ok(other),
                },
                Ok(Some(Incoming::Close(frame))) => {
                    return Err(Closed(frame.map(|f| u16::from(f.code))))
                }
                Ok(Some(Incoming::End)) | Err(_) => return Err(Closed(None)),
                Ok(None) => panic!("no reply in time"),
            }
        }
    }

    /// Waits for the `subscribed` reply, skipping the events every connection receives meanwhile.
    pub async fn expect_subscribed(&mut self) -> Subscribed {
        match self.next_reply().await {
            Ok(ServerEvent::Subscribed(s)) => s,
            other => panic!("expected subscribed, got {other:?}"),
        }
    }

    /// Reads every event until the server closes the socket; returns them and the close frame. Panics if
    /// nothing comes for [`TIMEOUT`] or the socket ends without a close frame.
    pub async fn read_until_close(&mut self) -> (Vec<ServerEvent>, CloseFrame<'static>) {
        let mut events = Vec::new();
        loop {
            match self.next_incoming(Instant::now() + TIMEOUT).await {
                Ok(Some(Incoming::Text(text))) => events.push(parse(&text)),
                Ok(Some(Incoming::Close(frame))) => return (events, frame.expect("a close code")),
                Ok(Some(Incoming::End)) => panic!("the socket ended without a close frame"),
                Ok(None) => panic!("neither an event nor a close in time"),
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Reads events until `agent:complete` (or `agent:error` then `agent:complete`) of `agent`; returns
    /// its `agent:message` messages in arrival order and every event seen.
    pub async fn collect_until_complete(
        &mut self,
        agent: Uuid,
    ) -> (Vec<StoredMessage>, Vec<ServerEvent>) {
        let mut messages = Vec::new();
        let mut events = Vec::new();
        loop {
            let event = self.next_event().await;
            match &event {
                ServerEvent::AgentMessage(m) if m.agent_id == agent => {
                    messages.push(m.message.clone())
                }
                ServerEvent::AgentComplete(c) if c.agent_id == agent => {
                    events.push(event);
                    return (messages, events);
                }
                _ => {}
            }
            events.push(event);
        }
    }
}
