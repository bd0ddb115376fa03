//! A fake Anthropic Messages API, so tests can run the real `claude` CLI fully offline — and Google's
//! Generative Language API for the `gemini` CLI (`gemini.rs`) and OpenAI's Responses API for the
//! `codex` CLI (`openai.rs`, `POST /v1/responses`), scripted by the same markers.
//!
//! The server streams the genuine SSE event sequence of `POST /v1/messages` (and answers
//! `"stream": false`, `count_tokens` and `GET /v1/models`). What it answers is scripted per
//! request by a marker in the prompt, `[[scenario:NAME key=value ...]]`: the latest user message
//! whose text carries one wins, then the system prompt; otherwise the default scenario (`hello`).
//! Values are percent-decoded (`cmd=touch%20x.txt`).
//!
//! | scenario | answer | keys |
//! |---|---|---|
//! | `hello` (and unknown names) | short text in a few deltas | `chunk` (chars per delta, 6) |
//! | `long` | `n` one-word text deltas | `n` (2000) |
//! | `slow` | `long` with a delay | `n` (2000), `delay_ms` (10) |
//! | `tool` | text + Bash `tool_use`; after the tool result, text quoting it | `cmd` (`echo hi`) |
//! | `read` | like `tool` with the Read tool | `file` (`/etc/os-release`) |
//! | `subagent` | like `tool` with the Agent tool; its prompt carries `[[scenario:hello chunk=4]]` | |
//! | `thinking` | thinking block (thinking + signature deltas), then text | |
//! | `max_tokens` / `refusal` | text, then that `stop_reason` | |
//! | `empty` | no content blocks | |
//! | `err500` `err529` `err401` `err429` `err400` | HTTP error in the API's JSON shape | `fail_first`, `retry_after` |
//! | `midstream_error` | half of `n` text deltas, then an SSE `error` event | `n` (50) |
//! | `drop` | half of `n` text deltas, then the connection is cut | `n` (50) |
//!
//! Every scenario also takes `delay_ms` (pause after each text delta; other requests are not
//! blocked). `fail_first=K` fails only the first K attempts of that exact marker (counted per
//! server instance), then answers like `hello`. Tool scenarios answer like `hello` when the
//! request offers no tools.
//!
//! ```no_run
//! let server = fake_anthropic::FakeAnthropic::start();
//! // Run `claude` with ANTHROPIC_BASE_URL=server.url() and a prompt carrying a marker, then:
//! let requests = server.message_requests();
//! assert_eq!(requests[0].scenario.as_deref(), Some("hello"));
//! ```
//!
//! The server runs on its own thread with its own actix system, so it works the same from a
//! `#[tokio::test]`, an actix test or plain synchronous code, and stops when dropped.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use serde_json::Value;

mod error;
mod gemini;
mod ids;
mod marker;
mod openai;
mod reply;
mod scenario;
mod server;
mod sse;

pub use error::Error;
/// The text of the `long` scenarios, one word per chunk (`tok0 `, `tok1 `…, a newline every 25th).
pub use reply::words;

/// How to start a server; [`Options::default`] is what [`FakeAnthropic::start`] uses.
#[derive(Debug, Clone)]
pub struct Options {
    /// Loopback host to bind (`127.0.0.1`, `::1` or `localhost`).
    pub host: String,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// Scenario for requests that carry no marker.
    pub default_scenario: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            host: "127.0.0.1".to_owned(),
            port: 0,
            default_scenario: "hello".to_owned(),
        }
    }
}

/// One request the server received, for assertions in tests.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query, e.g. `/v1/messages`.
    pub path: String,
    /// Raw query string, e.g. `beta=true`.
    pub query: String,
    /// Request headers, names lower-cased (repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// Parsed JSON body, if the request had one.
    pub body: Option<Value>,
    /// Name of the marker's scenario for a model request (`/v1/messages`, `/v1/responses`, Gemini's
    /// `…:streamGenerateContent`), the default one when no marker.
    pub scenario: Option<String>,
    /// What the server did, e.g. `stream hello blocks=1 stop=end_turn` or `error 529 …`.
    pub outcome: String,
}

impl RecordedRequest {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// True for a Messages or Responses request with `"stream": true`.
    pub fn is_streaming(&self) -> bool {
        self.body
            .as_ref()
            .and_then(|b| b.get("stream"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// A running fake server, stopped by [`FakeAnthropic::stop`] or on drop.
#[derive(Debug)]
pub struct FakeAnthropic {
    /// Where it listens.
    addr: SocketAddr,
    /// Shared with the handlers; holds the request log and `fail_first` counters.
    state: Arc<server::State>,
    /// Stops the actix server.
    handle: ServerHandle,
    /// The server thread, joined on stop.
    thread: Option<JoinHandle<()>>,
}

impl FakeAnthropic {
    /// Starts a server on `127.0.0.1` with a free port and the `hello` default.
    ///
    /// # Panics
    /// If no loopback port can be bound, which leaves a test nothing to do anyway; use
    /// [`FakeAnthropic::start_with`] to handle that case.
    pub fn start() -> FakeAnthropic {
        match FakeAnthropic::start_with(Options::default()) {
            Ok(server) => server,
            Err(e) => panic!("fake-anthropic: {e}"),
        }
    }

    /// Starts a server with explicit options; returns once it accepts connections.
    pub fn start_with(options: Options) -> Result<FakeAnthropic, Error> {
        let ip = loopback_ip(&options.host)?;
        let bind_err = |source| Error::Bind {
            addr: format!("{}:{}", options.host, options.port),
            source,
        };
        let listener = TcpListener::bind((ip, options.port)).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let state = Arc::new(server::State::new(options.default_scenario));
        let (tx, rx) = mpsc::channel();
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name(format!("fake-anthropic-{}", addr.port()))
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    match server::build(listener, thread_state) {
                        Ok(srv) => {
                            let _ = tx.send(Ok(srv.handle()));
                            if let Err(e) = srv.await {
                                tracing::error!("fake-anthropic server stopped: {e}");
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| Error::Thread(e.to_string()))?;
        let handle = match rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(e)) => return Err(bind_err(e)),
            Err(_) => return Err(Error::Thread("exited before starting".to_owned())),
        };
        Ok(FakeAnthropic {
            addr,
            state,
            handle,
            thread: Some(thread),
        })
    }

    /// Base URL for `ANTHROPIC_BASE_URL`, e.g. `http://127.0.0.1:41234` (Codex's provider
    /// `base_url` is this plus `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Only the `POST /v1/messages` requests (what the CLI sends), oldest first.
    pub fn message_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/v1/messages")
            .collect()
    }

    /// Only the `POST /v1/responses` requests (what the Codex CLI sends), oldest first.
    pub fn responses_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/v1/responses")
            .collect()
    }

    /// Stops the server (open streams are cut) and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks until the server stops; for the binary, which runs until it is killed.
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Sends the stop command and joins the thread; idempotent.
    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            // The command is sent eagerly; the returned future only awaits completion.
            drop(self.handle.stop(false));
            let _ = thread.join();
        }
    }
}

impl Drop for FakeAnthropic {
    /// Stops the server so a test never leaks a listening thread.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Resolves `host` to a loopback IP, refusing anything else.
fn loopback_ip(host: &str) -> Result<IpAddr, Error> {
    let ip = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .map_err(|_| Error::BadHost(host.to_owned()))?
    };
    if ip.is_loopback() {
        Ok(ip)
    } else {
        Err(Error::NotLoopback(host.to_owned()))
    }
}

/// End-to-end tests over HTTP through the public API.
#[cfg(test)]
mod tests;
