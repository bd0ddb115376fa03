//! The API's OpenAPI 3.1 document, `GET /api/openapi.json`, and a page that renders it, `/api/docs`.
//!
//! Generated from the code, so that it cannot drift from it: each handler carries a
//! `#[utoipa::path]` annotation (its path, parameters, body, every status it answers), the bodies are
//! the wire types' own schemas (`agentstream-wire`'s `openapi` feature), and [`ApiDoc`] lists the
//! operations. What every guarded operation shares (the token, 401, 403) is added once by [`Guarded`],
//! and the links between operations that a client (or schemathesis) follows by [`add_links`].
//!
//! Adding an endpoint: a `#[utoipa::path(…)]` on its handler and its line in [`ApiDoc`]'s `paths`;
//! `tests/api/openapi.rs` fails until every route registered in `api/mod.rs` is described.

mod docs;
pub mod params;
pub mod responses;

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::{web, HttpResponse};
use agentstream_wire as wire;
use serde_json::{json, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use responses::{
    BadRequest, Conflict, Forbidden, NotFound, NotImplemented, PayloadTooLarge, StorageFailure,
    TooManyRequests, Unauthorized, Unavailable,
};

/// The document: every operation the server answers, the schemas of what crosses the wire (the
/// WebSocket's frames included), the shared error responses, and the security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "agentstream",
        description = "Runs headless AI coding agents, stores every streamed token with a per-agent \
                       sequence number and pushes it live (WebSocket `/ws`, Server-Sent Events). The \
                       contract, protocol version 1: PROTOCOL.md. Errors are `{\"error\": {\"code\", \
                       \"message\"}}` (`ErrorBody`). The WebSocket's frames are the schemas \
                       `ClientFrame` (client → server) and `ServerEvent` (server → client).",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        crate::api::agents::create,
        crate::api::agents::list,
        crate::api::agents::get,
        crate::api::agents::delete,
        crate::api::agents::messages,
        crate::api::conversation::send,
        crate::api::conversation::interrupt,
        crate::api::conversation::answer,
        crate::api::export::export,
        crate::api::agents::types,
        crate::api::usage::usage,
        crate::api::webhooks::create,
        crate::api::webhooks::list,
        crate::api::webhooks::get,
        crate::api::webhooks::update,
        crate::api::webhooks::delete,
        crate::gateway::event_stream::agent_events,
        crate::gateway::event_stream::all_events,
        crate::gateway::ws_route,
        crate::api::health,
        crate::metrics::endpoint::scrape,
        spec,
        docs::page,
        docs::asset,
    ),
    components(
        schemas(
            wire::ClientEvent,
            wire::ServerEvent,
            wire::ErrorCode,
            wire::EventType,
            wire::SyntheticConfig,
            wire::ClaudeConfig,
            wire::GeminiConfig,
            wire::CodexConfig,
        ),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            TooManyRequests,
            StorageFailure,
            NotImplemented,
            Unavailable,
        ),
    ),
    modifiers(&Guarded),
    security(("bearerAuth" = [])),
    tags(
        (name = "agents", description = "Launch, list, read and delete agents; their history and export."),
        (name = "conversation", description = "Follow-ups, interrupts and permission answers."),
        (name = "streams", description = "Live events: the WebSocket and Server-Sent Events."),
        (name = "webhooks", description = "Consumers the server POSTs their agents' events to (docs/webhooks.md)."),
        (name = "server", description = "Health, metrics, agent types, this document."),
    ),
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> Value {
    let mut document = match serde_json::to_value(ApiDoc::openapi()) {
        Ok(document) => document,
        Err(e) => {
            // Plain data serialized by serde: only a bug in the annotations could get here.
            tracing::error!(error = %e, "the OpenAPI document cannot be written");
            json!({})
        }
    };
    add_links(&mut document);
    document
}

/// The document as JSON, made once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_string())
}

/// The methods the document gives the route `pattern` (actix's pattern, e.g.
/// `/api/agents/{id}/permissions/{request_id}`: parameters match whatever their names), as an `Allow`
/// header's value; `None` for a route it does not describe.
pub fn allowed_methods(pattern: &str) -> Option<&'static str> {
    static ALLOW: OnceLock<HashMap<String, String>> = OnceLock::new();
    let allow = ALLOW.get_or_init(|| {
        let document = document();
        let mut allow = HashMap::new();
        if let Some(paths) = document.get("paths").and_then(Value::as_object) {
            for (path, item) in paths {
                let methods: Vec<String> = item
                    .as_object()
                    .into_iter()
                    .flat_map(|item| item.keys())
                    .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                    .map(|k| k.to_ascii_uppercase())
                    .collect();
                allow.insert(route_shape(path), methods.join(", "));
            }
        }
        allow
    });
    allow.get(&route_shape(pattern)).map(String::as_str)
}

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A path with its parameters' names dropped: `/api/agents/{}`.
pub fn route_shape(path: &str) -> String {
    let mut shape = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                shape.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => shape.push(c),
        }
    }
    shape
}

