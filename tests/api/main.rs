//! Black-box tests: each spawns the real server on a random port with its own SQLite file and talks to
//! it over REST and WebSocket like any client, through the workspace's test harness
//! (`agentstream-testkit`).

mod auth;
mod bad_input;
mod claude;
mod cli;
mod cli_agents;
mod codex;
mod conversation;
mod errors;
mod event_stream;
mod export;
mod faults;
mod gemini;
mod instances;
mod lifecycle;
mod metrics;
mod openapi;
mod resilience;
mod search;
mod static_files;
mod streaming;
mod usage;
mod webhooks;
mod websocket;

/// The server binary cargo built for these tests. Only this package's own tests can name it, so they
/// hand it to the testkit, which takes the binary as a parameter (the benchmark gives it another).
const SERVER: &str = env!("CARGO_BIN_EXE_agentstream");
