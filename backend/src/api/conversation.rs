//! Talking to an agent: `POST /api/agents/{id}/messages` (a follow-up), `POST …/interrupt` and
//! `POST …/permissions/{requestId}`. Each checks what it is given and hands it to the orchestrator,
//! which routes it to the agent's actor (`agents::conversation`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use agentstream_wire::{ErrorCode, PermissionAnswer, SendMessageRequest};

use super::agents::parse_id;
use super::AppState;
use crate::agents::{AnswerAgentPermission, InterruptAgent, SendFollowUp};
use crate::error::ApiError;
use crate::parser::claude::is_plain_id;
use crate::runners::{CannotContinue, Continuation};
use crate::store;

/// Longest permission request id accepted in a path (the agent's ids are far shorter).
const MAX_REQUEST_ID_BYTES: usize = 200;

/// Checks a text a client sends to an agent: not empty, no NUL, at most `max` bytes.
fn check_text(what: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "the {what} is {} bytes; at most {max} are accepted",
                text.len()
            ),
        ));
    }
    if text.contains('\0') {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("the {what} contains a NUL character"),
        ));
    }
    Ok(())
}

/// `POST /api/agents/{id}/messages` `{"content"}`: 202 with the stored message (`user`,
/// `user_input`). To a running agent it is written at once (during a turn, it becomes the next
/// turn); to an agent whose turn has ended, it starts the next turn of the same session.
#[utoipa::path(
    post,
    path = "/api/agents/{id}/messages",
    operation_id = "sendMessage",
    summary = "Send a follow-up",
    tag = "conversation",
    description = "A follow-up: stored as the agent's next message (`user`, `metadata.eventType` \
                   `user_input`), then written to it; to an agent whose turn has ended it starts the next \
                   turn of the same session. `content`: not blank, no NUL, at most \
                   `agents.max_prompt_bytes` bytes.",
    params(crate::openapi::params::AgentId),
    request_body(content = SendMessageRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "The follow-up, as stored.", body = agentstream_wire::StoredMessage),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
        (status = 500, response = crate::openapi::responses::StorageFailure),
        (status = 501, response = crate::openapi::responses::NotImplemented),
        (status = 503, response = crate::openapi::responses::Unavailable),
    ),
)]
pub async fn send(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<SendMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let body = body.into_inner();
    let content = body.content.clone();
    if content.trim().is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "content must not be empty",
        ));
    }
    check_text("content", &content, state.settings.agents.max_prompt_bytes)?;
    let agent = store::find_agent(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::agent_not_found(id))?;
    if let Err(CannotContinue::Unsupported(agent_type)) = Continuation::supported(agent.agent_type)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ConversationUnsupported,
            format!("agents of type {agent_type} cannot be sent follow-ups"),
        ));
    }
    if let Some(answered) = state.at_owner(&req, Some(&json(&body)), id).await? {
        return Ok(answered);
    }
    let stored = state
        .orchestrator
        .send(SendFollowUp {
            agent_id: id,
            content,
            origin: None,
        })
        .await??;
    Ok(HttpResponse::Accepted().json(stored))
}

/// `POST /api/agents/{id}/interrupt`: 202 with the agent; its turn ends `interrupted` shortly, its
/// session kept for the next follow-up. 409 `not_running` when no turn is under way.
#[utoipa::path(
    post,
    path = "/api/agents/{id}/interrupt",
    operation_id = "interruptAgent",
    summary = "Interrupt the current turn",
    tag = "conversation",
    description = "Stops the agent's current turn, keeping its session: the turn ends `interrupted`, the \
                   next follow-up continues it. No turn under way: 409 `not_running`.",
    params(crate::openapi::params::AgentId),
    responses(
        (status = 202, description = "The agent; its turn ends shortly.", body = agentstream_wire::Agent),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 500, response = crate::openapi::responses::StorageFailure),
        (status = 503, response = crate::openapi::responses::Unavailable),
    ),
)]
pub async fn interrupt(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    if store::find_agent(&state.db, id).await?.is_none() {
        return Err(ApiError::agent_not_found(id));
    }
    if let Some(answered) = state.at_owner(&req, None, id).await? {
        return Ok(answered);
    }
    state
        .orchestrator
        .send(InterruptAgent { agent_id: id })
        .await??;
    let agent = store::find_agent(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::agent_not_found(id))?;
    Ok(HttpResponse::Accepted().json(agent))
}

/// `POST /api/agents/{id}/permissions/{requestId}` `{"decision", "message"?, "updatedInput"?,
/// "always"?}`: 200 with the stored answer (`user`, `permission_response`). The first answer wins: a
/// later one gets 409 `permission_not_pending`; an id the agent never asked, 404
/// `permission_not_found`.
#[utoipa::path(
    post,
    path = "/api/agents/{id}/permissions/{requestId}",
    operation_id = "answerPermission",
    summary = "Answer a permission request",
    tag = "conversation",
    description = "Answers the agent's request to run a tool (a `permission_request` message): stored as \
                   a `permission_response` message, and the agent goes on. The first answer wins.",
    params(crate::openapi::params::PermissionPath),
    request_body(content = PermissionAnswer, content_type = "application/json"),
    responses(
        (status = 200, description = "The answer, as stored.", body = agentstream_wire::StoredMessage),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 500, response = crate::openapi::responses::StorageFailure),
        (status = 503, response = crate::openapi::responses::Unavailable),
    ),
)]
pub async fn answer(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<PermissionAnswer>,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, request_id) = path.into_inner();
    let id = parse_id(&raw_id)?;
    let answer = body.into_inner();
    if let Some(input) = &answer.updated_input {
        if !input.is_object() {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "updatedInput must be a JSON object (the tool's input)",
            ));
        }
    }
    if let Some(message) = &answer.message {
        check_text("message", message, state.settings.agents.max_prompt_bytes)?;
    }
    if store::find_agent(&state.db, id).await?.is_none() {
        return Err(ApiError::agent_not_found(id));
    }
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::PermissionNotFound,
            format!("the agent was asked no permission {request_id:?}"),
        )
    };
    if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID_BYTES || !is_plain_id(&request_id)
    {
        return Err(not_found());
    }
    if let Some(answered) = state.at_owner(&req, Some(&json(&answer)), id).await? {
        return Ok(answered);
    }
    let answered = state
        .orchestrator
        .send(AnswerAgentPermission {
            agent_id: id,
            request_id: request_id.clone(),
            answer,
        })
        .await?;
    match answered {
        Ok(stored) => Ok(HttpResponse::Ok().json(stored)),
        // Not open in a live agent: asked once (answered, or its turn or run ended), or never.
        Err(e) if e.code == ErrorCode::PermissionNotFound => {
            if store::permission_requested(&state.db, id, &request_id).await? {
                Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::PermissionNotPending,
                    format!(
                        "the permission request {request_id:?} is not waiting for an answer (answered already, or its turn ended)"
                    ),
                ))
            } else {
                Err(not_found())
            }
        }
        Err(e) => Err(e),
    }
}

/// A request body as JSON, to forward it to the agent's owner.
fn json(body: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(body).unwrap_or(serde_json::Value::Null)
}
