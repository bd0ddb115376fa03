//! Google's Generative Language API, as the Gemini CLI calls it (`GOOGLE_GEMINI_BASE_URL`):
//! `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` (the answer, one JSON chunk per SSE
//! `data:` line), `…:generateContent` (the same answer in one response; the CLI's side requests, which
//! ask for JSON by a schema, get an object of that schema), `…:countTokens`, and `GET /v1beta/models`.
//!
//! The same markers script it as the Messages API (the latest user turn's text): `hello` (`chunk`),
//! `long` and `slow` (`n`, `delay_ms`), `tool` (a `run_shell_command` call of `cmd`; after its
//! `functionResponse`, text quoting it), `empty`, `safety` and `refusal` (no text, finish reason
//! `SAFETY` for the latter two), `max_tokens`, `err500` `err529` `err401` `err429` `err400` (the API's
//! error JSON; `fail_first`), and `drop` (the connection cut halfway through).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::marker::{parse_marker, Marker};
use crate::reply::{chunks, words};
use crate::server::{approx_tokens, recorded, State};
use crate::sse::{self, Step};

/// `POST /v1beta/models/{model}:{action}`.
pub async fn model_action(
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let mut rec = recorded(&req, None);
    let (model, action) = match path.split_once(':') {
        Some((model, action)) => (model.to_owned(), action.to_owned()),
        None => (path.into_inner(), String::new()),
    };
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let (response, outcome, scenario) = answer(&state, &model, &action, &body, &raw);
    rec.scenario = scenario;
    rec.outcome = outcome;
    rec.body = Some(body);
    state.record(rec);
    response
}

/// `GET /v1beta/models`.
pub async fn models(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let mut rec = recorded(&req, None);
    rec.outcome = "gemini models list".to_owned();
    state.record(rec);
    HttpResponse::Ok().json(json!({"models": [{"name": "models/gemini-fake",
        "displayName": "Fake", "supportedGenerationMethods": ["generateContent"]}]}))
}

/// The response, a line for the log, and the scenario.
fn answer(
    state: &State,
    model: &str,
    action: &str,
    body: &Value,
    raw: &[u8],
) -> (HttpResponse, String, Option<String>) {
    let input_tokens = approx_tokens(raw);
    if action == "countTokens" {
        let response = HttpResponse::Ok().json(json!({"totalTokens": input_tokens}));
        return (response, format!("gemini countTokens {input_tokens}"), None);
    }
    if !matches!(action, "generateContent" | "streamGenerateContent") {
        return (
            error(404, "NOT_FOUND", &format!("fake: no action {action:?}")),
            format!("gemini unknown action {action}"),
            None,
        );
    }
    let marker = select(body, state);
    let name = marker.name.clone();
    if let Some((status, code, message)) = http_error(&name) {
        let fail_first: Option<u32> = marker.params.get("fail_first").and_then(|v| v.parse().ok());
        let attempt = state.attempt(&marker.raw);
        if fail_first.is_none_or(|k| attempt <= k) {
            let response = error(status, code, message);
            return (response, format!("gemini error {status}"), Some(name));
        }
    }
    let plan = plan(&marker, body);
    let usage = json!({"promptTokenCount": input_tokens,
        "candidatesTokenCount": plan.parts.len(),
        "totalTokenCount": input_tokens + plan.parts.len() as u64});
    if action == "generateContent" {
        let mut merged: Vec<Value> = Vec::new();
        for part in plan.parts.iter().flatten() {
            match (merged.last_mut(), part.get("text").and_then(Value::as_str)) {
                (Some(Value::Object(last)), Some(text)) if last.contains_key("text") => {
                    let joined = format!("{}{text}", last["text"].as_str().unwrap_or_default());
                    last.insert("text".to_owned(), joined.into());
                }
                _ => merged.push(part.clone()),
            }
        }
        let response = HttpResponse::Ok().json(json!({
            "candidates": [{"content": {"role": "model", "parts": merged},
                            "finishReason": plan.finish, "index": 0}],
            "usageMetadata": usage, "modelVersion": model, "responseId": response_id()}));
        let outcome = format!("gemini generateContent {}", plan.scenario);
        return (response, outcome, Some(plan.scenario));
    }
    let id = response_id();
    let count = plan.parts.len();
    let frames: Vec<Bytes> = plan
        .parts
        .iter()
        .enumerate()
        .map(|(i, parts)| {
            let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
            let mut chunk_usage =
                json!({"promptTokenCount": input_tokens, "totalTokenCount": input_tokens});
            if i + 1 == count {
                candidate["finishReason"] = plan.finish.into();
                chunk_usage = usage.clone();
            }
            let chunk = json!({"candidates": [candidate], "usageMetadata": chunk_usage,
                               "modelVersion": model, "responseId": id});
            Bytes::from(format!("data: {chunk}\r\n\r\n"))
        })
        .collect();
    let cut_after = (plan.scenario == "drop").then_some(count / 2 + 1);
    let outcome = match cut_after {
        Some(n) => format!("gemini stream dropped after {n} chunks"),
        None => format!("gemini stream {} chunks={count}", plan.scenario),
    };
    let delay = Duration::from_millis(plan.delay_ms);
    let mut steps = Vec::with_capacity(frames.len() * 2 + 2);
    for (i, frame) in frames.into_iter().enumerate() {
        if cut_after == Some(i) {
            steps.extend([Step::Flush, Step::Cut]);
            break;
        }
        if i > 0 && !delay.is_zero() {
            steps.push(Step::Pause(delay));
        }
        steps.push(Step::Data(frame));
    }
    let stream = sse::body(steps);
    let response = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(stream);
    (response, outcome, Some(plan.scenario))
}

