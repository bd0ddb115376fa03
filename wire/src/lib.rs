//! Wire types of the agentstream protocol (`PROTOCOL.md`, version 1).
//!
//! One definition of every JSON shape that crosses the network, shared by the backend and the Yew app so
//! the two can never drift apart. Only `serde`, `serde_json` and `uuid`: this crate compiles to wasm32.
//!
//! By kind: [`names`] (agent types, statuses, message types), [`metadata`] (`metadata.eventType` and
//! the metadata's keys), [`errors`] (error bodies and codes), [`rest`] (REST bodies), [`events`] (what
//! the server sends over the WebSocket), [`client`] (what a client sends), [`usage`] (usage and cost),
//! [`webhooks`] (webhook consumers).

pub mod client;
pub mod errors;
pub mod events;
pub mod metadata;
pub mod names;
pub mod rest;
pub mod usage;
pub mod webhooks;

pub use client::{ClientEvent, DecodeError, Subscribe, Unsubscribe};
pub use errors::{ErrorBody, ErrorCode, ErrorInfo};
pub use events::{
    AgentComplete, AgentCreated, AgentDeleted, AgentError, AgentMessage, AgentStatusChanged,
    CompletionResult, FrameError, ServerEvent, Subscribed, Unsubscribed,
};
pub use metadata::{keys, EventType};
pub use names::{AgentStatus, AgentType, ClaudeTransport, MessageType, UnknownName};
pub use rest::{
    Agent, AgentMatch, AgentOption, AgentTypeInfo, ClaudeConfig, CodexConfig, CreateAgentRequest,
    GeminiConfig, Health, OptionKind, PermissionAnswer, PermissionDecision, SendMessageRequest,
    StoredMessage, SyntheticConfig,
};
pub use usage::{DayUsage, TypeUsage, UsageBucket, UsageReport, UsageTotals};
pub use webhooks::{
    CreateWebhookRequest, UpdateWebhookRequest, Webhook, WebhookEvent, WebhookFailure,
    SIGNATURE_HEADER,
};

/// The protocol version this crate describes.
pub const PROTOCOL_VERSION: u32 = 1;
