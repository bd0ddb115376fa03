//! `/api/agents…` handlers.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use agentstream_wire::{AgentType, CreateAgentRequest, ErrorCode};
use uuid::Uuid;

use super::AppState;
use crate::agents::{DeleteAgent, Launch};
use crate::error::ApiError;
use crate::runners::RunnerSpec;
use crate::store;

/// Largest `limit` of one history page.
const MAX_LIMIT: u64 = 100_000;

pub(crate) fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::bad_request(ErrorCode::InvalidId, format!("{raw:?} is not a UUID")))
}

/// A `limit` query parameter: an integer from 1 to `max`, else 400 `invalid_limit`.
fn parse_limit(raw: &str, max: u64) -> Result<u64, ApiError> {
    match raw.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            ErrorCode::InvalidLimit,
            format!("limit must be an integer from 1 to {max}, got {raw:?}"),
        )),
    }
}

/// `POST /api/agents`: validates, stores and starts an agent; 201 with it.
#[utoipa::path(
    post,
    path = "/api/agents",
    operation_id = "launchAgent",
    summary = "Launch an agent",
    tag = "agents",
    description = "Stores the agent and starts its runner at once (`agent:created`). The body is read as \
                   JSON whatever its `Content-Type`. `configuration` depends on `type`: \
                   `SyntheticConfig`, `ClaudeConfig`, `GeminiConfig` or `CodexConfig` (any other key: \
                   400 `invalid_configuration`).",
    request_body(content = CreateAgentRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The agent, as stored.", body = agentstream_wire::Agent),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
        (status = 500, response = crate::openapi::responses::StorageFailure),
        (status = 501, response = crate::openapi::responses::NotImplemented),
        (status = 503, response = crate::openapi::responses::Unavailable),
    ),
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Json<CreateAgentRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let agent_type: AgentType = request.agent_type.parse().map_err(|_| {
        let known: Vec<&str> = AgentType::ALL.iter().map(|t| t.as_str()).collect();
        ApiError::bad_request(
            ErrorCode::UnknownAgentType,
            format!(
                "unknown agent type {:?}; known types: {}",
                request.agent_type,
                known.join(", ")
            ),
        )
    })?;
    let max = state.settings.agents.max_prompt_bytes;
    if request.prompt.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "the prompt is {} bytes; at most {max} are accepted",
                request.prompt.len()
            ),
        ));
    }
    if request.prompt.contains('\0') {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "the prompt contains a NUL character",
        ));
    }
    if let Some(config) = &request.configuration {
        if !config.is_object() && !config.is_null() {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidConfiguration,
                "configuration must be an object",
            ));
        }
    }
    let spec = RunnerSpec::for_agent(
        agent_type,
        &request.prompt,
        request.configuration.as_ref(),
        &state.settings,
    )?;
    if let Err(wait) = state.launches.try_take() {
        let per_minute = state.settings.agents.launches_per_minute;
        tracing::warn!(per_minute, "refused a launch: too many per minute");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyLaunches,
            format!("at most {per_minute} launches per minute; try again in a moment"),
        )
        .retry_after(wait));
    }
    let configuration = spec
        .configuration()
        .or(request.configuration)
        .filter(|c| !c.is_null())
        .unwrap_or_else(|| serde_json::json!({}));
    let agent = state
        .orchestrator
        .send(Launch {
            agent_type,
            prompt: request.prompt,
            configuration,
            spec,
        })
        .await??;
    Ok(HttpResponse::Created().json(agent))
}

/// `GET /api/agents`: every agent, newest first. With a search query `q` that is not blank: the
/// agents whose prompt or messages hold its words, newest first, a page at a time (`limit`, `before`),
/// each with a `match` snippet (docs/search.md).
#[utoipa::path(
    get,
    path = "/api/agents",
    operation_id = "listAgents",
    summary = "List every agent, newest first; or search them",
    tag = "agents",
    description = "Without `q` (or with a blank one): every agent, newest first. With `q`: the agents whose \
                   prompt or messages hold all its words, newest first, `limit` at a time after `before`, \
                   each with a `match` snippet (docs/search.md).",
    params(crate::openapi::params::SearchQuery),
    responses(
        (status = 200, description = "The agents, newest first (with `match` when searching).", body = Vec<agentstream_wire::AgentMatch>),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 500, response = crate::openapi::responses::StorageFailure),
    ),
)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    match query.get("q").filter(|q| !q.trim().is_empty()) {
        None => Ok(HttpResponse::Ok().json(store::list_agents(&state.db).await?)),
        Some(q) => search(&state, q, &query).await,
    }
}

/// A page of search results holds at most this many agents (and this many by default).
const MAX_SEARCH_LIMIT: u64 = 100;
const DEFAULT_SEARCH_LIMIT: u64 = 50;

/// `GET /api/agents?q=…[&limit=N][&before=<id>]`.
async fn search(
    state: &AppState,
    q: &str,
    query: &HashMap<String, String>,
) -> Result<HttpResponse, ApiError> {
    use crate::search::query::SearchQuery;
    let parsed = SearchQuery::parse(q)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, e.to_string()))?;
    let limit = query
        .get("limit")
        .map(|raw| parse_limit(raw, MAX_SEARCH_LIMIT))
        .transpose()?
        .unwrap_or(DEFAULT_SEARCH_LIMIT);
    let before = match query.get("before") {
        None => None,
        Some(raw) => {
            let id = parse_id(raw)?;
            let agent = store::find_agent(&state.db, id).await?.ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidQuery,
                    format!("before names no agent: {id} does not exist (any more)"),
                )
            })?;
            Some(store::search::Before {
                created_at: agent.created_at,
                id: id.to_string(),
            })
        }
    };
    let found = store::search::find_agents(&state.db, &parsed, before.as_ref(), limit).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// `GET /api/agent-types`: every type this server knows, its options, and whether it can run here.
