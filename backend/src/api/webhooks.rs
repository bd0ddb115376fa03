//! `/api/webhooks…` handlers: register, list, see, change (pause, resume, URL, secret, filters) and
//! remove webhook consumers. The secret is never shown.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use agentstream_wire::{CreateWebhookRequest, ErrorCode, UpdateWebhookRequest, Webhook};
use uuid::Uuid;

use super::agents::parse_id;
use super::AppState;
use crate::error::ApiError;
use crate::webhooks::{store, validate, Webhooks};

/// Largest body of a create or change (ids and a URL: far below the server's own limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The request in `body`, each field of the wrong type refused with the code of its field (serde's
/// own message would not name it).
fn request<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "the body must be a JSON object",
        ));
    };
    for (key, value) in object {
        let strings = |v: &serde_json::Value| {
            v.is_null()
                || v.as_array()
                    .is_some_and(|a| a.iter().all(|e| e.is_string()))
        };
        let (ok, code, wanted) = match key.as_str() {
            "url" => (
                value.is_string() || value.is_null(),
                ErrorCode::InvalidUrl,
                "a string",
            ),
            "secret" => (
                value.is_string() || value.is_null(),
                ErrorCode::InvalidSecret,
                "a string",
            ),
            "agentIds" => (
                strings(value),
                ErrorCode::InvalidAgentIds,
                "an array of UUID strings or null",
            ),
            "events" => (
                strings(value),
                ErrorCode::InvalidEvents,
                "an array of event names or null",
            ),
            "paused" => (
                value.is_boolean() || value.is_null(),
                ErrorCode::InvalidBody,
                "true or false",
            ),
            _ => (true, ErrorCode::InvalidBody, ""),
        };
        if !ok {
            return Err(ApiError::bad_request(
                code,
                format!("{key}: must be {wanted}"),
            ));
        }
    }
    serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("the body is not a valid request: {e}"),
        )
    })
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::WebhookNotFound,
        format!("no webhook with id {id}"),
    )
}

/// A consumer as the API shows it, its lag counted now.
async fn view(state: &AppState, row: entity::webhook::Model) -> Result<Webhook, ApiError> {
    let lag = store::lag(&state.db, &row).await?;
    Ok(Webhook {
        id: Uuid::parse_str(&row.id).unwrap_or_default(),
        agent_ids: store::agent_ids(&row),
        events: store::events(&row),
        last_error: store::failure(&row),
        url: row.url,
        paused: row.paused,
        created_at: row.created_at,
        lag,
        last_delivered_at: row.last_delivered_at,
        attempts: row.attempts,
        next_retry_at: row.next_retry_at,
    })
}

/// `POST /api/webhooks`: 201 with the consumer; it gets what is stored from now on.
#[utoipa::path(
    post,
    path = "/api/webhooks",
    operation_id = "createWebhook",
    summary = "Register a webhook consumer",
    tag = "webhooks",
    request_body(content = agentstream_wire::CreateWebhookRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The consumer; it gets what is stored from now on.", body = agentstream_wire::Webhook),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 500, response = crate::openapi::responses::StorageFailure),
    ),
)]
pub async fn create(
    state: web::Data<AppState>,
    hooks: web::Data<Webhooks>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let request: CreateWebhookRequest = request(body.into_inner())?;
    let url = hooks.rules.url(&request.url)?;
    let secret = validate::secret(request.secret)?;
    let agent_ids = hooks.rules.agent_ids(request.agent_ids)?;
    let events = validate::events(request.events)?;
    if store::count(&state.db).await? >= hooks.max_consumers {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::TooManyWebhooks,
            format!(
                "there are {} webhooks already, the most this server keeps (webhooks.max_consumers)",
                hooks.max_consumers
            ),
        ));
    }
    let (agent_ids, events) = store::filter_columns(agent_ids.as_deref(), events.as_deref());
    let id = Uuid::now_v7();
    let row = entity::webhook::Model {
        id: id.to_string(),
        url,
        secret,
        agent_ids,
        events,
        paused: false,
        revision: 0,
        owner: hooks.owner.clone(),
        created_at: crate::clock::now(),
        last_error: None,
        last_error_at: None,
        last_delivered_at: None,
        attempts: 0,
        next_retry_at: None,
    };
    store::create(&state.db, row).await?;
    hooks.sync().await;
    let row = store::find(&state.db, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Created().json(view(&state, row).await?))
}

