//! OpenAI's Responses API, as the Codex CLI 0.169.0 calls it (`wire_api = "responses"`, a provider
//! whose `base_url` is `<fake>/v1`): `POST /v1/responses` answered as SSE in the Responses streaming
//! format (`event: <type>` plus one `data:` JSON per event, numbered by `sequence_number`), and
//! `GET /v1/models` (one model, OpenAI's list shape).
//!
//! A port of the Python fake the Codex fixtures were captured with
//! (`backend/tests/fixtures/codex/capture/fake_responses.py`): the same events with the same fields in
//! the same order, the same id shapes (`resp_fake_…`, `msg_fake_…`, `fc_fake_…`, `call_fake_…`), the
//! same usage, so the real CLI prints what the fixtures hold. The marker is read from the latest user
//! message of `input` that carries one (the CLI puts the prompt there as `input_text`):
//!
//! | scenario | answer | keys |
//! |---|---|---|
//! | `hello` (and unknown names) | a message in a few `output_text` deltas | `chunk` (6) |
//! | `long` / `slow` | `n` one-word deltas (`slow`: 10 ms apart) | `n` (2000), `delay_ms` |
//! | `tool` | text + a function call of the offered shell tool (`exec_command {"cmd"}`); once the input carries its output, text quoting it | `cmd` (`echo hi`), `escalate`, `why`, `prefix_rule` |
//! | `reasoning` | a reasoning item (summary deltas, raw text deltas), then text | |
//! | `empty` | `response.completed` with no output | |
//! | `failed` | `response.failed` | `code`, `message` |
//! | `incomplete` | 30 deltas, then `response.incomplete` (`max_output_tokens`) | |
//! | `refusal` | a message whose part is a `refusal` | |
//! | `err500` `err503` `err401` `err429` `err400` | HTTP error, OpenAI's error JSON | `fail_first`, `retry_after` |
//! | `midstream_error` | half of `n` deltas, then an `error` event | `n` (50) |
//! | `drop` | half of `n` deltas, then the connection is cut | `n` (50) |
//! | `stall` | half of `n` deltas, then silence, then the end without `response.completed` | `n` (10), `stall_s` (30) |
//!
//! Every scenario takes `delay_ms` (pause after each text delta) and `cached` (the usage's
//! `cached_tokens`). Unlike the Messages API, every answer is streamed: the CLI only sends
//! `"stream": true`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::marker::{parse_marker, Marker};
use crate::reply::{chunks, words};
use crate::scenario::{Params, ScenarioError};
use crate::server::{approx_tokens, recorded, State};
use crate::sse::{self, spaced_json, Step};

/// The short answer of `hello`, the same text as the other APIs.
const HELLO: &str = "Hello! This is the fake API answering.";

/// What the first turn of `tool` says before its call.
const TOOL_INTRO: &str = "I'll run the tool now.";

/// The `encrypted_content` of a reasoning item; the CLI sends it back but cannot check it offline.
const ENCRYPTED_REASONING: &str = "ZmFrZS1lbmNyeXB0ZWQ=";

/// How many characters of the tool output the second turn of `tool` quotes.
const QUOTED_OUTPUT: usize = 300;

/// An error answered in OpenAI's JSON shape: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct OpenAiError {
    /// HTTP status.
    status: u16,
    /// `error.type`.
    error_type: &'static str,
    /// `error.code`.
    code: &'static str,
    /// `error.message`; the CLI shows it (or, for a 400, the whole body) in its error.
    message: String,
    /// Value for `retry-after`, which the CLI honours on a 429.
    retry_after: Option<String>,
}

impl OpenAiError {
    /// A 400 for a request the fake cannot script (bad JSON, bad scenario parameters).
    fn invalid_request(message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            status: 400,
            error_type: "invalid_request_error",
            code: "invalid_request_error",
            message: message.into(),
            retry_after: None,
        }
    }

    /// The HTTP response, with an `x-request-id` as the real API sends.
    fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut builder = HttpResponse::build(status);
        builder.insert_header(("x-request-id", request_id()));
        // A value that is not a legal header (it comes from the prompt) is left out.
        if let Some(after) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            builder.insert_header((header::RETRY_AFTER, after));
        }
        let body = json!({"error": {"message": self.message, "type": self.error_type,
                                    "param": null, "code": self.code}});
        // Python's separators, as the reference sent: the CLI shows a 400's body verbatim.
        builder
            .content_type("application/json")
            .body(spaced_json(&body))
    }
}