/// Mounts `/api/openapi.json` and `/api/docs`: open like `/api/health` (they describe the API, hold no
/// data, and the page must load to take a token); the calls the page makes carry the token.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/openapi.json")
            .route(web::get().to(spec))
            .default_service(web::to(crate::api::method_not_allowed)),
    );
    docs::configure(cfg);
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    summary = "This document (OpenAPI 3.1)",
    tag = "server",
    security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object)),
)]
pub(crate) async fn spec() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}

/// Adds the security schemes, and to every operation that needs the token (all but those that say
/// `security(())`) its 401 and 403 answers.
struct Guarded;

impl Modify for Guarded {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`: the server's API token (`auth.token`), \
                         needed when it has one (a server on loopback without one takes requests \
                         without it). `GET /metrics` takes `metrics.token` instead when that is set.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "tokenQuery",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "`?token=<token>`: the same token, on `/ws` and the event streams only (a browser's \
                 `WebSocket` and `EventSource` cannot send a header); refused on REST.",
            ))),
        );
        let open_by_default = openapi
            .security
            .as_ref()
            .is_none_or(|s| s.iter().all(is_anonymous));
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                let open = match &operation.security {
                    Some(requirements) => requirements.iter().any(is_anonymous),
                    None => open_by_default,
                };
                if open {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                for (status, name) in [("401", "Unauthorized"), ("403", "Forbidden")] {
                    responses.entry(status.to_owned()).or_insert_with(|| {
                        RefOr::Ref(utoipa::openapi::Ref::from_response_name(name))
                    });
                }
            }
        }
    }
}

/// Whether a security requirement is the empty one (no credentials).
fn is_anonymous(requirement: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

/// Every operation of a path.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The links between operations (OpenAPI `links`): from the agent a launch answers (its `id`) to what
/// can be done with it, and from a stored message (its `agentId`) back to its agent. Clients and
/// schemathesis's stateful tests follow them: launch → get → messages → follow-up → delete. Written
/// into the JSON rather than with utoipa's `Link`, which (5.5) names its fields in snake case
/// (`operation_id`), not as OpenAPI does (`operationId`).
///
/// (operation, status, link name, target operation, the target's `id` from the response).
const LINKS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "launchAgent",
        "201",
        "GetAgent",
        "getAgent",
        "$response.body#/id",
    ),
    (
        "launchAgent",
        "201",
        "ListMessages",
        "listMessages",
        "$response.body#/id",
    ),
    (
        "launchAgent",
        "201",
        "SendMessage",
        "sendMessage",
        "$response.body#/id",
    ),
    (
        "launchAgent",
        "201",
        "InterruptAgent",
        "interruptAgent",
        "$response.body#/id",
    ),
    (
        "launchAgent",
        "201",
        "ExportAgent",
        "exportAgent",
        "$response.body#/id",
    ),
    (
        "launchAgent",
        "201",
        "DeleteAgent",
        "deleteAgent",
        "$response.body#/id",
    ),
    (
        "getAgent",
        "200",
        "ListMessages",
        "listMessages",
        "$response.body#/id",
    ),
    (
        "getAgent",
        "200",
        "DeleteAgent",
        "deleteAgent",
        "$response.body#/id",
    ),
    (
        "sendMessage",
        "202",
        "GetAgent",
        "getAgent",
        "$response.body#/agentId",
    ),
    (
        "sendMessage",
        "202",
        "ListMessages",
        "listMessages",
        "$response.body#/agentId",
    ),
    (
        "interruptAgent",
        "202",
        "SendMessage",
        "sendMessage",
        "$response.body#/id",
    ),
    (
        "answerPermission",
        "200",
        "GetAgent",
        "getAgent",
        "$response.body#/agentId",
    ),
];

/// Adds [`LINKS`] to the document.
fn add_links(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
    {
        let Some(id) = operation
            .get("operationId")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            continue;
        };
        for (_, status, name, target, value) in LINKS.iter().filter(|l| l.0 == id) {
            let Some(response) = operation
                .pointer_mut(&format!("/responses/{status}"))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let links = response.entry("links").or_insert_with(|| json!({}));
            links[*name] = json!({
                "operationId": target,
                "parameters": {"id": value},
                "description": format!("The same agent, with `{target}`."),
            });
        }
    }
}