/// `GET /api/webhooks`: every consumer, oldest first.
#[utoipa::path(
    get,
    path = "/api/webhooks",
    operation_id = "listWebhooks",
    summary = "Every webhook consumer, oldest first",
    tag = "webhooks",
    responses(
        (status = 200, description = "Every consumer, its lag counted now.", body = Vec<agentstream_wire::Webhook>),
        (status = 500, response = crate::openapi::responses::StorageFailure),
    ),
)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut out = Vec::new();
    for row in store::list(&state.db).await? {
        out.push(view(&state, row).await?);
    }
    Ok(HttpResponse::Ok().json(out))
}

/// `GET /api/webhooks/{id}`.
#[utoipa::path(
    get,
    path = "/api/webhooks/{id}",
    operation_id = "getWebhook",
    summary = "Get a webhook consumer",
    tag = "webhooks",
    params(crate::openapi::params::WebhookId),
    responses(
        (status = 200, description = "The consumer.", body = agentstream_wire::Webhook),
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
    let row = store::find(&state.db, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(view(&state, row).await?))
}

/// `PATCH /api/webhooks/{id}`: changes what the body holds, checked as at creation; 200 with the
/// consumer. Its deliveries start over with the change (a delivery under way may be sent again).
#[utoipa::path(
    patch,
    path = "/api/webhooks/{id}",
    operation_id = "updateWebhook",
    summary = "Change a webhook consumer",
    tag = "webhooks",
    params(crate::openapi::params::WebhookId),
    request_body(content = agentstream_wire::UpdateWebhookRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The consumer, changed.", body = agentstream_wire::Webhook),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 500, response = crate::openapi::responses::StorageFailure),
    ),
)]
pub async fn update(
    state: web::Data<AppState>,
    hooks: web::Data<Webhooks>,
    path: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let request: UpdateWebhookRequest = request(body.into_inner())?;
    let url = request.url.map(|u| hooks.rules.url(&u)).transpose()?;
    let secret = request.secret.map(validate::secret).transpose()?;
    let agent_ids = request
        .agent_ids
        .map(|ids| hooks.rules.agent_ids(ids))
        .transpose()?;
    let events = request.events.map(validate::events).transpose()?;
    let mut row = store::find(&state.db, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if let Some(url) = url {
        row.url = url;
    }
    if let Some(secret) = secret {
        row.secret = secret;
    }
    let mut agents_changed = false;
    if let Some(ids) = agent_ids {
        let (column, _) = store::filter_columns(ids.as_deref(), None);
        agents_changed = column != row.agent_ids;
        row.agent_ids = column;
    }
    if let Some(events) = events {
        row.events = store::filter_columns(None, events.as_deref()).1;
    }
    if let Some(paused) = request.paused {
        row.paused = paused;
    }
    row.revision += 1;
    store::update(&state.db, row, agents_changed).await?;
    hooks.sync().await;
    let row = store::find(&state.db, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(view(&state, row).await?))
}

/// `DELETE /api/webhooks/{id}`: 204; its deliveries stop at once (on this instance; another
/// instance delivering it stops within a second).
#[utoipa::path(
    delete,
    path = "/api/webhooks/{id}",
    operation_id = "deleteWebhook",
    summary = "Remove a webhook consumer",
    tag = "webhooks",
    params(crate::openapi::params::WebhookId),
    responses(
        (status = 204, description = "Removed; its deliveries stop."),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 500, response = crate::openapi::responses::StorageFailure),
    ),
)]
pub async fn delete(
    hooks: web::Data<Webhooks>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    if hooks.delete(id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found(id))
    }
}
