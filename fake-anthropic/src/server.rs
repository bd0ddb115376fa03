//! The actix-web application: routes, per-instance state, request recording.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::marker::{self, Marker};
use crate::reply::{Context, Reply};
use crate::scenario::{Scenario, Script};
use crate::{ids, sse, RecordedRequest};

/// Largest request body accepted; the CLI's requests carry the whole conversation and tools.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// State of one server instance; kept per instance so parallel tests do not interfere.
#[derive(Debug)]
pub struct State {
    /// Scenario for requests without a marker.
    default_scenario: String,
    /// Every request received, in order.
    requests: Mutex<Vec<RecordedRequest>>,
    /// Attempts seen per marker text, for `fail_first`.
    attempts: Mutex<HashMap<String, u32>>,
}

/// Locks a mutex, carrying on after a panic elsewhere (the data stays usable for a test log).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// Fresh state with the given default scenario.
    pub fn new(default_scenario: String) -> State {
        State {
            default_scenario,
            requests: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// A copy of the request log.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// The scenario of requests without a marker.
    pub(crate) fn default_scenario(&self) -> &str {
        &self.default_scenario
    }

    /// Counts one more attempt for `marker` and returns the new count.
    pub(crate) fn attempt(&self, marker: &str) -> u32 {
        let mut attempts = lock(&self.attempts);
        let n = attempts.entry(marker.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Appends to the request log.
    pub(crate) fn record(&self, r: RecordedRequest) {
        tracing::debug!(method = %r.method, path = %r.path, outcome = %r.outcome, "request");
        lock(&self.requests).push(r);
    }
}

/// Builds the running server on an already bound listener (not yet polled).
pub fn build(listener: TcpListener, state: Arc<State>) -> std::io::Result<Server> {
    let data = web::Data::from(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .service(
                web::resource("/v1/messages")
                    .route(web::post().to(messages))
                    .default_service(web::to(not_found)),
            )
            .service(
                web::resource("/v1/messages/count_tokens")
                    .route(web::post().to(count_tokens))
                    .default_service(web::to(not_found)),
            )
            .service(
                web::resource("/v1/responses")
                    .route(web::post().to(crate::openai::responses))
                    .default_service(web::to(not_found)),
            )
            .service(
                web::resource("/v1/models")
                    .route(web::get().to(models))
                    .default_service(web::to(not_found)),
            )
            .service(
                web::resource("/v1beta/models/{model_action}")
                    .route(web::post().to(crate::gemini::model_action))
                    .default_service(web::to(not_found)),
            )
            .service(
                web::resource("/v1beta/models")
                    .route(web::get().to(crate::gemini::models))
                    .default_service(web::to(not_found)),
            )
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

/// The request facts every route records.
pub(crate) fn recorded(req: &HttpRequest, body: Option<Value>) -> RecordedRequest {
    let mut headers = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    RecordedRequest {
        method: req.method().as_str().to_owned(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        headers,
        body,
        scenario: None,
        outcome: String::new(),
    }
}

/// Rough token count of a request body, as the usage numbers need one.
pub(crate) fn approx_tokens(raw: &[u8]) -> u64 {
    (raw.len() as u64 / 4).max(1)
}

/// `POST /v1/messages`: the scripted answer, streamed or as one JSON message.
async fn messages(req: HttpRequest, raw: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let mut rec = recorded(&req, None);
    let body: Value = match serde_json::from_slice(&raw) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let err = ApiError::invalid_request("fake-anthropic: body is not a JSON object");
            rec.outcome = err.to_string();
            state.record(rec);
            return err.response();
        }
    };
    let selection = marker::select(&body, &state.default_scenario);
    rec.scenario = Some(selection.marker.name.clone());
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let ctx = Context {
        selection: &selection,
        has_tools: body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty()),
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("claude-fake"),
        input_tokens: approx_tokens(&raw),
    };
    let outcome = answer(&state, &selection.marker, &ctx, stream);
    let (response, outcome) = match outcome {
        Ok((response, text)) => (response, text),
        Err(err) => (err.response(), format!("error {err}")),
    };
    rec.outcome = outcome;
    rec.body = Some(body);
    state.record(rec);
    response
}

/// Decides and renders the answer; returns it with a one-line description for the log.
fn answer(
    state: &State,
    marker: &Marker,
    ctx: &Context<'_>,
    stream: bool,
) -> Result<(HttpResponse, String), ApiError> {
    let mut script = Script::from_marker(marker)
        .map_err(|e| ApiError::invalid_request(format!("fake-anthropic: {e}")))?;
    if let Scenario::HttpError {
        kind,
        fail_first,
        retry_after,
    } = &script.scenario
    {
        let attempt = state.attempt(&marker.raw);
        if fail_first.is_none_or(|k| attempt <= k) {
            return Err(ApiError {
                status: kind.status(),
                error_type: kind.error_type(),
                message: kind.message().to_owned(),
                retry_after: retry_after.clone(),
            });
        }
        script = Script::hello_from(marker)
            .map_err(|e| ApiError::invalid_request(format!("fake-anthropic: {e}")))?;
    }
    let reply = Reply::plan(&script, ctx);
    let blocks = reply.blocks.len();
    if !stream {
        let text = format!("non-stream {} blocks={blocks}", reply.scenario);
        let response = HttpResponse::Ok()
            .insert_header(("request-id", ids::request_id()))
            .json(reply.to_message());
        return Ok((response, text));
    }
    let text = match reply.cut {
        Some(cut) => format!(
            "stream {}: {:?} after {} deltas",
            reply.scenario, cut.kind, cut.after_deltas
        ),
        None => format!(
            "stream {} blocks={blocks} stop={}",
            reply.scenario, reply.stop_reason
        ),
    };
    let response = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("request-id", ids::request_id()))
        .streaming(sse::body(sse::steps(&reply)));
    Ok((response, text))
}

/// `POST /v1/messages/count_tokens`: a rough count of the body.
async fn count_tokens(req: HttpRequest, raw: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let n = approx_tokens(&raw);
    let mut rec = recorded(&req, serde_json::from_slice(&raw).ok());
    rec.outcome = format!("count_tokens {n}");
    state.record(rec);
    HttpResponse::Ok()
        .insert_header(("request-id", ids::request_id()))
        .json(json!({"input_tokens": n}))
}

/// `GET /v1/models`: one fake model, in OpenAI's shape for OpenAI clients (the path is shared).
async fn models(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if crate::openai::is_openai_client(&req) {
        return crate::openai::models(&req, &state);
    }
    let mut rec = recorded(&req, None);
    rec.outcome = "models list".to_owned();
    state.record(rec);
    let model = json!({"type": "model", "id": "claude-fake-1", "display_name": "Fake",
                       "created_at": "2025-01-01T00:00:00Z"});
    HttpResponse::Ok()
        .insert_header(("request-id", ids::request_id()))
        .json(json!({"data": [model], "has_more": false,
                     "first_id": "claude-fake-1", "last_id": "claude-fake-1"}))
}

/// Anything else: a 404 in the API's error shape.
async fn not_found(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let err = ApiError::not_found(format!(
        "fake-anthropic: no route {} {}",
        req.method(),
        req.path()
    ));
    let mut rec = recorded(&req, None);
    rec.outcome = err.to_string();
    state.record(rec);
    err.response()
}
