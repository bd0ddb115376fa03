//! `agentstream watch <agent-id>`: a terminal client of the WebSocket protocol. It subscribes with
//! `since` (the whole history by default), prints the answer as it forms, and exits when the agent has
//! ended and everything stored has been shown. `--json` prints every frame as one JSON line instead.

use std::io::Write;

use agentstream_wire::{AgentStatus, MessageType, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;
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
}

/// Watches `agent` on the server at `base` (e.g. `http://127.0.0.1:3000`).
pub async fn watch(
    base: &str,
    agent: Uuid,
    since: i64,
    raw_json: bool,
) -> Result<AgentStatus, WatchError> {
    let ws_url = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{}/ws", rest.trim_end_matches('/'))
    } else if base.starts_with("ws://") {
        base.to_owned()
    } else {
        return Err(WatchError::Url(base.to_owned()));
    };
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .map_err(|source| WatchError::Connect {
            url: ws_url.clone(),
            source,
        })?;
    let subscribe = json!({"event": "subscribe", "data": {"agentId": agent, "since": since}});
    socket.send(WsMessage::Text(subscribe.to_string())).await?;

    let mut out = std::io::stdout().lock();
    let mut last_seen = since;
    let mut target: Option<(i64, AgentStatus)> = None;
    let mut ended: Option<AgentStatus> = None;
    let mut mid_line = false;
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
                    let msg = m.message;
                    let token = msg.message_type == MessageType::Assistant
                        && msg.metadata["eventType"] == "content_delta";
                    if token {
                        let _ = write!(out, "{}", msg.content);
                        mid_line = true;
                    } else if msg.message_type != MessageType::System || !msg.content.is_empty() {
                        if mid_line {
                            let _ = writeln!(out);
                            mid_line = false;
                        }
                        let content = if msg.message_type == MessageType::Result {
                            "(final result)".to_owned()
                        } else {
                            msg.content
                        };
                        let _ = writeln!(
                            out,
                            "[{} #{}] {}",
                            msg.message_type, msg.sequence_number, content
                        );
                    }
                    let _ = out.flush();
                }
            }
            ServerEvent::AgentComplete(c) if c.agent_id == agent => {
                if !raw_json {
                    if mid_line {
                        let _ = writeln!(out);
                    }
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
                if mid_line {
                    let _ = writeln!(out);
                }
                let _ = writeln!(out, "[{status}]");
            }
            return Ok(status);
        }
    }
    Err(WatchError::Closed)
}
