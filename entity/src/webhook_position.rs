//! `webhook_positions`: per consumer and agent, what the receiver acknowledged.

use sea_orm::entity::prelude::*;

/// A position's row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_positions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub webhook_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub agent_id: String,
    /// The last message delivered (or passed over by the consumer's filter).
    pub last_sequence: i64,
    /// The last status delivered; `NULL` before the first.
    pub status: Option<String>,
    /// The agent's last message when that status was delivered.
    pub status_sequence: i64,
}

/// Relations of `webhook_positions`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::webhook::Entity",
        from = "Column::WebhookId",
        to = "super::webhook::Column::Id",
        on_delete = "Cascade"
    )]
    Webhook,
}

impl Related<super::webhook::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Webhook.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
