//! sea-orm entities of the two tables the seed defines: `agents` and `agent_messages`.
//!
//! Ids and times are TEXT, as in the seed (UUID strings; RFC 3339 UTC with milliseconds, which sorts as
//! text), so the same rows read the same on SQLite and PostgreSQL. JSON columns are TEXT holding JSON.

pub mod agent;
pub mod agent_message;

pub use agent::Entity as Agent;
pub use agent_message::Entity as AgentMessage;
