//! The seed's AgentGateway: the WebSocket endpoint `/ws`, a session actor per socket, and the room
//! registry that fans events out to them.

pub mod registry;
pub mod session;

use actix::Addr;
use actix_web::{web, Error, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use sea_orm::DatabaseConnection;

use crate::configuration::WebSocketSettings;
pub use registry::{Event, RoomRegistry};
pub use session::WsSession;

/// What a WebSocket upgrade needs.
#[derive(Clone)]
pub struct GatewayState {
    pub registry: Addr<RoomRegistry>,
    pub db: DatabaseConnection,
    pub settings: WebSocketSettings,
}

/// `GET /ws`: upgrades to a WebSocket served by a new [`WsSession`].
pub async fn ws_route(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Error> {
    let session = WsSession::new(
        state.registry.clone(),
        state.db.clone(),
        state.settings.clone(),
    );
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(state.settings.max_frame_bytes)
        .start()
}
