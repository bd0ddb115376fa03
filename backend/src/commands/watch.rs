//! `agentstream watch <agent-id>`: a terminal client of the WebSocket protocol. It subscribes with
//! `since` (the whole history by default), prints the answer as it forms, and exits when the agent has
//! ended and everything stored has been shown. `--json` prints every frame as one JSON line instead.
//! With `--sse` the same frames come over Server-Sent Events ([`super::watch_sse`]); what is printed
//! and when the watch ends is [`Follow`]'s, the same for both.

use std::io::Write;

use std::collections::HashSet;

use agentstream_wire::{
    keys, AgentStatus, ErrorInfo, EventType, MessageType, ServerEvent, StoredMessage,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tungstenite::http::StatusCode;
use uuid::Uuid;

/// Why watching failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("the server URL must start with {expected}, got {url:?}")]
    Url { url: String, expected: &'static str },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        source: tokio_tungstenite::tungstenite::Error,
    },
    #[error("the connection failed: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server refused: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("the server closed the connection")]
    Closed,
    #[error("the server wants a valid API token: --token or AGENTSTREAM__AUTH__TOKEN")]
    Unauthorized,
    #[error("the token cannot be sent in a header (printable ASCII only)")]
    BadToken,
    // The rest are `--sse`'s (`super::watch_sse`).
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The first request failed: as over the WebSocket, a server never reached is not waited for.
    #[error("cannot connect to {url}: {}", causes(.source))]
    Unreachable {
        url: String,
        source: reqwest_eventsource::Error,
    },
    /// The server was reached, then stayed out of reach for `outage` (the last attempt's error).
    #[error("lost {url} for over {} s: {}", .outage.as_secs(), causes(.source))]
    Lost {
        url: String,
        outage: std::time::Duration,
        source: reqwest_eventsource::Error,
    },
    #[error(
        "{url} is not an event stream (Content-Type {content_type:?}): \
         not an agentstream server, or one without Server-Sent Events"
    )]
    NotAnEventStream { url: String, content_type: String },
    /// `reqwest-eventsource` clones the request for each reconnect; a GET always can be.
    #[error("the request cannot be repeated, so the stream could not be resumed")]
    NotRepeatable,
    /// What the library does not retry and is none of the above (a `Last-Event-ID` it cannot send).
    #[error("the event stream failed: {}", causes(.0))]
    Stream(#[source] reqwest_eventsource::Error),
}

impl From<ErrorInfo> for WatchError {
    fn from(e: ErrorInfo) -> Self {
        WatchError::Refused {
            code: e.code,
            message: e.message,
        }
    }
}

/// An event stream's error and its causes, `a: b: c`: reqwest's own message only repeats the URL
/// ("error sending request for url …"), the causes say what happened ("Connection refused").
fn causes(error: &reqwest_eventsource::Error) -> String {
    use std::error::Error;
    let mut text = match error {
        reqwest_eventsource::Error::Transport(e) if e.source().is_some() => String::new(),
        e => e.to_string(),
    };
    let mut cause = error.source();
    while let Some(c) = cause {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Watches `agent` on the server at `base` (e.g. `http://127.0.0.1:3000`), sending `token` as
/// `Authorization: Bearer` when given.
pub async fn watch(
    base: &str,
    agent: Uuid,
    since: i64,
    raw_json: bool,
    token: Option<&str>,
) -> Result<AgentStatus, WatchError> {
    let ws_url = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{}/ws", rest.trim_end_matches('/'))
    } else if base.starts_with("ws://") {
        base.to_owned()
    } else {
        return Err(WatchError::Url {
            url: base.to_owned(),
            expected: "http:// or ws://",
        });
    };
    let mut request = ws_url.as_str().into_client_request()?;
    if let Some(token) = token {
        let value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| WatchError::BadToken)?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|source| match source {
            tungstenite::Error::Http(r) if r.status() == StatusCode::UNAUTHORIZED => {
                WatchError::Unauthorized
            }
            source => WatchError::Connect {
                url: ws_url.clone(),
                source,
            },
        })?;
    let subscribe = json!({"event": "subscribe", "data": {"agentId": agent, "since": since}});
    socket.send(WsMessage::Text(subscribe.to_string())).await?;

    let mut follow = Follow::new(agent, since, raw_json, std::io::stdout().lock());
    while let Some(frame) = socket.next().await {
        let text = match frame? {
            WsMessage::Text(text) => text,
            WsMessage::Close(_) => return Err(WatchError::Closed),
            _ => continue,
        };
        if let Some(status) = follow.frame(&text)? {
            return Ok(status);
        }
    }
    Err(WatchError::Closed)
}

/// One watch of one agent, whatever carries its frames (the WebSocket here, Server-Sent Events in
/// [`super::watch_sse`]): what is printed for each frame and when the watch is over.
pub(super) struct Follow<W: Write> {
    agent: Uuid,
    raw_json: bool,
    out: W,
    renderer: Renderer,
    /// The last sequence number shown. A message at or below it is a copy: a stream that reconnects
    /// resumes from a point the client gave, which may be behind what it has shown.
    last_seen: i64,
    /// From `subscribed`: the last message stored then, and the agent's status then.
    target: Option<(i64, AgentStatus)>,
    /// A terminal status the agent reached while watched.
    ended: Option<AgentStatus>,
}

impl<W: Write> Follow<W> {
    /// Shows what comes after `since`.
    pub(super) fn new(agent: Uuid, since: i64, raw_json: bool, out: W) -> Self {
        Follow {
            agent,
            raw_json,
            out,
            renderer: Renderer::default(),
            last_seen: since,
            target: None,
            ended: None,
        }
    }

    /// The last sequence number shown (where a reconnect resumes).
    pub(super) fn last_seen(&self) -> i64 {
        self.last_seen
    }

