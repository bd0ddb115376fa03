//! Authentication and exposure: who may use the API and the WebSocket. It exists because an agent can
//! run shell commands, so whoever drives the API drives this machine. One middleware ([`guard_api`] on
//! `/api`, [`guard_ws`] on `/ws`) applies, in order:
//!
//! 1. without a token, the `Host` must name this machine (no DNS rebinding) — `origin.rs`;
//! 2. a browser page of a foreign origin is refused (403), an allowed one gets CORS headers and its
//!    preflight answered — `origin.rs`;
//! 3. with a token, the request must carry it (401 otherwise) — `token.rs`.
//!
//! The static web app is public (it must load to ask for the token), and so is `GET /api/health`.
//! `GET /metrics` ([`guard_metrics`]) follows the same rules with its own token, `metrics.token`, when
//! one is set (a scraper then holds a credential that cannot drive agents), else the API's.
//! `exposure.rs` refuses, at start-up, a non-loopback address without a token.

pub mod exposure;
pub mod origin;
pub mod token;

use agentstream_wire::ErrorCode;
use std::path::PathBuf;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

use crate::configuration::Settings;
use crate::error::ApiError;
use origin::Verdict;
pub use token::ApiToken;
use token::Presented;

/// Why the security settings cannot be used; the server does not start.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(
        "refusing to listen on {host} without an API token: anyone who can reach this port could run \
         agents, and through them commands, on this machine. Set a token (auth.token, env \
         AGENTSTREAM__AUTH__TOKEN, at least 16 characters, e.g. `openssl rand -hex 32`), or listen on \
         127.0.0.1, or, on a trusted network only, pass --allow-public-without-token \
         (AGENTSTREAM__SERVER__ALLOW_PUBLIC_WITHOUT_TOKEN=true)"
    )]
    PublicWithoutToken { host: String },
    #[error(
        "the API token is too weak: {chars} characters, at least {min} are needed \
         (e.g. `openssl rand -hex 32`)",
        min = token::MIN_TOKEN_CHARS
    )]
    WeakToken { chars: usize },
    #[error("the API token must be printable ASCII without spaces, at most 512 characters")]
    BadTokenCharacters,
    #[error("set auth.token or auth.token_file, not both")]
    TwoTokens,
    #[error("cannot read the API token from auth.token_file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "server.allowed_origins: {0:?} is not an origin like https://host or http://host:port \
         (no path, no wildcard)"
    )]
    BadOrigin(String),
    /// `metrics.token` or `metrics.token_file` is unusable (the same rules as the API token's).
    #[error("metrics.token: {0}")]
    MetricsToken(Box<SecurityError>),
}

/// What the middleware enforces, built once from the settings.
#[derive(Clone, Debug)]
pub struct Policy {
    token: Option<ApiToken>,
    /// `metrics.token`: when set, `/metrics` takes it instead of the API token.
    metrics_token: Option<ApiToken>,
    allowed_origins: Vec<String>,
    /// No token and not public: the `Host` must be this machine's (DNS rebinding).
    local_hosts_only: bool,
}

impl Policy {
    /// Checks the settings: the token's strength, the origins' form, and that a non-loopback address
    /// has a token (or the explicit override).
    pub fn from_settings(settings: &Settings) -> Result<Policy, SecurityError> {
        let token = ApiToken::load(&settings.auth.token, &settings.auth.token_file)?;
        let server = &settings.server;
        exposure::check(
            &server.host,
            token.is_some(),
            server.allow_public_without_token,
        )?;
        Ok(Policy {
            local_hosts_only: token.is_none() && !server.allow_public_without_token,
            allowed_origins: origin::parse_allowed(&server.allowed_origins)?,
            token,
            metrics_token: ApiToken::load(&settings.metrics.token, &settings.metrics.token_file)
                .map_err(|e| SecurityError::MetricsToken(Box::new(e)))?,
        })
    }

    /// The token a request to `surface` must carry, if any.
    fn token_for(&self, surface: Surface) -> Option<&ApiToken> {
        match surface {
            Surface::Metrics => self.metrics_token.as_ref().or(self.token.as_ref()),
            Surface::Api | Surface::Streaming => self.token.as_ref(),
        }
    }

    /// Whether requests need a token.
    pub fn requires_token(&self) -> bool {
        self.token.is_some()
    }
}

/// Which endpoint a request is for: only the WebSocket and the event streams take `?token=` (a
/// browser's `WebSocket` and `EventSource` cannot send a header).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Surface {
    Api,
    /// `/ws` and the event streams.
    Streaming,
    /// `/metrics`: a header only, like the REST API.
    Metrics,
}

