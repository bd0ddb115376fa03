//! The parameters of the operations, described for the OpenAPI document. The handlers read their
//! query strings by hand (each bad value has an error code of its own), so these structs are never
//! built: they only say what the handlers take.
#![allow(dead_code)]

use utoipa::IntoParams;

/// `{id}`: an agent.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AgentId {
    /// The agent's id (any form a UUID parser reads; the server writes lower-case hyphenated). Not a
    /// UUID: 400 `invalid_id`.
    id: uuid::Uuid,
}

/// `{id}/permissions/{requestId}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PermissionPath {
    /// The agent's id. Not a UUID: 400 `invalid_id`.
    id: uuid::Uuid,
    /// The `metadata.requestId` of the agent's `permission_request` message. One it never asked:
    /// 404 `permission_not_found`.
    #[param(rename = "requestId")]
    request_id: String,
}

/// `GET /api/agents/{id}/messages`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only the messages with a greater sequence number (0, the default: all). Not an integer >= 0:
    /// 400 `invalid_since`.
    #[param(minimum = 0)]
    since: Option<i64>,
    /// At most this many, the first after `since` (without it: the whole tail). Outside 1 to 100000:
    /// 400 `invalid_limit`.
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<i64>,
}

/// `GET /api/agents`: a search.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words the agents' prompt or messages must all hold (at most 500 bytes, 16 words; anything else:
    /// 400 `invalid_query`). Blank or missing: every agent.
    #[param(max_length = 500)]
    q: Option<String>,
    /// With `q`: at most this many, an integer from 1 to 100 (default 50; else 400 `invalid_limit`).
    /// Without `q` it is not read (every agent is listed), so the schema leaves it text.
    limit: Option<String>,
    /// With `q`: only agents listed after this one, a UUID (the last of the previous page; not a UUID:
    /// 400 `invalid_id`; no such agent: 400 `invalid_query`). Not read without `q`.
    before: Option<String>,
}

/// `GET /api/usage`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageRange {
    /// The first day, `YYYY-MM-DD` (UTC); default: 29 days before `to`. After `to`, or a range over 366
    /// days: 400 `invalid_query`.
    #[param(format = Date)]
    from: Option<String>,
    /// The last day, `YYYY-MM-DD` (UTC); default: today.
    #[param(format = Date)]
    to: Option<String>,
}

/// `{id}`: a webhook consumer.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookId {
    /// The consumer's id. Not a UUID: 400 `invalid_id`; no such consumer: 404 `webhook_not_found`.
    id: uuid::Uuid,
}

/// `DELETE /api/agents/{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// See [`purge_values`] (utoipa keeps a `schema_with` parameter's description in its schema).
    #[param(schema_with = purge_values)]
    purge: Option<String>,
}

/// The values `purge` takes (PROTOCOL.md), a bare `?purge=` included: a string, not a boolean.
fn purge_values() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["true", "1", "", "false", "0"]))
        .description(Some(
            "`true` (also `1` or empty): remove the agent and its history after stopping it (later \
             GETs give 404); `false` (also `0`, the default): keep them. Anything else: 400 \
             `invalid_query`.",
        ))
        .build()
}

/// The file format of an export.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A transcript to read, `text/markdown` (the default).
    Markdown,
    /// Every stored message as `GET …/messages` returns it, one JSON object per line.
    Jsonl,
}

/// `GET /api/agents/{id}/export`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `markdown` (the default) or `jsonl`; anything else: 400 `invalid_query`.
    #[param(inline)]
    format: Option<ExportFormat>,
}

/// Where an event stream of an agent resumes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Replay the stored messages with a greater sequence number first (0, the default: the whole
    /// history). `Last-Event-ID` wins over it. Not an integer >= 0: 400 `invalid_since`.
    #[param(minimum = 0)]
    since: Option<i64>,
}

/// The header an `EventSource` sends when it reconnects.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct LastEventId {
    /// The `id:` of the last event received (a sequence number): the stream resumes after it. Empty is
    /// no id. Not an integer >= 0: 400 `invalid_since`.
    #[param(rename = "Last-Event-ID")]
    last_event_id: Option<String>,
}

/// The headers of a WebSocket opening handshake (RFC 6455).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct WebSocketHandshake {
    /// `websocket`.
    #[param(rename = "Upgrade")]
    upgrade: String,
    /// `Upgrade`.
    #[param(rename = "Connection")]
    connection: String,
    /// 16 random bytes, base64.
    #[param(rename = "Sec-WebSocket-Key")]
    key: String,
    /// `13`; another version: 426 with `Sec-WebSocket-Version: 13`.
    #[param(rename = "Sec-WebSocket-Version")]
    version: String,
}

/// A file of the API page.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DocsFile {
    /// A file of the page (its script, its style sheet, the Swagger UI bundle).
    file: String,
}
