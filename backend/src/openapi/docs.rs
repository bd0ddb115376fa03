//! `/api/docs`: a page that renders `GET /api/openapi.json` with Swagger UI, every file of it compiled
//! into the binary (the pinned `swagger-ui-dist` bundle in `backend/assets/vendor/`, fetched by
//! `scripts/vendor-swagger-ui`; the page, its script and style in `backend/assets/docs/`), so that it
//! works wherever the server runs and loads nothing from another host — its Content-Security-Policy
//! allows this server only.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

/// Only this server: scripts and styles are files (no inline script), images the bundle's `data:` icons.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// The page's files: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/swagger-ui-dist/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/swagger-ui-dist/swagger-ui.css"),
    ),
    (
        "docs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/docs/docs.js"),
    ),
    (
        "docs.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/docs/docs.css"),
    ),
];

const PAGE: &[u8] = include_bytes!("../../assets/docs/index.html");

/// Mounts `/api/docs` and its files.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/docs")
            .route(web::get().to(page))
            .default_service(web::to(crate::api::method_not_allowed)),
    );
    cfg.service(
        web::resource("/api/docs/{file}")
            .route(web::get().to(asset))
            .default_service(web::to(crate::api::method_not_allowed)),
    );
}

/// `GET /api/docs`.
#[utoipa::path(
    get,
    path = "/api/docs",
    operation_id = "docs",
    summary = "This document, as a page",
    tag = "server",
    security(()),
    description = "This document rendered for people (Swagger UI, served by this server). Its calls carry \
                   the token given with Authorize, else the one the web app stored in the browser.",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
pub(crate) async fn page() -> HttpResponse {
    respond("text/html; charset=utf-8", PAGE)
}

/// `GET /api/docs/{file}`.
#[utoipa::path(
    get,
    path = "/api/docs/{file}",
    operation_id = "docsFile",
    summary = "A file of the page",
    tag = "server",
    security(()),
    params(super::params::DocsFile),
    responses(
        (status = 200, description = "The file.", content((String = "text/javascript"), (String = "text/css"))),
        (status = 404, description = "No such file (`not_found`).", body = agentstream_wire::ErrorBody),
    ),
)]
pub(crate) async fn asset(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(name, _, _)| *name == file.as_str()) {
        Some((_, content_type, bytes)) => respond(content_type, bytes),
        None => {
            use actix_web::Responder;
            crate::api::not_found(req.clone()).await.respond_to(&req)
        }
    }
}

fn respond(content_type: &'static str, bytes: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .body(bytes)
}