/// Whether `path` is one of the event streams (`/api/events`, `/api/agents/{id}/events`).
fn is_event_stream(path: &str) -> bool {
    path == "/api/events"
        || path
            .strip_prefix("/api/agents/")
            .and_then(|rest| rest.strip_suffix("/events"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The middleware of `/api`.
pub async fn guard_api(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let surface = if is_event_stream(req.path()) {
        Surface::Streaming
    } else {
        Surface::Api
    };
    guard(req, next, surface).await
}

/// The middleware of `/ws`.
pub async fn guard_ws(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    guard(req, next, Surface::Streaming).await
}

/// The middleware of `/metrics`.
pub async fn guard_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    guard(req, next, Surface::Metrics).await
}

async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    surface: Surface,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(policy) = req.app_data::<web::Data<Policy>>().cloned() else {
        // Fail closed: never serve the API unguarded.
        tracing::error!("the security policy is not installed");
        return Ok(refuse(req, ApiError::unavailable(), None));
    };
    let host = header_str(req.headers(), header::HOST);
    let host = host.as_deref();
    if policy.local_hosts_only && !origin::is_local_host(host, &policy.allowed_origins) {
        tracing::warn!(
            host = host.unwrap_or(""),
            path = req.path(),
            "refused: foreign Host"
        );
        let error = ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::HostNotAllowed,
            "this server answers only requests addressed to it by a local name or an IP address",
        );
        return Ok(refuse(req, error, None));
    }
    let origin = header_str(req.headers(), header::ORIGIN);
    let cors = match origin::judge(origin.as_deref(), host, &policy.allowed_origins) {
        Verdict::Foreign => {
            tracing::warn!(
                origin = origin.as_deref().unwrap_or(""),
                path = req.path(),
                "refused: foreign Origin"
            );
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::OriginNotAllowed,
                "requests from pages of this origin are not allowed (setting server.allowed_origins)",
            );
            return Ok(refuse(req, error, None));
        }
        Verdict::Allowed => origin.and_then(|o| HeaderValue::from_str(&o).ok()),
        Verdict::Absent | Verdict::SameOrigin => None,
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if let (true, Some(allowed)) = (preflight, &cors) {
        let response = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, DELETE"))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .finish();
        let mut response = req.into_response(response);
        add_cors(response.headers_mut(), allowed);
        return Ok(response);
    }
    if let Some(token) = policy.token_for(surface) {
        if let Err(error) = authenticate(&req, token, surface) {
            tracing::warn!(
                peer = ?req.peer_addr(),
                path = req.path(),
                reason = error.message,
                "refused: no valid API token"
            );
            return Ok(refuse(req, error, cors.as_ref()));
        }
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    if let Some(allowed) = &cors {
        add_cors(response.headers_mut(), allowed);
    }
    Ok(response)
}

/// 401 `unauthorized` unless the request carries the token where `surface` accepts it.
fn authenticate(req: &ServiceRequest, token: &ApiToken, surface: Surface) -> Result<(), ApiError> {
    let how = match surface {
        Surface::Api | Surface::Metrics => "send it as `Authorization: Bearer <token>`",
        Surface::Streaming => "send it as `Authorization: Bearer <token>` or `?token=<token>`",
    };
    let (message, challenge) = match presented(req, surface) {
        Presented::Token(t) if token.verify(&t) => return Ok(()),
        Presented::Token(_) => (
            "the API token is not valid".to_owned(),
            "Bearer realm=\"agentstream\", error=\"invalid_token\"",
        ),
        Presented::Missing => (
            format!("this server needs an API token: {how}"),
            "Bearer realm=\"agentstream\"",
        ),
        Presented::WrongScheme => (
            format!("only the Bearer scheme is accepted: {how}"),
            "Bearer realm=\"agentstream\", error=\"invalid_request\"",
        ),
        Presented::QueryNotAccepted => (
            format!("a token in the URL is accepted only on /ws and the event streams: {how}"),
            "Bearer realm=\"agentstream\", error=\"invalid_request\"",
        ),
    };
    Err(
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        ),
    )
}

fn presented(req: &ServiceRequest, surface: Surface) -> Presented {
    token::presented(req, surface == Surface::Streaming)
}

/// The error as the response, with CORS headers when the page's origin is allowed (so that it can read
/// why).
fn refuse(
    req: ServiceRequest,
    error: ApiError,
    cors: Option<&HeaderValue>,
) -> ServiceResponse<BoxBody> {
    let mut response = req.into_response(error.error_response());
    if let Some(allowed) = cors {
        add_cors(response.headers_mut(), allowed);
    }
    response
}

/// CORS headers for an allowed origin. No credentials: the API takes no cookie.
fn add_cors(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, www-authenticate"),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

/// A header as text; one that is not visible ASCII reads as `null`, which matches no origin and no host
/// (fail closed).
fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("null").to_owned())
}
