//! sea-orm entities: the seed's `agents` and `agent_messages`, and the webhook consumers' `webhooks` and
//! `webhook_positions`.
//!
//! Ids and times are TEXT, as in the seed (UUID strings; RFC 3339 UTC with milliseconds, which sorts as
//! text), so the same rows read the same on SQLite and PostgreSQL. JSON columns are TEXT holding JSON.

pub mod agent;
pub mod agent_message;
pub mod webhook;
pub mod webhook_position;

pub use agent::Entity as Agent;
pub use agent_message::Entity as AgentMessage;
pub use webhook::Entity as Webhook;
pub use webhook_position::Entity as WebhookPosition;