/// The HTTP error scenarios, with what the Python fake answered for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpErrorKind {
    /// 500 `server_error`: the CLI retries, then shows its own "high demand" text.
    Internal,
    /// 503 `server_error`.
    Unavailable,
    /// 401 `invalid_api_key`.
    Authentication,
    /// 429 `rate_limit_exceeded`.
    RateLimit,
    /// 400 `invalid_request_error`: never retried, the CLI shows the raw body.
    InvalidRequest,
}

impl HttpErrorKind {
    /// Maps a scenario name (`err500`, ...) to its kind.
    fn from_name(name: &str) -> Option<HttpErrorKind> {
        Some(match name {
            "err500" => HttpErrorKind::Internal,
            "err503" => HttpErrorKind::Unavailable,
            "err401" => HttpErrorKind::Authentication,
            "err429" => HttpErrorKind::RateLimit,
            "err400" => HttpErrorKind::InvalidRequest,
            _ => return None,
        })
    }

    /// The error as answered (without `retry-after`).
    fn error(self) -> OpenAiError {
        let (status, code, message) = match self {
            HttpErrorKind::Internal => (
                500,
                "server_error",
                "The server had an error while processing your request.",
            ),
            HttpErrorKind::Unavailable => {
                (503, "server_error", "The engine is currently overloaded.")
            }
            HttpErrorKind::Authentication => (
                401,
                "invalid_api_key",
                "Incorrect API key provided: sk-test.",
            ),
            HttpErrorKind::RateLimit => (
                429,
                "rate_limit_exceeded",
                "Rate limit reached for requests.",
            ),
            HttpErrorKind::InvalidRequest => (400, "invalid_request_error", "fake invalid request"),
        };
        // The reference sends `type` = `code`, except `server_error` for a 500 (the same here).
        OpenAiError {
            status,
            error_type: code,
            code,
            message: message.to_owned(),
            retry_after: None,
        }
    }
}

/// What a marker asks the Responses API to answer.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// A short message in deltas of `chunk` characters; also unknown names.
    Hello {
        /// Characters per delta.
        chunk: usize,
    },
    /// `n` one-word deltas (`long`, and `slow` with a default delay).
    Long {
        /// Number of deltas.
        n: usize,
    },
    /// Turn 1: text and a call of the shell tool; turn 2 (its output is in the input): text quoting it.
    Tool {
        /// The command to request.
        cmd: String,
        /// `escalate=1`: the justification of a `require_escalated` call (`why=`), so the CLI asks
        /// for an approval.
        escalate: Option<String>,
        /// `prefix_rule=a,b`: the `prefix_rule` argument of `exec_command`.
        prefix_rule: Option<Vec<String>>,
    },
    /// A reasoning item (summary and raw text), then text.
    Reasoning,
    /// `response.completed` with no output items.
    Empty,
    /// `response.failed` with this error.
    Failed {
        /// `error.code`.
        code: String,
        /// `error.message`, which the CLI shows.
        message: String,
    },
    /// 30 deltas, then `response.incomplete` (`max_output_tokens`).
    Incomplete,
    /// A message whose only part is a refusal.
    Refusal,
    /// An HTTP error for the first `fail_first` attempts (all when `None`), then hello.
    HttpError {
        /// Which error.
        kind: HttpErrorKind,
        /// How many attempts fail.
        fail_first: Option<u32>,
        /// Value of `retry-after`.
        retry_after: Option<String>,
    },
    /// Half of `n` deltas, then an `error` event and the end of the body.
    MidstreamError {
        /// Number of deltas the full answer would have.
        n: usize,
    },
    /// Half of `n` deltas, then the connection is cut.
    Drop {
        /// Number of deltas the full answer would have.
        n: usize,
    },
    /// Half of `n` deltas, then `silence`, then the end of the body without `response.completed`,
    /// for the CLI's idle timeout.
    Stall {
        /// Number of deltas the full answer would have.
        n: usize,
        /// How long nothing is sent.
        silence: Duration,
    },
}

/// An [`Answer`] plus what applies to all of them.
#[derive(Debug, Clone, PartialEq)]
struct Script {
    /// The scenario name in effect (`hello` once a `fail_first` error has failed enough), for the log.
    name: String,
    /// What to answer.
    answer: Answer,
    /// Pause after each text delta.
    delay: Duration,
    /// `cached_tokens` of the usage.
    cached: u64,
}

