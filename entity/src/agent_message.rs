//! `agent_messages`: every stored message, numbered 1, 2, 3… per agent.

use sea_orm::entity::prelude::*;

/// A message's row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_messages")]
pub struct Model {
    /// UUID string.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub agent_id: String,
    /// Assigned inside the INSERT as `MAX(sequence_number) + 1` for the agent; unique per agent.
    pub sequence_number: i64,
    #[sea_orm(column_name = "type")]
    pub message_type: String,
    pub role: Option<String>,
    pub content: String,
    pub raw: Option<String>,
    /// JSON text.
    pub metadata: Option<String>,
    pub created_at: String,
}

/// Relations of `agent_messages`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::agent::Entity",
        from = "Column::AgentId",
        to = "super::agent::Column::Id",
        on_delete = "Cascade"
    )]
    Agent,
}

impl Related<super::agent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agent.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