#[utoipa::path(
    get,
    path = "/api/agent-types",
    operation_id = "listAgentTypes",
    summary = "The agent types, and whether each can run here",
    tag = "server",
    responses((
        status = 200,
        description = "Every type this server knows, the keys its `configuration` takes, and whether it can run here.",
        body = Vec<agentstream_wire::AgentTypeInfo>,
    )),
)]
pub async fn types(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(crate::runners::kind::all(&state.settings))
}

/// `GET /api/agents/{id}`.
#[utoipa::path(
    get,
    path = "/api/agents/{id}",
    operation_id = "getAgent",
    summary = "Get an agent",
    tag = "agents",
    params(crate::openapi::params::AgentId),
    responses(
        (status = 200, description = "The agent.", body = agentstream_wire::Agent),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 500, response = crate::openapi::responses::StorageFailure),
    ),
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let agent = store::find_agent(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::agent_not_found(id))?;
    Ok(HttpResponse::Ok().json(agent))
}

/// `GET /api/agents/{id}/messages[?since=N][&limit=L]`: ascending by sequence number.
#[utoipa::path(
    get,
    path = "/api/agents/{id}/messages",
    operation_id = "listMessages",
    summary = "An agent's history, or its tail after `since`",
    tag = "agents",
    description = "The agent's stored messages by `sequenceNumber`, ascending: 1, 2, 3… with no hole and \
                   no repeat. A client that reconnects asks for the tail after the last number it has.",
    params(crate::openapi::params::AgentId, crate::openapi::params::HistoryQuery),
    responses(
        (status = 200, description = "The messages after `since`, ascending.", body = Vec<agentstream_wire::StoredMessage>),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 500, response = crate::openapi::responses::StorageFailure),
    ),
)]
pub async fn messages(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let since = match query.get("since") {
        None => 0,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidSince,
                    format!("since must be an integer >= 0, got {raw:?}"),
                ))
            }
        },
    };
    let limit = query
        .get("limit")
        .map(|raw| parse_limit(raw, MAX_LIMIT))
        .transpose()?;
    if store::find_agent(&state.db, id).await?.is_none() {
        return Err(ApiError::agent_not_found(id));
    }
    if let Some(limit) = limit {
        return Ok(
            HttpResponse::Ok().json(store::find_since(&state.db, id, since, Some(limit)).await?)
        );
    }
    // A whole history may be large: read and send it a page at a time (only one page in memory).
    let first = store::find_since(&state.db, id, since, Some(PAGE)).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(history_pages(state.db.clone(), id, first)))
}

/// Rows read per page of a streamed history.
const PAGE: u64 = 1000;

/// The JSON array of an agent's messages from `first` on, a page at a time (keyset pagination on the
/// sequence number, so each page is an index range scan).
fn history_pages(
    db: sea_orm::DatabaseConnection,
    id: Uuid,
    first: Vec<agentstream_wire::StoredMessage>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, ApiError>> {
    enum State {
        Page(Vec<agentstream_wire::StoredMessage>, bool),
        Done,
    }
    futures_util::stream::unfold(State::Page(first, true), move |state| {
        let db = db.clone();
        async move {
            let State::Page(page, opening) = state else {
                return None;
            };
            let mut out = Vec::with_capacity(page.len() * 512 + 2);
            if opening {
                out.push(b'[');
            }
            for (i, m) in page.iter().enumerate() {
                if !(opening && i == 0) {
                    out.push(b',');
                }
                crate::json_text::push_message(&mut out, m);
            }
            let next = match page.last() {
                Some(last) if page.len() as u64 == PAGE => {
                    match store::find_since(&db, id, last.sequence_number, Some(PAGE)).await {
                        Ok(rows) if !rows.is_empty() => State::Page(rows, false),
                        Ok(_) => State::Done,
                        Err(e) => return Some((Err(ApiError::storage(&e)), State::Done)),
                    }
                }
                _ => State::Done,
            };
            if matches!(next, State::Done) {
                out.push(b']');
            }
            Some((Ok(bytes::Bytes::from(out)), next))
        }
    })
}

/// `DELETE /api/agents/{id}[?purge=true]`: 204.
#[utoipa::path(
    delete,
    path = "/api/agents/{id}",
    operation_id = "deleteAgent",
    summary = "Terminate an agent (and purge it)",
    tag = "agents",
    description = "Terminates the agent: stops its runner and its whole process tree if it runs, status \
                   `terminated`, history kept (also when it had ended already); with `purge`, then \
                   removes it and its history. Answers once it is stopped and its final status stored.",
    params(crate::openapi::params::AgentId, crate::openapi::params::DeleteQuery),
    responses(
        (status = 204, description = "Terminated (and purged when asked)."),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 500, response = crate::openapi::responses::StorageFailure),
        (status = 503, response = crate::openapi::responses::Unavailable),
    ),
)]
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let purge = match query.get("purge").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("purge must be true or false, got {other:?}"),
            ))
        }
    };
    if let Some(answered) = state.at_owner(&req, None, id).await? {
        return Ok(answered);
    }
    state
        .orchestrator
        .send(DeleteAgent {
            agent_id: id,
            purge,
        })
        .await??;
    Ok(HttpResponse::NoContent().finish())
}
