//! The REST API under `/api`, every error in the protocol's JSON form.

pub mod agents;
pub mod conversation;
pub mod export;
pub mod usage;
pub mod webhooks;

use std::sync::Arc;

use actix::Addr;
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use agentstream_wire::{ErrorCode, Health};
use sea_orm::DatabaseConnection;

use crate::agents::Orchestrator;
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::limits::LaunchRate;
use crate::security;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub orchestrator: Addr<Orchestrator>,
    pub settings: Arc<Settings>,
    /// `agents.launches_per_minute`.
    pub launches: Arc<LaunchRate>,
    /// The other instances of the database (PostgreSQL): commands go to each agent's owner.
    pub peers: Option<Arc<crate::instances::route::Peers>>,
}

impl AppState {
    /// The owner's answer to the command `req` about `agent` when another instance owns it; `None`
    /// when this one answers.
    pub async fn at_owner(
        &self,
        req: &HttpRequest,
        body: Option<&serde_json::Value>,
        agent: uuid::Uuid,
    ) -> Result<Option<HttpResponse>, ApiError> {
        use crate::instances::route::{to_owner, Route};
        let Some(peers) = &self.peers else {
            return Ok(None);
        };
        Ok(match to_owner(peers, req, body, agent).await? {
            Route::Here => None,
            Route::Answered(response) => Some(response),
        })
    }
}

/// Mounts `/api`: `GET /api/health` (and the API's description) open to anyone (it says nothing but "ok"; Docker's health check and
/// load balancers have no token), everything else behind [`security::guard_api`].
pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    cfg.service(
        web::resource("/api/health")
            .route(web::get().to(health))
            .default_service(web::to(method_not_allowed)),
    );
    // `/api/openapi.json` and `/api/docs`, open like the health check.
    crate::openapi::configure(cfg);
    cfg.service(
        web::scope("/api")
            .wrap(actix_web::middleware::from_fn(security::guard_api))
            .wrap(actix_web::middleware::from_fn(
                crate::metrics::api_errors::count,
            ))
            .app_data(
                web::JsonConfig::default()
                    .limit(settings.server.max_body_bytes)
                    // curl -d sends a form content type; the body is JSON all the same.
                    .content_type_required(false)
                    .error_handler(json_error),
            )
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::bad_request(ErrorCode::InvalidPath, e.to_string()).into()
            }))
            .service(
                web::resource("/events")
                    .route(web::get().to(crate::gateway::event_stream::all_events))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/agents/{id}/events")
                    .route(web::get().to(crate::gateway::event_stream::agent_events))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/agent-types")
                    .route(web::get().to(agents::types))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/agents")
                    .route(web::get().to(agents::list))
                    .route(web::post().to(agents::create))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/agents/{id}")
                    .route(web::get().to(agents::get))
                    .route(web::delete().to(agents::delete))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/agents/{id}/messages")
                    .route(web::get().to(agents::messages))
                    .route(web::post().to(conversation::send))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/agents/{id}/export")
                    .route(web::get().to(export::export))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/agents/{id}/interrupt")
                    .route(web::post().to(conversation::interrupt))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/agents/{id}/permissions/{request_id}")
                    .route(web::post().to(conversation::answer))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/usage")
                    .route(web::get().to(usage::usage))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/webhooks")
                    .app_data(webhooks_json())
                    .route(web::get().to(webhooks::list))
                    .route(web::post().to(webhooks::create))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/webhooks/{id}")
                    .app_data(webhooks_json())
                    .route(web::get().to(webhooks::get))
                    .route(web::patch().to(webhooks::update))
                    .route(web::delete().to(webhooks::delete))
                    .default_service(web::to(method_not_allowed)),
            )
            .default_service(web::to(not_found)),
    );
}

/// How long the health check waits for the database.
const HEALTH_DATABASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /api/health`: 200 `ok` when the database answers a trivial query in time, else 503
/// `unavailable` (a load balancer then sends clients to another instance). Open to anyone: it says
/// which instance answered and whether its database is up, nothing else.
#[utoipa::path(
    get,
    path = "/api/health",
    operation_id = "health",
    summary = "Health check",
    tag = "server",
    security(()),
    description = "Open to anyone (a load balancer's check). Several instances on PostgreSQL add \
                   `listener` and `lease`; either one down is also 503.",
    responses(
        (status = 200, description = "`ok`: the database answered within 2 s.", body = Health),
        (status = 503, description = "`unavailable`: the database did not answer in time (or, with several instances, the listener or the lease is down).", body = Health),
    ),
)]
pub(crate) async fn health(state: web::Data<AppState>) -> HttpResponse {
    use sea_orm::ConnectionTrait;
    let backend = state.db.get_database_backend();
    let probe = state
        .db
        .execute(sea_orm::Statement::from_string(backend, "SELECT 1"));
    let database_up = matches!(
        tokio::time::timeout(HEALTH_DATABASE_TIMEOUT, probe).await,
        Ok(Ok(_))
    );
    let word = |up: bool, yes: &str, no: &str| Some(if up { yes } else { no }.to_owned());
    let listener_up = state.peers.as_ref().map(|p| p.listener_up());
    let lease_held = state.peers.as_ref().map(|p| p.lease_held());
    // An instance that cannot write, or hears nothing of the others, is no place for a client.
    let up = database_up && listener_up != Some(false) && lease_held != Some(false);
    let body = Health {
        status: if up { "ok" } else { "unavailable" }.to_owned(),
        instance: Some(state.settings.instance.id.clone()),
        database: word(database_up, "up", "down"),
        listener: listener_up.and_then(|up| word(up, "up", "down")),
        lease: lease_held.and_then(|held| word(held, "held", "lost")),
    };
    if up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Any unknown path under `/api`.
pub async fn not_found(req: HttpRequest) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no such endpoint: {} {}", req.method(), req.path()),
    )
}

/// Any other method on a known path (also `/ws`, which only upgrades GETs), with the `Allow` header
/// RFC 9110 asks of a 405: the methods the OpenAPI document gives the path.
pub async fn method_not_allowed(req: HttpRequest) -> ApiError {
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.path()),
    );
    let allowed = req
        .match_pattern()
        .and_then(|pattern| crate::openapi::allowed_methods(&pattern))
        .and_then(|methods| actix_web::http::header::HeaderValue::from_str(methods).ok());
    match allowed {
        Some(methods) => error.with_header(actix_web::http::header::ALLOW, methods),
        None => error,
    }
}

/// The JSON bodies of `/api/webhooks`: small, bounded below the server's own limit.
fn webhooks_json() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(webhooks::MAX_BODY_BYTES)
        .content_type_required(false)
        .error_handler(json_error)
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        ),
        JsonPayloadError::Deserialize(e) => ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("the body is not a valid request: {e}"),
        ),
        other => ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("the body could not be read: {other}"),
        ),
    };
    api.into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(
        ErrorCode::InvalidQuery,
        format!("the query string is not valid: {err}"),
    )
    .into()
}
