//! The one error type REST handlers return, rendered as the protocol's
//! `{"error": {"code", "message"}}` with a 4xx/5xx status.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use agentstream_wire::{ErrorBody, ErrorCode, ErrorInfo};
use sea_orm::DbErr;

/// An error a client sees: a status, a stable snake_case code and a sentence.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Headers the answer needs besides its body (`Retry-After` of a 429, `WWW-Authenticate` of a 401).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Made of a failed database query of the handler's own ([`ApiError::storage`]), which
    /// `agentstream_database_errors_total{operation="api_read"}` counts.
    pub database_failure: bool,
}

impl ApiError {
    /// Any error.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
            database_failure: false,
        }
    }

    /// The same error, answered with one more header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The same error, telling the client how many seconds to wait (`Retry-After`, at least 1).
    pub fn retry_after(self, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.with_header(
            actix_web::http::header::RETRY_AFTER,
            HeaderValue::from(secs.max(1)),
        )
    }

    /// 400 with a code.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `agent_not_found`.
    pub fn agent_not_found(id: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::AgentNotFound,
            format!("no agent with id {id}"),
        )
    }

    /// 500 `storage_error`: the database failed. The detail goes to the log, not to the client.
    pub fn storage(err: &DbErr) -> Self {
        tracing::error!(error = %err, "database error");
        ApiError {
            database_failure: true,
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::StorageError,
                "the database failed; nothing was changed",
            )
        }
    }

    /// 503 `unavailable`: an internal actor is gone (the server is shutting down).
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the server is shutting down",
        )
    }

    /// The protocol's error info.
    pub fn info(&self) -> ErrorInfo {
        ErrorInfo::new(self.code, self.message.clone())
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        ApiError::storage(&err)
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        ApiError::unavailable()
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.json(ErrorBody { error: self.info() })
    }
}
