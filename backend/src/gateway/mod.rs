//! The gateway: the endpoint `/ws` (a session actor per socket), the Server-Sent Events streams under
//! `/api` (`event_stream`), and the room registry that fans events out to both.

pub mod event_stream;
pub mod registry;
pub mod session;

use std::time::Duration;

use actix::Addr;
use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, Error, HttpRequest, HttpResponse, ResponseError};
use actix_web_actors::ws;
use agentstream_wire::{ErrorBody, ErrorCode, ErrorInfo};
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;

use crate::configuration::WebSocketSettings;
use crate::error::ApiError;
use crate::limits::ConnectionLimit;
use crate::metrics::Metrics;
pub use registry::{EventFrame, RoomRegistry};
pub use session::WsSession;

/// What a WebSocket upgrade needs.
#[derive(Clone)]
pub struct GatewayState {
    pub registry: Addr<RoomRegistry>,
    pub db: DatabaseConnection,
    pub settings: WebSocketSettings,
    /// `websocket.max_connections`, shared by every worker.
    pub connections: ConnectionLimit,
    /// What the sessions and streams count (messages delivered, database errors).
    pub metrics: Metrics,
}

/// `GET /ws`: upgrades to a WebSocket served by a new [`WsSession`], if there is room for one more (429
/// `too_many_connections` otherwise). A request that is not a valid upgrade gets the handshake's status
/// and headers (400, or 426 with the supported version) with the protocol's JSON error body
/// (`invalid_upgrade`), like every other error, instead of an empty body.
#[utoipa::path(
    get,
    path = "/ws",
    operation_id = "websocket",
    summary = "The WebSocket",
    tag = "streams",
    description = "The WebSocket: text frames, each a JSON object `{\"event\", \"data\"}`. A client sends \
                   `ClientFrame`s (`subscribe` with `since`, `unsubscribe`); the server sends \
                   `ServerEvent`s (`subscribed`, the replayed and live `agent:message`s, the lifecycle \
                   events, `error`). Close codes and recovery: PROTOCOL.md.",
    params(crate::openapi::params::WebSocketHandshake),
    security(("bearerAuth" = []), ("tokenQuery" = [])),
    responses(
        (status = 101, description = "Switching Protocols: the socket is open; frames are `ClientFrame` and `ServerEvent`."),
        (status = 400, description = "Not a valid WebSocket upgrade (`invalid_upgrade`).", body = agentstream_wire::ErrorBody),
        (status = 426, description = "An unsupported WebSocket version (`invalid_upgrade`), with `Sec-WebSocket-Version: 13`.", body = agentstream_wire::ErrorBody),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
    ),
)]
pub async fn ws_route(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Error> {
    let Some(permit) = state.connections.try_acquire() else {
        tracing::warn!(
            open = state.connections.open(),
            "refused a websocket: too many open"
        );
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyConnections,
            "this server has as many WebSockets open as it allows; try again later",
        )
        .retry_after(Duration::from_secs(5));
        return Ok(error.error_response());
    };
    // The permit rides in the socket's input stream, which the session owns until it stops: the place
    // is freed when the socket closes, however it closes.
    let stream = stream.map(move |chunk| {
        permit.hold();
        chunk
    });
    let session = WsSession::new(
        state.registry.clone(),
        state.db.clone(),
        state.settings.clone(),
        state.metrics.clone(),
    );
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(state.settings.max_frame_bytes)
        .start()
        .or_else(|e| Ok(invalid_upgrade(&e)))
}

/// The JSON error form of a failed handshake, keeping the status and headers it would have had.
fn invalid_upgrade(e: &Error) -> HttpResponse {
    let body = ErrorBody {
        error: ErrorInfo::new(
            ErrorCode::InvalidUpgrade,
            format!("/ws needs a WebSocket upgrade: {e}"),
        ),
    };
    let json = serde_json::to_string(&body).unwrap_or_default();
    let mut response = e.error_response().set_body(json);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.map_into_boxed_body()
}
