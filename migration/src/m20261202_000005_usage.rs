//! Usage and cost: what each agent's turns reported, summed on its row (what `Agent.usage` shows,
//! read with the agent at no extra cost), and one row per turn that reported usage in `agent_usage`
//! (what `GET /api/usage` sums per day and agent type).
//!
//! `agent_usage` has no foreign key to `agents`: what an agent spent stays counted after the agent is
//! purged. Its key `(agent_id, sequence_number)` is the `result` message that reported the usage, so
//! a message can never be counted twice. `day` is the UTC date of that message (`YYYY-MM-DD`), written
//! by the server, so that bucketing by day is the same plain text comparison on SQLite and PostgreSQL.
//! Cost is kept in nano-dollars (integers: sums are exact on both databases); `NULL` where the CLI
//! reports no cost.

use sea_orm_migration::prelude::*;

/// Adds the usage columns of `agents` and the table `agent_usage`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000005_usage"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Agents {
    Table,
    UsageInputTokens,
    UsageOutputTokens,
    UsageCacheReadTokens,
    UsageCacheWriteTokens,
    UsageCostNanos,
    UsageTurns,
    UsageDurationMs,
    UsageSession,
}

#[derive(DeriveIden)]
enum AgentUsage {
    Table,
    AgentId,
    SequenceNumber,
    AgentType,
    Day,
    CreatedAt,
    InputTokens,
    OutputTokens,
    CacheReadTokens,
    CacheWriteTokens,
    CostNanos,
    Turns,
    DurationMs,
}

/// The counters added to `agents`, each `NOT NULL DEFAULT 0`.
const COUNTERS: [Agents; 6] = [
    Agents::UsageInputTokens,
    Agents::UsageOutputTokens,
    Agents::UsageCacheReadTokens,
    Agents::UsageCacheWriteTokens,
    Agents::UsageTurns,
    Agents::UsageDurationMs,
];

/// Adds one column to `agents`.
async fn add_column(manager: &SchemaManager<'_>, column: &mut ColumnDef) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(Agents::Table)
                .add_column(column)
                .to_owned(),
        )
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in COUNTERS {
            add_column(
                manager,
                ColumnDef::new(column).big_integer().not_null().default(0),
            )
            .await?;
        }
        // What the agent spent, and the last running totals its CLI reported (JSON text): a CLI that
        // reports totals of its session (Claude's cost, Codex's tokens) adds the difference.
        add_column(
            manager,
            ColumnDef::new(Agents::UsageCostNanos).big_integer().null(),
        )
        .await?;
        add_column(manager, ColumnDef::new(Agents::UsageSession).text().null()).await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentUsage::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(AgentUsage::AgentId).text().not_null())
                    .col(
                        ColumnDef::new(AgentUsage::SequenceNumber)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AgentUsage::AgentType).text().not_null())
                    .col(ColumnDef::new(AgentUsage::Day).text().not_null())
                    .col(ColumnDef::new(AgentUsage::CreatedAt).text().not_null())
                    .col(
                        ColumnDef::new(AgentUsage::InputTokens)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentUsage::OutputTokens)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentUsage::CacheReadTokens)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentUsage::CacheWriteTokens)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AgentUsage::CostNanos).big_integer().null())
                    .col(ColumnDef::new(AgentUsage::Turns).big_integer().not_null())
                    .col(
                        ColumnDef::new(AgentUsage::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(AgentUsage::AgentId)
                            .col(AgentUsage::SequenceNumber),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_usage_day")
                    .table(AgentUsage::Table)
                    .col(AgentUsage::Day)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AgentUsage::Table).to_owned())
            .await?;
        for column in COUNTERS
            .into_iter()
            .chain([Agents::UsageCostNanos, Agents::UsageSession])
        {
            manager
                .alter_table(
                    Table::alter()
                        .table(Agents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
