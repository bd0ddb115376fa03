//! `agents`: one row per launched agent.

use sea_orm::entity::prelude::*;

/// An agent's row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    /// UUID string.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `synthetic`, `claude-code`, …
    #[sea_orm(column_name = "type")]
    pub agent_type: String,
    /// `initializing`, `running`, `completed`, `failed`, `terminated`, `interrupted`.
    pub status: String,
    pub prompt: String,
    /// The launch configuration, JSON text.
    pub configuration: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// Why it failed, when it did: a snake_case code and a sentence.
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The agent CLI's session id, from its init line.
    pub session_id: Option<String>,
    /// The model the agent CLI reported.
    pub model: Option<String>,
    /// The instance that owns the agent: runs it, stores its messages, answers its commands (its
    /// `instance.id`; several instances share a PostgreSQL database).
    pub owner: Option<String>,
    /// What the agent's turns reported using, summed (see `migration`'s `m20261202_000005_usage`).
    pub usage_input_tokens: i64,
    pub usage_output_tokens: i64,
    pub usage_cache_read_tokens: i64,
    pub usage_cache_write_tokens: i64,
    /// Nano-dollars; `None` while no turn reported a cost.
    pub usage_cost_nanos: Option<i64>,
    pub usage_turns: i64,
    pub usage_duration_ms: i64,
    /// The last running totals of its session the CLI reported, JSON text.
    pub usage_session: Option<String>,
}

/// Relations of `agents`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::agent_message::Entity")]
    AgentMessage,
}

impl Related<super::agent_message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AgentMessage.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