impl Script {
    /// Interprets a marker; fails when a parameter cannot be parsed.
    fn from_marker(marker: &Marker) -> Result<Script, ScenarioError> {
        let p = Params(&marker.params);
        let answer = match marker.name.as_str() {
            "long" | "slow" => Answer::Long { n: p.count(2000)? },
            "tool" => Answer::Tool {
                cmd: p.string_or("cmd", "echo hi"),
                // The reference takes any non-empty value as "yes".
                escalate: marker
                    .params
                    .get("escalate")
                    .filter(|v| !v.is_empty())
                    .map(|_| {
                        p.string_or(
                            "why",
                            "Do you want to run this command outside the sandbox?",
                        )
                    }),
                prefix_rule: marker
                    .params
                    .get("prefix_rule")
                    .filter(|v| !v.is_empty())
                    .map(|v| v.split(',').map(str::to_owned).collect()),
            },
            "reasoning" => Answer::Reasoning,
            "empty" => Answer::Empty,
            "failed" => Answer::Failed {
                code: p.string_or("code", "server_error"),
                message: p.string_or("message", "The model failed to generate a response (fake)."),
            },
            "incomplete" => Answer::Incomplete,
            "refusal" => Answer::Refusal,
            "midstream_error" => Answer::MidstreamError { n: p.count(50)? },
            "drop" => Answer::Drop { n: p.count(50)? },
            "stall" => Answer::Stall {
                n: p.count(10)?,
                silence: p.secs_or("stall_s", 30.0)?,
            },
            name => match HttpErrorKind::from_name(name) {
                Some(kind) => Answer::HttpError {
                    kind,
                    fail_first: match p.u32_or("fail_first", 0)? {
                        0 => None,
                        k => Some(k),
                    },
                    retry_after: marker.params.get("retry_after").cloned(),
                },
                None => Answer::Hello { chunk: p.chunk()? },
            },
        };
        let default_delay = if marker.name == "slow" { 10.0 } else { 0.0 };
        Ok(Script {
            name: marker.name.clone(),
            answer,
            delay: p.delay_or(default_delay)?,
            cached: p.usize_or("cached", 0)? as u64,
        })
    }
}

/// The shell tools the reference knew, in its order of preference; Codex 0.169.0 offers only
/// `exec_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShellTool {
    /// `exec_command {"cmd": …}` (Codex 0.169.0).
    ExecCommand,
    /// `shell_command {"command": "…"}`.
    ShellCommand,
    /// `shell` or `container.exec`, `{"command": ["bash", "-lc", …]}`.
    Argv(&'static str),
    /// The built-in `local_shell` tool, answered with a `local_shell_call` item.
    LocalShell,
}

impl ShellTool {
    /// The shell tool the request offers (by `name`, or `type` for built-in tools).
    fn offered(body: &Value) -> Option<ShellTool> {
        let names: Vec<&str> = body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                t.get("name")
                    .and_then(Value::as_str)
                    .or_else(|| t.get("type").and_then(Value::as_str))
            })
            .collect();
        let known = [
            ShellTool::ExecCommand,
            ShellTool::ShellCommand,
            ShellTool::Argv("shell"),
            ShellTool::LocalShell,
            ShellTool::Argv("container.exec"),
        ];
        known.into_iter().find(|t| names.contains(&t.name()))
    }

    /// The tool's name in the request and in the call.
    fn name(self) -> &'static str {
        match self {
            ShellTool::ExecCommand => "exec_command",
            ShellTool::ShellCommand => "shell_command",
            ShellTool::Argv(name) => name,
            ShellTool::LocalShell => "local_shell",
        }
    }
}

/// What a request asks for, besides its marker.
#[derive(Debug, Clone)]
struct Request<'a> {
    /// The request's `model`, echoed in every response object.
    model: &'a str,
    /// Approximate prompt size, for the usage.
    input_tokens: u64,
    /// Tool outputs after the last user message: present on the second turn of `tool`.
    outputs: Vec<String>,
    /// The shell tool offered, if any.
    shell: Option<ShellTool>,
}