    /// Takes one server frame, `{"event":…,"data":…}`: prints it, and says the agent's final status
    /// once the watch is over; `Err` is the server's refusal (a WebSocket `error` frame; it becomes
    /// [`WatchError::Refused`], kept small here since this runs for every frame). A frame that is not a
    /// server event is skipped (a newer server may send events this client does not know).
    pub(super) fn frame(&mut self, text: &str) -> Result<Option<AgentStatus>, ErrorInfo> {
        let agent = self.agent;
        let Ok(event) = serde_json::from_str::<ServerEvent>(text) else {
            return Ok(None);
        };
        if let ServerEvent::AgentMessage(m) = &event {
            if m.agent_id == agent && m.message.sequence_number <= self.last_seen {
                return Ok(None);
            }
        }
        let out = &mut self.out;
        if self.raw_json {
            let _ = writeln!(out, "{text}");
        }
        match event {
            ServerEvent::Subscribed(s) if s.agent_id == agent => {
                self.target = Some((s.last_sequence, s.status.unwrap_or(AgentStatus::Running)));
            }
            ServerEvent::AgentMessage(m) if m.agent_id == agent => {
                self.last_seen = m.message.sequence_number;
                if !self.raw_json {
                    self.renderer.render(&m.message, out);
                    let _ = out.flush();
                }
            }
            ServerEvent::AgentComplete(c) if c.agent_id == agent => {
                if !self.raw_json {
                    self.renderer.end_line(out);
                    let _ = writeln!(
                        out,
                        "[{}] {} messages in {} ms",
                        c.result.status, c.result.last_sequence, c.result.duration_ms
                    );
                }
                return Ok(Some(c.result.status));
            }
            ServerEvent::AgentError(e) if e.agent_id == agent => {
                eprintln!("\nagent error: {}: {}", e.error.code, e.error.message);
            }
            ServerEvent::AgentStatus(s) if s.agent_id == agent && s.status.is_terminal() => {
                self.ended = Some(s.status);
            }
            ServerEvent::Error(e) if e.agent_id == Some(agent) || e.agent_id.is_none() => {
                return Err(ErrorInfo {
                    code: e.code,
                    message: e.message,
                });
            }
            _ => {}
        }
        // An agent that had already ended (or was terminated) sends no `agent:complete`: stop once
        // everything stored has been shown.
        let finished = match (self.target, self.ended) {
            (_, Some(status))
                if status != AgentStatus::Completed && status != AgentStatus::Failed =>
            {
                Some(status)
            }
            (Some((last, status)), _) if status.is_terminal() && self.last_seen >= last => {
                Some(status)
            }
            _ => None,
        };
        if let Some(status) = finished {
            if !self.raw_json {
                self.renderer.end_line(out);
                let _ = writeln!(out, "[{status}]");
            }
        }
        Ok(finished)
    }
}

/// Turns messages into terminal text: streamed text inline, one line for everything else, and never the
/// same text twice (a whole `assistant_message` block is shown only when its deltas were not).
#[derive(Default)]
struct Renderer {
    /// The cursor is after inline text.
    mid_line: bool,
    /// Message ids whose deltas were shown.
    streamed: HashSet<String>,
}

impl Renderer {
    fn end_line(&mut self, out: &mut impl Write) {
        if self.mid_line {
            let _ = writeln!(out);
            self.mid_line = false;
        }
    }

    fn line(&mut self, out: &mut impl Write, label: &str, text: &str) {
        self.end_line(out);
        let _ = writeln!(out, "[{label}] {text}");
    }

    fn render(&mut self, m: &StoredMessage, out: &mut impl Write) {
        let event = EventType::of(&m.metadata);
        let message_id = m.metadata[keys::MESSAGE_ID].as_str().map(str::to_owned);
        match event {
            Some(EventType::ContentDelta)
            | Some(EventType::ThinkingDelta)
            | Some(EventType::ToolInputDelta) => {
                if let Some(id) = message_id {
                    self.streamed.insert(id);
                }
                let _ = write!(out, "{}", m.content);
                self.mid_line = true;
            }
            Some(EventType::ToolUse) => {
                // The tool's input streams in after its name, on the same line.
                self.end_line(out);
                let _ = write!(out, "[tool {}] ", m.content);
                self.mid_line = true;
            }
            Some(EventType::AssistantMessage) => {
                if !message_id.is_some_and(|id| self.streamed.contains(&id)) {
                    self.line(out, "assistant", &m.content);
                }
            }
            Some(EventType::AbandonedBlocks) => {
                if let Some(id) = &message_id {
                    self.streamed.remove(id);
                }
                self.line(
                    out,
                    "abandoned",
                    "the partial message above was discarded; it is sent again",
                );
            }
            Some(EventType::ToolResult) => self.line(out, "tool result", &m.content),
            Some(EventType::UserInput) => self.line(out, "you", &m.content),
            Some(EventType::PermissionRequest) => {
                let id = m.metadata[keys::REQUEST_ID].as_str().unwrap_or_default();
                let text = format!(
                    "{} wants to run with {}; answer: agentstream answer {} {id} allow|deny",
                    m.content,
                    m.metadata[keys::INPUT],
                    m.agent_id
                );
                self.line(out, &format!("permission {id}"), &text);
            }
            Some(EventType::PermissionResponse) => {
                self.line(out, "permission answered", &m.content)
            }
            Some(EventType::Result) => self.end_line(out),
            Some(EventType::MessageDelta) | Some(EventType::SignatureDelta) => {}
            _ if m.message_type == MessageType::System && m.content.is_empty() => {}
            _ => self.line(out, m.message_type.as_str(), &m.content),
        }
    }
}
