//! Errors: those of starting the server, and the Anthropic-shaped HTTP error responses.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use crate::ids;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host is not a loopback address; the fake must never be reachable from outside.
    #[error("refusing to listen on {0}: only loopback addresses are allowed")]
    NotLoopback(String),
    /// The host is not an IP address or `localhost`.
    #[error("invalid host {0:?}: expected an IP address or localhost")]
    BadHost(String),
    /// Binding or configuring the socket failed.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// What we tried to bind.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server thread could not be started or died before reporting readiness.
    #[error("server thread failed: {0}")]
    Thread(String),
}

/// An error answered in the API's JSON shape: `{"type":"error","error":{"type","message"},"request_id"}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {error_type}: {message}")]
pub struct ApiError {
    /// HTTP status (529 included, which is not a standard code).
    pub status: u16,
    /// `error.type`, e.g. `overloaded_error`.
    pub error_type: &'static str,
    /// `error.message`.
    pub message: String,
    /// Value for `retry-after`, if the scenario asked for one.
    pub retry_after: Option<String>,
}

impl ApiError {
    /// A 400 `invalid_request_error` (bad JSON, bad scenario parameters).
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            error_type: "invalid_request_error",
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 404 `not_found_error` for unknown routes.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            error_type: "not_found_error",
            message: message.into(),
            retry_after: None,
        }
    }

    /// The HTTP response, with `request-id`, and `x-should-retry` on 529 as the real API sends.
    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let request_id = ids::request_id();
        let mut builder = HttpResponse::build(status);
        builder.insert_header(("request-id", request_id.as_str()));
        // A value that is not a legal header (it comes from the prompt) is left out.
        if let Some(after) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            builder.insert_header((header::RETRY_AFTER, after));
        }
        if self.status == 529 {
            builder.insert_header(("x-should-retry", "true"));
        }
        builder.json(json!({
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
            "request_id": request_id,
        }))
    }
}