/// What to answer: the parts of each chunk, and how the answer ends.
struct Plan {
    scenario: String,
    parts: Vec<Vec<Value>>,
    finish: &'static str,
    delay_ms: u64,
}

fn plan(marker: &Marker, body: &Value) -> Plan {
    let param = |k: &str| marker.params.get(k).and_then(|v| v.parse::<usize>().ok());
    let text_chunks = |pieces: Vec<String>| -> Vec<Vec<Value>> {
        pieces
            .into_iter()
            .map(|t| vec![json!({"text": t})])
            .collect()
    };
    let mut plan = Plan {
        scenario: marker.name.clone(),
        parts: Vec::new(),
        finish: "STOP",
        delay_ms: param("delay_ms").unwrap_or(0) as u64,
    };
    let config = body.get("generationConfig");
    let schema = config.and_then(|c| {
        c.get("responseJsonSchema")
            .or_else(|| c.get("responseSchema"))
            .or_else(|| (c.get("responseMimeType")? == "application/json").then_some(&Value::Null))
    });
    if let Some(schema) = schema {
        // A side request of the CLI (routing, next speaker): an object of the schema asked for.
        plan.scenario = "json".to_owned();
        plan.parts = vec![vec![json!({"text": side_answer(schema).to_string()})]];
        return plan;
    }
    let offered_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let responses = function_responses(body);
    match marker.name.as_str() {
        "tool" if !responses.is_empty() => {
            let quoted: String = responses.chars().take(300).collect();
            plan.parts = text_chunks(chunks(&format!("The tool returned: {quoted}. Done."), 16));
        }
        "tool" if offered_tools => {
            let cmd = marker
                .params
                .get("cmd")
                .cloned()
                .unwrap_or_else(|| "echo hi".to_owned());
            plan.parts = vec![
                vec![json!({"text": "I'll run the tool now."})],
                vec![json!({"functionCall": {"name": "run_shell_command",
                    "args": {"command": cmd, "description": "Run the command"}}})],
            ];
        }
        "long" | "drop" => plan.parts = text_chunks(words(param("n").unwrap_or(2000))),
        "slow" => {
            plan.parts = text_chunks(words(param("n").unwrap_or(2000)));
            plan.delay_ms = param("delay_ms").unwrap_or(10) as u64;
        }
        "max_tokens" => {
            plan.parts = text_chunks(words(30));
            plan.finish = "MAX_TOKENS";
        }
        "empty" => plan.parts = vec![Vec::new()],
        "safety" | "refusal" => {
            plan.parts = vec![Vec::new()];
            plan.finish = "SAFETY";
        }
        _ => {
            let size = param("chunk").unwrap_or(6);
            plan.parts = text_chunks(chunks("Hello! This is the fake API answering.", size));
        }
    }
    plan
}

/// The marker of the request: the latest user turn's text that carries one, else the default.
fn select(body: &Value, state: &State) -> Marker {
    let empty = Vec::new();
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    contents
        .iter()
        .rev()
        .filter(|c| {
            c.get("role")
                .and_then(Value::as_str)
                .is_none_or(|r| r == "user")
        })
        .find_map(|c| {
            let text: Vec<&str> = c
                .get("parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            parse_marker(&text.join("\n"))
        })
        .unwrap_or_else(|| Marker::default_for(state.default_scenario()))
}

/// The `functionResponse`s of the last turn, as JSON text.
fn function_responses(body: &Value) -> String {
    body.get("contents")
        .and_then(Value::as_array)
        .and_then(|c| c.last())
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("functionResponse"))
        .map(|r| r.get("response").unwrap_or(&Value::Null).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An object with the properties of `schema`, filled so that the CLI routes to its main model and
/// hands the turn back to the user.
fn side_answer(schema: &Value) -> Value {
    let mut out = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for key in props.keys() {
            let value = match key.as_str() {
                "next_speaker" => json!("user"),
                "reasoning" | "reason" => json!("fake server: the model finished its turn"),
                "complexity_reasoning" => json!("simple"),
                "complexity_score" => json!(10),
                "model_choice" => json!("flash"),
                _ => json!("fake"),
            };
            out.insert(key.clone(), value);
        }
    }
    Value::Object(out)
}

/// The scenarios that answer an HTTP error: status, the API's status name, message.
fn http_error(name: &str) -> Option<(u16, &'static str, &'static str)> {
    Some(match name {
        "err500" => (500, "INTERNAL", "Internal error encountered."),
        "err529" => (
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
        ),
        "err401" => (
            401,
            "UNAUTHENTICATED",
            "API key not valid. Please pass a valid API key.",
        ),
        "err429" => (
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        ),
        "err400" => (
            400,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
        ),
        _ => return None,
    })
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .json(json!({"error": {"code": status.as_u16(), "message": message, "status": code}}))
}

fn response_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}
