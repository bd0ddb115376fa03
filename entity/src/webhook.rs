//! `webhooks`: one row per webhook consumer (`POST /api/webhooks`).

use sea_orm::entity::prelude::*;

/// A consumer's row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    /// UUID string.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub url: String,
    /// The HMAC key of its signatures; never shown by the API.
    pub secret: String,
    /// JSON array of agent ids; `NULL`: every agent.
    pub agent_ids: Option<String>,
    /// JSON array of event names; `NULL`: every kind.
    pub events: Option<String>,
    pub paused: bool,
    /// Moves on at each change of the consumer, so that the instance delivering it starts over with
    /// the new settings.
    pub revision: i64,
    /// The instance that delivers it (several instances on PostgreSQL; `NULL` on SQLite).
    pub owner: Option<String>,
    pub created_at: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub last_delivered_at: Option<String>,
    /// Failed attempts of the delivery now due (0 once one succeeds).
    pub attempts: i64,
    pub next_retry_at: Option<String>,
}

/// Relations of `webhooks`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::webhook_position::Entity")]
    Position,
}

impl Related<super::webhook_position::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Position.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
