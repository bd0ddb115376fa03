//! Webhook consumers and their durable positions.
//!
//! `webhooks` holds each consumer (its URL, secret, filters, whether it is paused) and what its last
//! attempts said; `webhook_positions` holds, per consumer and agent, what was delivered and
//! acknowledged (a 2xx): the last message's sequence number, and the last lifecycle status with the
//! sequence number it was delivered at. Positions go with their consumer (`ON DELETE CASCADE`); an
//! agent's purge does not touch them: the consumer still owes the receiver that agent's
//! `agent:deleted`, and drops the position once it is delivered. Times are RFC 3339 text, as elsewhere.

use sea_orm_migration::prelude::*;

/// Adds `webhooks` and `webhook_positions`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000004_webhooks"
    }
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    Url,
    Secret,
    AgentIds,
    Events,
    Paused,
    Revision,
    Owner,
    CreatedAt,
    LastError,
    LastErrorAt,
    LastDeliveredAt,
    Attempts,
    NextRetryAt,
}

#[derive(DeriveIden)]
enum WebhookPositions {
    Table,
    WebhookId,
    AgentId,
    LastSequence,
    Status,
    StatusSequence,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Webhooks::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(Webhooks::Url).text().not_null())
                    .col(ColumnDef::new(Webhooks::Secret).text().not_null())
                    .col(ColumnDef::new(Webhooks::AgentIds).text().null())
                    .col(ColumnDef::new(Webhooks::Events).text().null())
                    .col(
                        ColumnDef::new(Webhooks::Paused)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Webhooks::Revision)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Webhooks::Owner).text().null())
                    .col(ColumnDef::new(Webhooks::CreatedAt).text().not_null())
                    .col(ColumnDef::new(Webhooks::LastError).text().null())
                    .col(ColumnDef::new(Webhooks::LastErrorAt).text().null())
                    .col(ColumnDef::new(Webhooks::LastDeliveredAt).text().null())
                    .col(
                        ColumnDef::new(Webhooks::Attempts)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Webhooks::NextRetryAt).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookPositions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(WebhookPositions::WebhookId)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookPositions::AgentId).text().not_null())
                    .col(
                        ColumnDef::new(WebhookPositions::LastSequence)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookPositions::Status).text().null())
                    .col(
                        ColumnDef::new(WebhookPositions::StatusSequence)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .primary_key(
                        Index::create()
                            .col(WebhookPositions::WebhookId)
                            .col(WebhookPositions::AgentId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_positions_webhook")
                            .from(WebhookPositions::Table, WebhookPositions::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookPositions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Webhooks::Table).to_owned())
            .await
    }
}
