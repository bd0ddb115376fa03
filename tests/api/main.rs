//! Black-box tests: each spawns the real server on a random port with its own SQLite file and talks to
//! it over REST and WebSocket like any client.

mod auth;
mod bad_input;
mod claude;
mod cli;
mod errors;
mod faults;
mod helpers;
mod lifecycle;
mod resilience;
mod static_files;
mod streaming;
mod websocket;