/// `POST /v1/responses`.
pub async fn responses(req: HttpRequest, raw: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let mut rec = recorded(&req, None);
    let body: Value = match serde_json::from_slice(&raw) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let err = OpenAiError::invalid_request("fake-anthropic: body is not a JSON object");
            rec.outcome = format!("error {err}");
            state.record(rec);
            return err.response();
        }
    };
    let marker = select(&body, state.default_scenario());
    rec.scenario = Some(marker.name.clone());
    let request = Request {
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("gpt-fake"),
        input_tokens: approx_tokens(&raw),
        outputs: tool_outputs(&body),
        shell: ShellTool::offered(&body),
    };
    let (response, outcome) = match answer(&state, &marker, &request) {
        Ok(answered) => answered,
        Err(err) => (err.response(), format!("error {err}")),
    };
    rec.outcome = outcome;
    rec.body = Some(body);
    state.record(rec);
    response
}

/// True when a `GET /v1/models` comes from an OpenAI client, which shares the path with Anthropic's:
/// OpenAI clients authenticate with a bearer key and send no `anthropic-version` or `x-api-key`
/// (Anthropic's OAuth clients send a bearer token too, but always with `anthropic-version`). Anything
/// else keeps getting Anthropic's list.
pub fn is_openai_client(req: &HttpRequest) -> bool {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    bearer && !headers.contains_key("anthropic-version") && !headers.contains_key("x-api-key")
}

/// `GET /v1/models` for an OpenAI client: one model, in OpenAI's list shape.
pub fn models(req: &HttpRequest, state: &State) -> HttpResponse {
    let mut rec = recorded(req, None);
    rec.outcome = "openai models list".to_owned();
    state.record(rec);
    HttpResponse::Ok()
        .insert_header(("x-request-id", request_id()))
        .json(
            json!({"object": "list", "data": [{"id": "gpt-fake", "object": "model",
            "created": 1_700_000_000, "owned_by": "fake"}]}),
        )
}

/// Decides and renders the answer; returns it with a line for the request log.
fn answer(
    state: &State,
    marker: &Marker,
    request: &Request<'_>,
) -> Result<(HttpResponse, String), OpenAiError> {
    let bad_param = |e: ScenarioError| OpenAiError::invalid_request(format!("fake-anthropic: {e}"));
    let mut script = Script::from_marker(marker).map_err(bad_param)?;
    if let Answer::HttpError {
        kind,
        fail_first,
        retry_after,
    } = &script.answer
    {
        let attempt = state.attempt(&marker.raw);
        if fail_first.is_none_or(|k| attempt <= k) {
            let err = OpenAiError {
                retry_after: retry_after.clone(),
                ..kind.error()
            };
            let outcome = format!("error {} (attempt {attempt})", err.status);
            return Ok((err.response(), outcome));
        }
        // Past `fail_first`: hello, keeping the marker's other keys (`chunk`, `delay_ms`).
        script.answer = Answer::Hello {
            chunk: Params(&marker.params).chunk().map_err(bad_param)?,
        };
        script.name = "hello".to_owned();
    }
    let (steps, outcome) = render(&script, request);
    let response = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-request-id", request_id()))
        .streaming(sse::body(steps));
    Ok((response, outcome))
}

