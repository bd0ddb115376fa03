//! The error answers every operation shares, as reusable OpenAPI responses (`#/components/responses/…`):
//! one per status, each the protocol's one error form ([`ErrorBody`](agentstream_wire::ErrorBody),
//! whose `code` lists every [`ErrorCode`](agentstream_wire::ErrorCode)), its description naming the
//! codes that status carries. An operation's annotation names the ones it can answer, e.g.
//! `(status = 404, response = NotFound)`; 401 and 403 are added to every guarded operation by
//! [`super::Guarded`].

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Ref, Type};
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};

/// One error response: the error form, with an example, and the headers it carries.
fn error_response(
    description: &str,
    code: &str,
    message: &str,
    headers: &[(&str, &str)],
) -> Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .example(Some(
            serde_json::json!({"error": {"code": code, "message": message}}),
        ))
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content);
    for (name, about) in headers {
        let schema = match *name {
            "Retry-After" => ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
            _ => ObjectBuilder::new().schema_type(Type::String),
        };
        response = response.header(
            *name,
            HeaderBuilder::new()
                .schema(schema)
                .description(Some(*about))
                .build(),
        );
    }
    response.build()
}

/// Declares a unit struct per shared error response and its `ToResponse`.
macro_rules! error_responses {
    ($( $(#[$meta:meta])* $name:ident => ($description:expr, $code:expr, $message:expr $(, $header:expr => $about:expr)* ); )+) => {
        $(
            $(#[$meta])*
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (
                        stringify!($name),
                        error_response($description, $code, $message, &[$(($header, $about)),*]).into(),
                    )
                }
            }
        )+
    };
}

error_responses! {
    /// 400.
    BadRequest => (
        "The request is not valid; `code` says what: `invalid_id` (an id in the path is not a UUID), \
         `invalid_since`, `invalid_limit`, `invalid_query` (a query parameter's value, or a query \
         string that cannot be read), `invalid_path`, `invalid_body` (not JSON, an unknown field, a \
         wrong type, a NUL, blank text), `invalid_configuration`, `unknown_agent_type`; a webhook's \
         `invalid_url`, `invalid_secret`, `invalid_agent_ids`, `invalid_events`.",
        "invalid_id", "\"x\" is not a UUID"
    );
    /// 401, on every guarded operation.
    Unauthorized => (
        "The server has an API token and the request does not carry it (`unauthorized`).",
        "unauthorized", "this server needs an API token",
        "WWW-Authenticate" => "`Bearer realm=\"agentstream\"`, with `error=\"invalid_token\"` for a wrong token"
    );
    /// 403, on every guarded operation.
    Forbidden => (
        "A browser page of a foreign origin (`origin_not_allowed`), or, on a server without a token, a \
         `Host` that does not name this machine (`host_not_allowed`).",
        "origin_not_allowed", "this origin may not use the API"
    );
    /// 404 of an agent's operations.
    NotFound => (
        "No agent with this id, never or no longer (`agent_not_found`); for a permission answer also \
         `permission_not_found` (the agent never asked it); no such webhook consumer \
         (`webhook_not_found`).",
        "agent_not_found", "no agent with id 0f5c…"
    );
    /// 409 of the conversation operations.
    Conflict => (
        "The agent cannot take this now: `conversation_unsupported` (its type takes no follow-ups), \
         `no_session` (it never reported a session), `not_running` (no turn to interrupt), \
         `permission_not_pending` (answered already, or its turn ended), `agent_stopping` (being \
         deleted, or the server is shutting down); `too_many_webhooks` (`webhooks.max_consumers`).",
        "not_running", "the agent has no turn under way"
    );
    /// 413 of the operations with a body.
    PayloadTooLarge => (
        "The body is over `server.max_body_bytes`, or the prompt or text over `agents.max_prompt_bytes` \
         (`payload_too_large`).",
        "payload_too_large", "the body is larger than 1048576 bytes"
    );
    /// 429.
    TooManyRequests => (
        "Over a limit: `too_many_launches` (with `Retry-After`), `too_many_agents` \
         (`agents.max_running`), `inbox_full` (100 follow-ups wait), `too_many_connections` (with \
         `Retry-After`).",
        "too_many_agents", "64 agents are running; at most 64 may run at once",
        "Retry-After" => "Seconds to wait (`too_many_launches`, `too_many_connections`)"
    );
    /// 500: the database failed.
    StorageFailure => (
        "The database failed (`storage_error`); the message says what was done, the detail is in the \
         server's log.",
        "storage_error", "the database failed; nothing was changed"
    );
    /// 501 of a launch.
    NotImplemented => (
        "The type is known but cannot run on this server: its CLI was not found \
         (`agent_type_unavailable`; the message names the setting, `GET /api/agent-types` says so \
         beforehand).",
        "agent_type_unavailable", "gemini-cli agents cannot run here: gemini.cli_path (gemini) was not found"
    );
    /// 503.
    Unavailable => (
        "The server is shutting down (`unavailable`), or, with several instances, the instance that \
         owns the agent cannot be reached in time (`owner_unavailable`): send it again.",
        "unavailable", "the server is shutting down"
    );
}
