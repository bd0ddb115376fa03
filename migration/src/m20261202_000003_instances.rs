//! Several instances on one PostgreSQL database: each holds a lease on its row of `instances`, and each
//! agent names the instance that owns it (runs it, writes its messages, answers its commands).
//!
//! Lease times are milliseconds since the Unix epoch by the database's clock (never an instance's: their
//! clocks may disagree), as integers so that the schema stays the same on SQLite, which has one instance
//! and never reads them.

use sea_orm_migration::prelude::*;

/// Adds `instances` and `agents.owner`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000003_instances"
    }
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
    Epoch,
    Url,
    LeaseUntil,
    StartedAt,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Owner,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Instances::Id)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Instances::Epoch).big_integer().not_null())
                    .col(ColumnDef::new(Instances::Url).text().not_null())
                    .col(
                        ColumnDef::new(Instances::LeaseUntil)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Instances::StartedAt).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .add_column(ColumnDef::new(Agents::Owner).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agents_owner")
                    .table(Agents::Table)
                    .col(Agents::Owner)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_agents_owner")
                    .table(Agents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .drop_column(Agents::Owner)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Instances::Table).to_owned())
            .await
    }
}