/// The steps of the streamed answer and a line for the log, in the reference's event order.
fn render(script: &Script, request: &Request<'_>) -> (Vec<Step>, String) {
    let mut s = Stream::new(script, request);
    s.event(
        "response.created",
        json!({"response": s.response("in_progress", Value::Null)}),
    );
    s.event(
        "response.in_progress",
        json!({"response": s.response("in_progress", Value::Null)}),
    );
    let mut outcome = script.name.clone();
    match &script.answer {
        Answer::Tool { .. } if !request.outputs.is_empty() => {
            let joined = request
                .outputs
                .iter()
                .map(|o| o.trim())
                .collect::<Vec<_>>()
                .join(" | ");
            let quoted: String = joined.chars().take(QUOTED_OUTPUT).collect();
            s.message(
                &chunks(&format!("The tool returned: {quoted}. Done."), 12),
                PartKind::OutputText,
                None,
            );
            outcome = "tool turn 2".to_owned();
        }
        Answer::Tool {
            cmd,
            escalate,
            prefix_rule,
        } => {
            s.message(&chunks(TOOL_INTRO, 8), PartKind::OutputText, None);
            outcome = match request.shell {
                None => "tool: no shell tool offered".to_owned(),
                Some(tool) => {
                    let args = s.tool_call(tool, cmd, escalate.as_deref(), prefix_rule.as_deref());
                    format!("tool turn 1: {} {args}", tool.name())
                }
            };
        }
        Answer::Reasoning => {
            s.reasoning();
            s.message(
                &chunks("Hello from a reasoning model!", 6),
                PartKind::OutputText,
                None,
            );
        }
        Answer::Empty => {}
        Answer::Failed { code, message } => {
            let mut response = s.response("failed", Value::Null);
            response["error"] = json!({"code": code, "message": message});
            s.event("response.failed", json!({"response": response}));
            return (s.steps, format!("response.failed {code}"));
        }
        Answer::Incomplete => {
            s.message(&words(30), PartKind::OutputText, None);
            let mut response = s.response("incomplete", s.usage());
            response["incomplete_details"] = json!({"reason": "max_output_tokens"});
            s.event("response.incomplete", json!({"response": response}));
            return (s.steps, "response.incomplete".to_owned());
        }
        Answer::Refusal => {
            s.message(
                &chunks("I can't help with that.", 8),
                PartKind::Refusal,
                None,
            );
        }
        Answer::Long { n } => {
            s.message(&words(*n), PartKind::OutputText, None);
        }
        Answer::MidstreamError { n } => {
            let half = s.half_message(*n);
            s.event(
                "error",
                json!({"code": "server_error", "message": "fake mid-stream error", "param": null}),
            );
            return (s.steps, format!("midstream error after {half} deltas"));
        }
        Answer::Drop { n } => {
            let half = s.half_message(*n);
            // Without the flush, actix would discard the deltas still buffered when the body fails.
            s.steps.extend([Step::Flush, Step::Cut]);
            return (s.steps, format!("dropped after {half} deltas"));
        }
        Answer::Stall { n, silence } => {
            let half = s.half_message(*n);
            s.steps.extend([Step::Flush, Step::Pause(*silence)]);
            return (s.steps, format!("stall after {half} deltas"));
        }
        Answer::Hello { chunk } => {
            s.message(&chunks(HELLO, *chunk), PartKind::OutputText, None);
        }
        // Handled before rendering; answers like hello if it ever gets here.
        Answer::HttpError { .. } => {
            s.message(&chunks(HELLO, 6), PartKind::OutputText, None);
        }
    }
    let completed = s.response("completed", s.usage());
    s.event("response.completed", json!({"response": completed}));
    let line = format!(
        "stream {outcome} items={} deltas={}",
        s.output.len(),
        s.text_deltas
    );
    (s.steps, line)
}

/// The kind of a message's content part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    /// `output_text`, streamed as `response.output_text.delta`.
    OutputText,
    /// `refusal`, streamed as `response.refusal.delta`.
    Refusal,
}

/// Builds one streamed response: numbers its events, counts its deltas for the usage, keeps the
/// finished output items for `response.completed`.
struct Stream<'a> {
    /// Steps so far.
    steps: Vec<Step>,
    /// `sequence_number` of the next event (from 0, per response).
    seq: u64,
    /// `resp_fake_…`.
    id: String,
    /// Unix time, the same in every response object of the stream.
    created_at: u64,
    /// The request's facts.
    request: &'a Request<'a>,
    /// Pause after each text delta.
    delay: Duration,
    /// `cached_tokens` of the usage.
    cached: u64,
    /// Finished output items.
    output: Vec<Value>,
    /// `output_index` of the next item.
    next_index: usize,
    /// Text and refusal deltas sent (the usage's output tokens).
    text_deltas: u64,
    /// Reasoning deltas sent (the usage's reasoning tokens).
    reasoning_deltas: u64,
}

