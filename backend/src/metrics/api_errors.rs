//! The REST handlers' failed database reads, counted as
//! `agentstream_database_errors_total{operation="api_read"}`. Every such failure becomes an
//! [`ApiError`] made by [`ApiError::storage`]; a middleware on `/api` finds it on the response, so no
//! handler has to remember to count. (Writes are counted by the persistence actor, under their own
//! operations.)

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use super::Metrics;
use crate::error::ApiError;

/// The middleware.
pub async fn count(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let response = next.call(req).await?;
    let failed = response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
        .is_some_and(|e| e.database_failure);
    if let (true, Some(metrics)) = (failed, metrics) {
        metrics.database_error("api_read");
    }
    Ok(response)
}
