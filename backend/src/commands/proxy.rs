//! `agentstream proxy`: an HTTP server in front of the Claude CLI, for the `proxy` transport (the CLI on
//! another host or in another container). It serves the proxy contract — `POST /agent/stream` (SSE: one stream-json line per default event, then
//! `event: complete` or `event: error`), `POST /agent/start`, `POST /agent/stop/{id}`, `GET /health` —
//! by spawning the Claude CLI exactly as the `cli` transport does.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::configuration::Settings;
use crate::runners::{claude, process, EventStream, RunnerControl, RunnerEvent, Started};

/// The runs under way, by the id given in `X-Agent-Id`.
#[derive(Default)]
struct Runs(Mutex<HashMap<String, Box<dyn RunnerControl>>>);

impl Runs {
    fn insert(&self, id: &str, control: Box<dyn RunnerControl>) {
        if let Ok(mut runs) = self.0.lock() {
            runs.insert(id.to_owned(), control);
        }
    }

    fn take(&self, id: &str) -> Option<Box<dyn RunnerControl>> {
        self.0.lock().ok().and_then(|mut runs| runs.remove(id))
    }

    /// The run's agent said its last word: close its input so that it exits.
    fn end_input(&self, id: &str) {
        if let Ok(mut runs) = self.0.lock() {
            if let Some(control) = runs.get_mut(id) {
                control.end_input();
            }
        }
    }

    fn len(&self) -> usize {
        self.0.lock().map(|r| r.len()).unwrap_or(0)
    }
}

struct ProxyState {
    settings: Settings,
    runs: Runs,
}

/// A built proxy server.
pub struct ProxyServer {
    url: String,
    server: actix_web::dev::Server,
}

impl ProxyServer {
    /// Binds `proxy.host:proxy.port`.
    pub fn build(settings: Settings) -> std::io::Result<ProxyServer> {
        let listener = TcpListener::bind((settings.proxy.host.as_str(), settings.proxy.port))?;
        let url = format!(
            "http://{}:{}",
            settings.proxy.host,
            listener.local_addr()?.port()
        );
        let max_body = settings.server.max_body_bytes;
        let state = web::Data::new(ProxyState {
            settings,
            runs: Runs::default(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .content_type_required(false),
                )
                .route("/agent/stream", web::post().to(stream))
                .route("/agent/start", web::post().to(start))
                .route("/agent/stop/{id}", web::post().to(stop))
                .route("/health", web::get().to(health))
        })
        // One worker: runs are few, and their controls stay on the thread that started them.
        .workers(1)
        .shutdown_timeout(2)
        .listen(listener)?
        .run();
        Ok(ProxyServer { url, server })
    }

    /// `http://host:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves until stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": message.into()}))
}

/// Validates a request, starts the CLI and registers the run; its id and events, or the status and
/// message to answer with.
fn launch(state: &ProxyState, body: &Value) -> Result<(String, EventStream), (StatusCode, String)> {
    let prompt = body
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if prompt.trim().is_empty() {
        return Err((StatusCode::BAD_REQUEST, "prompt is required".to_owned()));
    }
    let config = claude::config_from_proxy_body(body);
    let config_json = serde_json::to_value(&config).unwrap_or(Value::Null);
    let config = claude::parse_config(Some(&config_json))
        .map_err(|e| (StatusCode::BAD_REQUEST, e.message))?;
    let spec = claude::cli_spec(prompt, &config, &state.settings);
    let Started { events, control } =
        process::spawn(spec).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.message))?;
    let id = uuid::Uuid::new_v4().to_string();
    if let Some(control) = control {
        state.runs.insert(&id, control);
    }
    Ok((id, events))
}

/// Stops the run when its client goes away before it ended.
struct StopOnDrop {
    state: web::Data<ProxyState>,
    id: String,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(mut control) = self.state.runs.take(&self.id) {
            tracing::info!(run = %self.id, "client gone; stopping the CLI");
            actix_web::rt::spawn(async move { control.stop().await });
        }
    }
}

/// `POST /agent/stream`: runs the CLI, its stdout as SSE.
async fn stream(state: web::Data<ProxyState>, body: web::Json<Value>) -> HttpResponse {
    let (id, events) = match launch(&state, &body) {
        Ok(run) => run,
        Err((status, message)) => return error(status, message),
    };
    let begun = Instant::now();
    let guard = StopOnDrop {
        state: state.clone(),
        id: id.clone(),
    };
    let frames = events.map(move |event| {
        let _keep = &guard;
        let frame = match event {
            RunnerEvent::Line(line) => format!("data: {line}\n\n"),
            RunnerEvent::Bytes(bytes) => {
                let line = String::from_utf8_lossy(&bytes);
                if is_result(&line) {
                    guard.state.runs.end_input(&guard.id);
                }
                format!("data: {line}\n\n")
            }
            RunnerEvent::Oversized { head, .. } => format!("data: {head}\n\n"),
            RunnerEvent::Exited(exit) => {
                // Ended by itself: nothing left to stop.
                guard.state.runs.take(&guard.id);
                match exit.error {
                    None => format!(
                        "event: complete\ndata: {}\n\n",
                        json!({"status": "success", "exit_code": 0, "duration": begun.elapsed().as_millis() as u64})
                    ),
                    Some(e) => format!("event: error\ndata: {}\n\n", json!({"error": e.message, "code": e.code})),
                }
            }
        };
        Ok::<_, actix_web::Error>(Bytes::from(frame))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Agent-Id", id))
        .streaming(frames)
}

/// True for the CLI's `result` line, which ends a one-shot run.
fn is_result(line: &str) -> bool {
    line.contains("\"result\"")
        && serde_json::from_str::<Value>(line)
            .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("result"))
}

/// `POST /agent/start`: runs the CLI in the background; its output is not kept. `{"agent_id"}`.
async fn start(state: web::Data<ProxyState>, body: web::Json<Value>) -> HttpResponse {
    let (id, events) = match launch(&state, &body) {
        Ok(run) => run,
        Err((status, message)) => return error(status, message),
    };
    let (run, runs) = (id.clone(), state.clone());
    let mut events = events;
    actix_web::rt::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                RunnerEvent::Bytes(line) if is_result(&String::from_utf8_lossy(&line)) => {
                    runs.runs.end_input(&run)
                }
                RunnerEvent::Exited(_) => {
                    runs.runs.take(&run);
                }
                _ => {}
            }
        }
    });
    HttpResponse::Ok()
        .insert_header(("X-Agent-Id", id.clone()))
        .json(json!({"agent_id": id, "status": "started"}))
}

/// `POST /agent/stop/{id}`: SIGINT, SIGTERM, SIGKILL to the run's process group.
async fn stop(state: web::Data<ProxyState>, id: web::Path<String>) -> HttpResponse {
    match state.runs.take(&id) {
        Some(mut control) => {
            control.stop().await;
            HttpResponse::Ok().json(json!({"agent_id": id.as_str(), "stopped": true}))
        }
        None => error(StatusCode::NOT_FOUND, format!("no run {id} is under way")),
    }
}

/// `GET /health`.
async fn health(state: web::Data<ProxyState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "running": state.runs.len()}))
}
