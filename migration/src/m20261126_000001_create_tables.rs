//! The seed's schema: `agents`, and `agent_messages` with `UNIQUE(agent_id, sequence_number)` and a
//! cascading foreign key to its agent.

use sea_orm_migration::prelude::*;

/// Creates both tables and their indexes.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000001_create_tables"
    }
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    Type,
    Status,
    Prompt,
    Configuration,
    CreatedAt,
    StartedAt,
    CompletedAt,
    ErrorCode,
    ErrorMessage,
}

#[derive(DeriveIden)]
enum AgentMessages {
    Table,
    Id,
    AgentId,
    SequenceNumber,
    Type,
    Role,
    Content,
    Raw,
    Metadata,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Agents::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(Agents::Type).text().not_null())
                    .col(ColumnDef::new(Agents::Status).text().not_null())
                    .col(ColumnDef::new(Agents::Prompt).text().not_null())
                    .col(
                        ColumnDef::new(Agents::Configuration)
                            .text()
                            .not_null()
                            .default("{}"),
                    )
                    .col(ColumnDef::new(Agents::CreatedAt).text().not_null())
                    .col(ColumnDef::new(Agents::StartedAt).text().null())
                    .col(ColumnDef::new(Agents::CompletedAt).text().null())
                    .col(ColumnDef::new(Agents::ErrorCode).text().null())
                    .col(ColumnDef::new(Agents::ErrorMessage).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agents_status")
                    .table(Agents::Table)
                    .col(Agents::Status)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agents_created_at")
                    .table(Agents::Table)
                    .col(Agents::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentMessages::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AgentMessages::Id)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AgentMessages::AgentId).text().not_null())
                    .col(
                        ColumnDef::new(AgentMessages::SequenceNumber)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AgentMessages::Type).text().not_null())
                    .col(ColumnDef::new(AgentMessages::Role).text().null())
                    .col(ColumnDef::new(AgentMessages::Content).text().not_null())
                    .col(ColumnDef::new(AgentMessages::Raw).text().null())
                    .col(ColumnDef::new(AgentMessages::Metadata).text().null())
                    .col(ColumnDef::new(AgentMessages::CreatedAt).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agent_messages_agent_id")
                            .from(AgentMessages::Table, AgentMessages::AgentId)
                            .to(Agents::Table, Agents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_messages_agent_seq")
                    .table(AgentMessages::Table)
                    .col(AgentMessages::AgentId)
                    .col(AgentMessages::SequenceNumber)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // No separate `(agent_id)` index: the unique `(agent_id, sequence_number)` index serves every
        // lookup by agent through its prefix, and a second index would double the write cost of each token.
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_messages_created_at")
                    .table(AgentMessages::Table)
                    .col(AgentMessages::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AgentMessages::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Agents::Table).to_owned())
            .await
    }
}
