//! agentstream: runs headless AI coding agents, stores every streamed message durably with a per-agent
//! sequence number, and pushes it live over WebSocket.
//!
//! Where things are: `api` (REST handlers), `gateway` (WebSocket: the room registry and a session actor
//! per socket), `persistence` (the only writer: stores, then broadcasts), `store` (the read side:
//! queries and rows as the protocol's shapes), `agents` (the orchestrator and an actor per running
//! agent), `runners` (what an agent runs: synthetic, a CLI process, a proxy's SSE), `parser` (an
//! agent's output line → a message), `db` (connections, pragmas, migrations); `web_app` serves the
//! built Yew app at `/`; `security` and `limits` guard the API; `instances` shows on this instance
//! what other instances of one PostgreSQL database store; `commands` are the sub-commands other than
//! the server (`proxy`, `watch`, `send`…); `metrics` serves `GET /metrics`, `telemetry` the logs;
//! `webhooks` POSTs agents' events to registered consumers; `usage` sums what the agents report using.

pub mod agents;
pub mod api;
pub mod clock;
pub mod commands;
pub mod configuration;
pub mod db;
pub mod error;
pub mod gateway;
pub mod instances;
pub mod json_text;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod parser;
pub mod persistence;
pub mod runners;
pub mod search;
pub mod security;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod usage;
pub mod web_app;
pub mod webhooks;
pub mod write_turns;
