//! agentstream: runs headless AI coding agents, stores every streamed message durably with a per-agent
//! sequence number, and pushes it live over WebSocket.
//!
//! The modules follow the boxes of the seed's architecture (see `ARCHITECTURE.md`):
//! `api` (AgentController), `gateway` (AgentGateway: room registry and WebSocket sessions), `streaming`
//! (StreamingService: the persistence actor, store then broadcast), `messages` (AgentMessageService:
//! queries), `orchestration` (AgentOrchestrationService and the per-agent actor), `runners` (adapters and
//! AgentFactory), `parser` (ClaudeMessageParser), `db` (DatabaseService); `web_app` serves the built Yew
//! app at `/`; `security` (API token, origins, exposure) and `limits` guard the API.

pub mod api;
pub mod claude_proxy;
pub mod clock;
pub mod configuration;
pub mod db;
pub mod error;
pub mod gateway;
pub mod json_text;
pub mod limits;
pub mod messages;
pub mod orchestration;
pub mod parser;
pub mod runners;
pub mod security;
pub mod startup;
pub mod streaming;
pub mod telemetry;
pub mod watch;
pub mod web_app;
