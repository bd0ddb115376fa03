//! `agentstream send`, `interrupt` and `answer`: a terminal's way to talk to an agent over the REST
//! API (`POST /api/agents/{id}/messages`, `…/interrupt`, `…/permissions/{requestId}`).

use std::time::{Duration, Instant};

use agentstream_wire::{Agent, ErrorBody, PermissionAnswer, StoredMessage};
use serde_json::Value;
use uuid::Uuid;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum TalkError {
    #[error("the server URL must start with http://, got {0:?}")]
    Url(String),
    #[error("cannot reach the server: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the server refused ({status}): {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

/// GETs `path` of the server at `base`; the answer's JSON.
async fn get(base: &str, path: &str, token: Option<&str>) -> Result<Value, TalkError> {
    request(base, reqwest::Method::GET, path, None, token).await
}

/// POSTs `body` to `path` of the server at `base`; the answer's JSON.
async fn post(
    base: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Result<Value, TalkError> {
    request(base, reqwest::Method::POST, path, body, token).await
}

async fn request(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Result<Value, TalkError> {
    if !base.starts_with("http://") && !base.starts_with("https://") {
        return Err(TalkError::Url(base.to_owned()));
    }
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut request = reqwest::Client::new().request(method, &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => ("http_error".to_owned(), text),
        };
        return Err(TalkError::Refused {
            status: status.as_u16(),
            code,
            message,
        });
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The agent as the server has it.
pub async fn agent(base: &str, agent: Uuid, token: Option<&str>) -> Result<Agent, TalkError> {
    let agent = get(base, &format!("/api/agents/{agent}"), token).await?;
    serde_json::from_value(agent).map_err(|e| TalkError::Refused {
        status: 200,
        code: "unexpected_answer".to_owned(),
        message: e.to_string(),
    })
}

/// Sends a follow-up and, when `wait` and the agent's turn had ended, waits (up to half a minute)
/// until the turn it starts has begun or ended — so that a watch started then does not take the
/// previous turn's end for the new one's. The stored message.
pub async fn send(
    base: &str,
    agent: Uuid,
    content: &str,
    wait: bool,
    token: Option<&str>,
) -> Result<StoredMessage, TalkError> {
    let before = self::agent(base, agent, token).await?;
    let stored = send_only(base, agent, content, token).await?;
    if wait && !before.status.is_active() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let now = self::agent(base, agent, token).await?;
            if now.status.is_active() || now.completed_at != before.completed_at {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(stored)
}

/// Sends a follow-up; the stored message.
async fn send_only(
    base: &str,
    agent: Uuid,
    content: &str,
    token: Option<&str>,
) -> Result<StoredMessage, TalkError> {
    let body = serde_json::json!({ "content": content });
    let stored = post(
        base,
        &format!("/api/agents/{agent}/messages"),
        Some(body),
        token,
    )
    .await?;
    serde_json::from_value(stored).map_err(|e| TalkError::Refused {
        status: 202,
        code: "unexpected_answer".to_owned(),
        message: e.to_string(),
    })
}

/// Interrupts the agent's current turn.
pub async fn interrupt(base: &str, agent: Uuid, token: Option<&str>) -> Result<(), TalkError> {
    post(base, &format!("/api/agents/{agent}/interrupt"), None, token).await?;
    Ok(())
}

/// Answers a permission request; the stored answer's sequence number.
pub async fn answer(
    base: &str,
    agent: Uuid,
    request_id: &str,
    answer: &PermissionAnswer,
    token: Option<&str>,
) -> Result<i64, TalkError> {
    let body = serde_json::to_value(answer).unwrap_or(Value::Null);
    let stored = post(
        base,
        &format!("/api/agents/{agent}/permissions/{request_id}"),
        Some(body),
        token,
    )
    .await?;
    Ok(stored["sequenceNumber"].as_i64().unwrap_or_default())
}
