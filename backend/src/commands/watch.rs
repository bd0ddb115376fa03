//! `agentstream watch <agent-id>`: a terminal client of the WebSocket protocol. It subscribes with
//! `since` (the whole history by default), prints the answer as it forms, and exits when the agent has
//! ended and everything stored has been shown. `--json` prints every frame as one JSON line instead.

use std::io::Write;

use std::collections::HashSet;

use agentstream_wire::{keys, AgentStatus, EventType, MessageType, ServerEvent, StoredMessage};
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
    #[error("the server URL must start with http:// or ws://, got {0:?}")]
    Url(String),
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
        return Err(WatchError::Url(base.to_owned()));
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

    let mut out = std::io::stdout().lock();
    let mut last_seen = since;
    let mut target: Option<(i64, AgentStatus)> = None;
    let mut ended: Option<AgentStatus> = None;
    let mut renderer = Renderer::default();
    while let Some(frame) = socket.next().await {
        let text = match frame? {
            WsMessage::Text(text) => text,
            WsMessage::Close(_) => return Err(WatchError::Closed),
            _ => continue,
        };
        let Ok(event) = serde_json::from_str::<ServerEvent>(&text) else {
            continue;
        };
        if raw_json {
            let _ = writeln!(out, "{text}");
        }
        match event {
            ServerEvent::Subscribed(s) if s.agent_id == agent => {
                target = Some((s.last_sequence, s.status.unwrap_or(AgentStatus::Running)));
            }
            ServerEvent::AgentMessage(m) if m.agent_id == agent => {
                last_seen = m.message.sequence_number;
                if !raw_json {
                    renderer.render(&m.message, &mut out);
                    let _ = out.flush();
                }
            }
            ServerEvent::AgentComplete(c) if c.agent_id == agent => {
                if !raw_json {
                    renderer.end_line(&mut out);
                    let _ = writeln!(
                        out,
                        "[{}] {} messages in {} ms",
                        c.result.status, c.result.last_sequence, c.result.duration_ms
                    );
                }
                return Ok(c.result.status);
            }
            ServerEvent::AgentError(e) if e.agent_id == agent => {
                eprintln!("\nagent error: {}: {}", e.error.code, e.error.message);
            }
            ServerEvent::AgentStatus(s) if s.agent_id == agent && s.status.is_terminal() => {
                ended = Some(s.status);
            }
            ServerEvent::Error(e) if e.agent_id == Some(agent) || e.agent_id.is_none() => {
                return Err(WatchError::Refused {
                    code: e.code,
                    message: e.message,
                });
            }
            _ => {}
        }
        // An agent that had already ended (or was terminated) sends no `agent:complete`: stop once
        // everything stored has been shown.
        let finished = match (target, ended) {
            (_, Some(status))
                if status != AgentStatus::Completed && status != AgentStatus::Failed =>
            {
                Some(status)
            }
            (Some((last, status)), _) if status.is_terminal() && last_seen >= last => Some(status),
            _ => None,
        };
        if let Some(status) = finished {
            if !raw_json {
                renderer.end_line(&mut out);
                let _ = writeln!(out, "[{status}]");
            }
            return Ok(status);
        }
    }
    Err(WatchError::Closed)
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