impl<'a> Stream<'a> {
    /// An empty stream for `script`.
    fn new(script: &Script, request: &'a Request<'a>) -> Stream<'a> {
        Stream {
            steps: Vec::new(),
            seq: 0,
            id: format!("resp_fake_{}", hex(24)),
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            request,
            delay: script.delay,
            cached: script.cached,
            output: Vec::new(),
            next_index: 0,
            text_deltas: 0,
            reasoning_deltas: 0,
        }
    }

    /// Appends `event: KIND` with `{"type": KIND, "sequence_number": N, ...fields}`.
    fn event(&mut self, kind: &str, fields: Value) {
        let mut data = Map::new();
        data.insert("type".to_owned(), kind.into());
        data.insert("sequence_number".to_owned(), self.seq.into());
        if let Value::Object(fields) = fields {
            data.extend(fields);
        }
        self.seq += 1;
        let frame = format!("event: {kind}\ndata: {}\n\n", Value::Object(data));
        self.steps.push(Step::Data(Bytes::from(frame)));
    }

    /// The response object as the lifecycle events carry it.
    fn response(&self, status: &str, usage: Value) -> Value {
        json!({"id": self.id, "object": "response", "created_at": self.created_at,
               "status": status, "model": self.request.model, "output": self.output,
               "error": null, "incomplete_details": null, "usage": usage})
    }

    /// The usage of `response.completed`, which the CLI maps to its token counts.
    fn usage(&self) -> Value {
        let input = self.request.input_tokens;
        let output = self.text_deltas + self.reasoning_deltas;
        json!({"input_tokens": input,
               "input_tokens_details": {"cached_tokens": self.cached},
               "output_tokens": output,
               "output_tokens_details": {"reasoning_tokens": self.reasoning_deltas},
               "total_tokens": input + output})
    }

    /// Takes the next `output_index`.
    fn take_index(&mut self) -> usize {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    /// A message item: added, part added, one delta per piece, then the done events; returns
    /// false when it stopped (on purpose) after `stop_at` deltas, with no done event.
    fn message(&mut self, pieces: &[String], kind: PartKind, stop_at: Option<usize>) -> bool {
        let id = format!("msg_fake_{}", hex(20));
        let oi = self.take_index();
        self.event(
            "response.output_item.added",
            json!({"output_index": oi, "item": {"id": id, "type": "message",
                   "status": "in_progress", "role": "assistant", "content": []}}),
        );
        let empty_part = match kind {
            PartKind::OutputText => json!({"type": "output_text", "text": "", "annotations": []}),
            PartKind::Refusal => json!({"type": "refusal", "refusal": ""}),
        };
        self.event(
            "response.content_part.added",
            json!({"item_id": id, "output_index": oi, "content_index": 0, "part": empty_part}),
        );
        for (i, piece) in pieces.iter().enumerate() {
            match kind {
                PartKind::OutputText => self.event(
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": oi, "content_index": 0,
                           "delta": piece, "logprobs": []}),
                ),
                PartKind::Refusal => self.event(
                    "response.refusal.delta",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "delta": piece}),
                ),
            }
            self.text_deltas += 1;
            if !self.delay.is_zero() {
                self.steps.push(Step::Pause(self.delay));
            }
            // As the reference: checked after sending, so `stop_at: Some(0)` never stops.
            if stop_at == Some(i + 1) {
                return false;
            }
        }
        let full = pieces.concat();
        let part = match kind {
            PartKind::OutputText => {
                self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": oi, "content_index": 0,
                           "text": full, "logprobs": []}),
                );
                json!({"type": "output_text", "text": full, "annotations": [], "logprobs": []})
            }
            PartKind::Refusal => {
                self.event(
                    "response.refusal.done",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "refusal": full}),
                );
                json!({"type": "refusal", "refusal": full})
            }
        };
        self.event(
            "response.content_part.done",
            json!({"item_id": id, "output_index": oi, "content_index": 0, "part": part}),
        );
        let item = json!({"id": id, "type": "message", "status": "completed",
                          "role": "assistant", "content": [part]});
        self.event(
            "response.output_item.done",
            json!({"output_index": oi, "item": item}),
        );
        self.output.push(item);
        true
    }

    /// The first half of an `n`-word message (the broken-stream scenarios); returns the half.
    fn half_message(&mut self, n: usize) -> usize {
        let half = n / 2;
        self.message(&words(n), PartKind::OutputText, Some(half));
        half
    }

    /// A call of the shell tool with `cmd`, its arguments streamed in 7-character deltas; returns
    /// the arguments text for the log.
    fn tool_call(
        &mut self,
        tool: ShellTool,
        cmd: &str,
        escalate: Option<&str>,
        prefix_rule: Option<&[String]>,
    ) -> String {
        let call_id = format!("call_fake_{}", hex(20));
        let oi = self.take_index();
        if tool == ShellTool::LocalShell {
            let id = format!("lsh_fake_{}", hex(20));
            let action = json!({"type": "exec", "command": ["bash", "-lc", cmd]});
            let item = |status: &str| {
                json!({"id": id, "type": "local_shell_call", "status": status,
                       "call_id": call_id, "action": action})
            };
            self.event(
                "response.output_item.added",
                json!({"output_index": oi, "item": item("in_progress")}),
            );
            self.event(
                "response.output_item.done",
                json!({"output_index": oi, "item": item("completed")}),
            );
            self.output.push(item("completed"));
            return action.to_string();
        }
        let args = match tool {
            ShellTool::ExecCommand => {
                let mut a = json!({"cmd": cmd});
                if let Some(why) = escalate {
                    a["sandbox_permissions"] = "require_escalated".into();
                    a["justification"] = why.into();
                }
                if let Some(rule) = prefix_rule {
                    a["prefix_rule"] = rule.into();
                }
                a
            }
            ShellTool::ShellCommand => json!({"command": cmd}),
            _ => json!({"command": ["bash", "-lc", cmd]}),
        };
        // Python's separators, so the deltas are the ones the fixtures were captured with.
        let args = spaced_json(&args);
        let id = format!("fc_fake_{}", hex(20));
        let name = tool.name();
        self.event(
            "response.output_item.added",
            json!({"output_index": oi, "item": {"id": id, "type": "function_call",
                   "status": "in_progress", "arguments": "", "call_id": call_id, "name": name}}),
        );
        for piece in chunks(&args, 7) {
            self.event(
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": oi, "delta": piece}),
            );
        }
        self.event(
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": oi, "arguments": args}),
        );
        let item = json!({"id": id, "type": "function_call", "status": "completed",
                          "arguments": args, "call_id": call_id, "name": name});
        self.event(
            "response.output_item.done",
            json!({"output_index": oi, "item": item}),
        );
        self.output.push(item);
        args
    }

    /// A reasoning item: summary part with its deltas, then raw reasoning text deltas.
    fn reasoning(&mut self) {
        let id = format!("rs_fake_{}", hex(20));
        let oi = self.take_index();
        self.event(
            "response.output_item.added",
            json!({"output_index": oi, "item": {"id": id, "type": "reasoning", "summary": [],
                   "content": [], "encrypted_content": null}}),
        );
        let summary = chunks(
            "**Greeting** The user wants a greeting; answer briefly.",
            10,
        );
        self.event(
            "response.reasoning_summary_part.added",
            json!({"item_id": id, "output_index": oi, "summary_index": 0,
                   "part": {"type": "summary_text", "text": ""}}),
        );
        for piece in &summary {
            self.event(
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "delta": piece}),
            );
            self.reasoning_deltas += 1;
        }
        let summary = summary.concat();
        self.event(
            "response.reasoning_summary_text.done",
            json!({"item_id": id, "output_index": oi, "summary_index": 0, "text": summary}),
        );
        self.event(
            "response.reasoning_summary_part.done",
            json!({"item_id": id, "output_index": oi, "summary_index": 0,
                   "part": {"type": "summary_text", "text": summary}}),
        );
        let raw = chunks("Raw chain of thought: say hello.", 8);
        for piece in &raw {
            self.event(
                "response.reasoning_text.delta",
                json!({"item_id": id, "output_index": oi, "content_index": 0, "delta": piece}),
            );
            self.reasoning_deltas += 1;
        }
        let raw = raw.concat();
        self.event(
            "response.reasoning_text.done",
            json!({"item_id": id, "output_index": oi, "content_index": 0, "text": raw}),
        );
        let item = json!({"id": id, "type": "reasoning",
                          "summary": [{"type": "summary_text", "text": summary}],
                          "content": [{"type": "reasoning_text", "text": raw}],
                          "encrypted_content": ENCRYPTED_REASONING});
        self.event(
            "response.output_item.done",
            json!({"output_index": oi, "item": item}),
        );
        self.output.push(item);
    }
}

