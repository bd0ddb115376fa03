//! `GET /metrics`: every family in the Prometheus text format, behind [`security::guard_metrics`]
//! (the API's rules, with `metrics.token` when one is set).

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, HttpResponse};

use super::{agents, Metrics};
use crate::api::{method_not_allowed, AppState};
use crate::security;

/// Mounts `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .wrap(actix_web::middleware::from_fn(security::guard_metrics))
            .route(web::get().to(scrape))
            .default_service(web::to(method_not_allowed)),
    );
}

/// How long a scrape waits for the count of agents; past it the family is left out of that scrape
/// (Prometheus's own timeout is 10 s by default).
const COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    tag = "server",
    description = "The server's metrics in the Prometheus text format (version 0.0.4): docs/metrics.md. \
                   The API's token as a `Bearer` header, or `metrics.token` when the server sets one.",
    responses((status = 200, description = "Every family.", content_type = "text/plain", body = String)),
)]
pub(crate) async fn scrape(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> HttpResponse {
    let counted = tokio::time::timeout(COUNT_TIMEOUT, agents::count(&state.db)).await;
    let extra = match counted {
        Ok(Ok(counts)) => agents::family(&counts).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the agents family could not be made");
            Vec::new()
        }),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: the agents could not be counted");
            metrics.database_error("count_agents");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("metrics: counting the agents took too long");
            metrics.database_error("count_agents");
            Vec::new()
        }
    };
    match tokio::time::timeout(COUNT_TIMEOUT, webhook_lags(&state.db)).await {
        Ok(Ok(lags)) => metrics.set_webhook_lags(&lags),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: the webhooks' lag could not be read");
            metrics.database_error("webhook_lag");
        }
        Err(_) => {
            tracing::warn!("metrics: reading the webhooks' lag took too long");
            metrics.database_error("webhook_lag");
        }
    }
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .body(metrics.render(extra))
}

/// Each webhook consumer's lag, as `GET /api/webhooks` shows it.
async fn webhook_lags(
    db: &sea_orm::DatabaseConnection,
) -> Result<Vec<(String, i64)>, sea_orm::DbErr> {
    let mut lags = Vec::new();
    for row in crate::webhooks::store::list(db).await? {
        let lag = crate::webhooks::store::lag(db, &row).await?;
        lags.push((row.id, lag));
    }
    Ok(lags)
}
