//! Commands for an agent reach the instance that owns it (PostgreSQL, several instances): DELETE,
//! follow-ups, interrupts and permission answers sent to another instance are forwarded to the owner,
//! and the client gets the owner's answer as it gave it. When the owner is gone (its lease ran out, or
//! it does not answer), the agent is taken over here once its lease has ended, and answered here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use agentstream_wire::ErrorCode;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::lease::{self, Owner};
use crate::error::ApiError;
use crate::persistence::{Persistence, TakeOver};

/// Marks a forwarded request: its receiver answers it itself, so a request never goes round.
pub const FORWARDED: &str = "x-agentstream-forwarded";

/// How long a forwarded command may take (a follow-up is answered once it is stored).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// What the API knows of the other instances.
pub struct Peers {
    pub instance: String,
    pub db: DatabaseConnection,
    pub persistence: Addr<Persistence>,
    pub client: reqwest::Client,
    pub lease: Duration,
    /// The listener hears the other instances.
    pub listener_up: Arc<AtomicBool>,
    /// This instance's lease was renewed at its last heartbeat.
    pub lease_held: Arc<AtomicBool>,
}

impl Peers {
    pub fn listener_up(&self) -> bool {
        self.listener_up.load(Ordering::Relaxed)
    }

    pub fn lease_held(&self) -> bool {
        self.lease_held.load(Ordering::Relaxed)
    }
}

/// Where a command goes.
pub enum Route {
    /// This instance owns the agent (or nobody does: it answers, with a 404 for an unknown agent).
    Here,
    /// The owner answered.
    Answered(HttpResponse),
}

/// Sends the command `req` (with its JSON `body`) about `agent` to the agent's owner, unless this
/// instance is the owner.
pub async fn to_owner(
    peers: &Peers,
    req: &HttpRequest,
    body: Option<&serde_json::Value>,
    agent: Uuid,
) -> Result<Route, ApiError> {
    let mut owner = match lease::owner_of(&peers.db, agent).await? {
        Some(owner) if owner.instance != peers.instance => owner,
        _ => return Ok(Route::Here),
    };
    if req.headers().contains_key(FORWARDED) {
        // Sent here as to the owner, which this instance is not (any more): the sender decides.
        return Err(unavailable(
            &owner,
            "it moved while the command was on its way",
        ));
    }
    if owner.alive {
        match forward(peers, req, body, &owner).await {
            Ok(response) => return Ok(Route::Answered(response)),
            Err(e) => {
                tracing::warn!(agent_id = %agent, owner = %owner.instance, error = %e, "the agent's owner does not answer");
            }
        }
    }
    // The owner is gone, or going: once its lease has ended its agents are taken over (here, or by
    // another instance that looked first), and the command goes to the new owner.
    let deadline = Instant::now() + peers.lease + Duration::from_secs(1);
    loop {
        if !owner.alive {
            let _ = peers.persistence.send(TakeOver).await;
        }
        match lease::owner_of(&peers.db, agent).await? {
            None => return Ok(Route::Here),
            Some(now) if now.instance == peers.instance => return Ok(Route::Here),
            Some(now) if now.instance != owner.instance => {
                return forward(peers, req, body, &now)
                    .await
                    .map(Route::Answered)
                    .map_err(|e| unavailable(&now, &e.to_string()));
            }
            Some(now) => owner = now,
        }
        if Instant::now() >= deadline {
            return Err(unavailable(&owner, "its lease still runs"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn unavailable(owner: &Owner, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::OwnerUnavailable,
        format!(
            "the instance {} that runs the agent cannot be reached ({why}); try again",
            owner.instance
        ),
    )
}

/// The owner's answer to the command, as it gave it.
async fn forward(
    peers: &Peers,
    req: &HttpRequest,
    body: Option<&serde_json::Value>,
    owner: &Owner,
) -> Result<HttpResponse, reqwest::Error> {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let url = format!("{}{}", owner.url.trim_end_matches('/'), path);
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .unwrap_or(reqwest::Method::POST);
    let mut request = peers
        .client
        .request(method, url)
        .timeout(FORWARD_TIMEOUT)
        .header(FORWARDED, peers.instance.as_str());
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        request = request.header(reqwest::header::AUTHORIZATION, auth.as_bytes());
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await?;
    let status = StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await?;
    let mut answer = HttpResponse::build(status);
    if let Some(content_type) = content_type {
        answer.insert_header((header::CONTENT_TYPE, content_type));
    }
    Ok(answer.body(bytes))
}