/// The items of `input` (a bare string is one user message).
fn input_items(body: &Value) -> Vec<Value> {
    match body.get("input") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        _ => Vec::new(),
    }
}

/// The marker of the request: the latest user message of `input` whose text carries one, else the
/// default. Only user messages count: the developer messages and the tool outputs are not the test's.
fn select(body: &Value, default_name: &str) -> Marker {
    input_items(body)
        .iter()
        .rev()
        .filter(|item| {
            item.get("type")
                .and_then(Value::as_str)
                .unwrap_or("message")
                == "message"
                && item.get("role").and_then(Value::as_str) == Some("user")
        })
        .find_map(|item| parse_marker(&message_text(item)))
        .unwrap_or_else(|| Marker::default_for(default_name))
}

/// The text of a message item: its string content, or its text parts joined by newlines.
fn message_text(item: &Value) -> String {
    match item.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| {
                matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("input_text" | "text" | "output_text")
                )
            })
            .map(|p| p.get("text").and_then(Value::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The tool outputs after the last user message, oldest first: a new user message starts a new
/// turn, which calls the tool again.
fn tool_outputs(body: &Value) -> Vec<String> {
    let items = input_items(body);
    let mut outputs: Vec<String> = items
        .iter()
        .rev()
        .take_while(|item| {
            !(item.get("type").and_then(Value::as_str) == Some("message")
                && item.get("role").and_then(Value::as_str) == Some("user"))
        })
        .filter(|item| {
            matches!(
                item.get("type").and_then(Value::as_str),
                Some(
                    "function_call_output" | "custom_tool_call_output" | "local_shell_call_output"
                )
            )
        })
        .map(|item| output_text(item.get("output").unwrap_or(&Value::Null)))
        .collect();
    outputs.reverse();
    outputs
}

/// An output as text: a string as is, an object's `content` (or the object as JSON), the text
/// parts of an array.
fn output_text(output: &Value) -> String {
    match output {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("content") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => spaced_json(output),
        },
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        other => other.to_string(),
    }
}

/// `n` random lower-case hex digits, the random part of the reference's ids.
fn hex(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(n);
    out
}

/// An `x-request-id` like the reference's, `req_fake_` and 20 hex digits.
fn request_id() -> String {
    format!("req_fake_{}", hex(20))
}

/// Unit tests of this module's pure functions.
#[cfg(test)]
mod tests {
    use super::*;

    /// The marker comes from the latest user message that has one, never from developer text.
    #[test]
    fn select_reads_the_latest_user_message_with_a_marker() {
        let body = json!({"input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "[[scenario:drop]]"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a [[scenario:tool cmd=ls%20-l]]"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>"}]},
            {"type": "function_call", "name": "exec_command", "arguments": "{}", "call_id": "c"},
            {"type": "function_call_output", "call_id": "c", "output": " hi\n"},
        ]});
        let m = select(&body, "hello");
        assert_eq!(m.name, "tool");
        assert_eq!(m.params["cmd"], "ls -l");
        assert_eq!(tool_outputs(&body), vec![" hi\n"]);
        assert_eq!(
            select(&json!({"input": "x [[scenario:long]]"}), "hello").name,
            "long"
        );
        assert_eq!(
            select(&json!({"input": 3}), "empty"),
            Marker::default_for("empty")
        );
    }

    /// Outputs before the latest user message belong to an earlier turn.
    #[test]
    fn tool_outputs_stop_at_the_last_user_message() {
        let body = json!({"input": [
            {"type": "function_call_output", "call_id": "a", "output": {"content": "old"}},
            {"type": "message", "role": "user", "content": "again"},
        ]});
        assert!(tool_outputs(&body).is_empty());
        assert_eq!(output_text(&json!({"content": "x"})), "x");
        assert_eq!(output_text(&json!([{"text": "a"}, {"text": "b"}])), "ab");
    }

    /// Codex offers `exec_command`; the older shell tools are still recognised.
    #[test]
    fn the_offered_shell_tool_is_found_by_name_or_type() {
        let body = json!({"tools": [{"type": "function", "name": "write_stdin"},
                                    {"type": "function", "name": "exec_command"},
                                    {"type": "web_search"}]});
        assert_eq!(ShellTool::offered(&body), Some(ShellTool::ExecCommand));
        let body = json!({"tools": [{"type": "local_shell"}]});
        assert_eq!(ShellTool::offered(&body), Some(ShellTool::LocalShell));
        assert_eq!(ShellTool::offered(&json!({})), None);
    }

    /// Bad parameters are reported, not guessed; `slow` is `long` with a delay.
    #[test]
    fn scripts_from_markers() {
        let m = parse_marker("[[scenario:slow n=3]]").unwrap();
        let s = Script::from_marker(&m).unwrap();
        assert_eq!(s.answer, Answer::Long { n: 3 });
        assert_eq!(s.delay, Duration::from_millis(10));
        let m = parse_marker("[[scenario:stall stall_s=soon]]").unwrap();
        assert!(Script::from_marker(&m).is_err());
        let m = parse_marker("[[scenario:tool escalate=1 prefix_rule=touch,y.txt]]").unwrap();
        let Answer::Tool {
            escalate,
            prefix_rule,
            ..
        } = Script::from_marker(&m).unwrap().answer
        else {
            panic!("not a tool answer");
        };
        assert!(escalate.unwrap().contains("outside the sandbox"));
        assert_eq!(prefix_rule.unwrap(), vec!["touch", "y.txt"]);
    }
}
