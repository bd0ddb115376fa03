//! Counting a turn's usage in the write that stores its `result` message: the agent's totals (its
//! row) and the turn's row of `agent_usage` change in the same transaction as the message is stored,
//! so the count is exactly the stored results, across restarts and instances. Only a message that
//! reports usage costs anything here (three statements: the agent's row read, updated, the turn's
//! row inserted); a token costs nothing.

use entity::agent;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::requests::Request;
use crate::clock;
use crate::usage::{Amounts, ReportedUsage};

/// What `request` reports using, if it is a stored message that reports any.
pub(super) fn reported(request: &Request) -> Option<(Uuid, i64, &ReportedUsage)> {
    match request {
        Request::Append {
            agent_id,
            message,
            sequence_number,
            ..
        } => message
            .outcome
            .as_ref()
            .and_then(|o| o.reported.as_ref())
            .map(|r| (*agent_id, *sequence_number, r)),
        _ => None,
    }
}

/// Counts the usage the messages of `run` report (numbered already, in `txn`).
pub(super) async fn count(txn: &impl ConnectionTrait, run: &[Request]) -> Result<(), DbErr> {
    for (agent_id, sequence_number, report) in run.iter().filter_map(reported) {
        count_one(txn, agent_id, sequence_number, report).await?;
    }
    Ok(())
}

async fn count_one(
    txn: &impl ConnectionTrait,
    agent_id: Uuid,
    sequence_number: i64,
    report: &ReportedUsage,
) -> Result<(), DbErr> {
    let id = agent_id.to_string();
    // Its message was just stored, so the row is there (its foreign key held).
    let row = entity::Agent::find_by_id(id.clone())
        .one(txn)
        .await?
        .ok_or(DbErr::RecordNotUpdated)?;
    let before: Option<Amounts> = row
        .usage_session
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let added = report.added(before.as_ref());
    let totals = Amounts::of_agent(&row).plus(&added);
    let session = report
        .session_after(before)
        .and_then(|s| serde_json::to_string(&s).ok());
    entity::Agent::update_many()
        .col_expr(
            agent::Column::UsageInputTokens,
            Expr::value(totals.input_tokens),
        )
        .col_expr(
            agent::Column::UsageOutputTokens,
            Expr::value(totals.output_tokens),
        )
        .col_expr(
            agent::Column::UsageCacheReadTokens,
            Expr::value(totals.cache_read_tokens),
        )
        .col_expr(
            agent::Column::UsageCacheWriteTokens,
            Expr::value(totals.cache_write_tokens),
        )
        .col_expr(
            agent::Column::UsageCostNanos,
            Expr::value(totals.cost_nanos),
        )
        .col_expr(agent::Column::UsageTurns, Expr::value(totals.turns))
        .col_expr(
            agent::Column::UsageDurationMs,
            Expr::value(totals.duration_ms),
        )
        .col_expr(agent::Column::UsageSession, Expr::value(session))
        .filter(agent::Column::Id.eq(id.clone()))
        .exec(txn)
        .await?;
    let created_at = clock::now();
    let day = created_at.get(..10).unwrap_or_default().to_owned();
    let mut insert = Query::insert();
    insert
        .into_table(AgentUsage::Table)
        .columns(AgentUsage::COLUMNS);
    insert
        .values([
            id.into(),
            sequence_number.into(),
            row.agent_type.into(),
            day.into(),
            created_at.into(),
            added.input_tokens.into(),
            added.output_tokens.into(),
            added.cache_read_tokens.into(),
            added.cache_write_tokens.into(),
            added.cost_nanos.into(),
            added.turns.into(),
            added.duration_ms.into(),
        ])
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    // A message is numbered once; should its number ever come again, it is not counted twice.
    insert.on_conflict(
        OnConflict::columns([AgentUsage::AgentId, AgentUsage::SequenceNumber])
            .do_nothing()
            .to_owned(),
    );
    txn.execute(txn.get_database_backend().build(&insert))
        .await?;
    Ok(())
}

/// `agent_usage`: one row per turn that reported usage (see the migration).
#[derive(sea_orm::DeriveIden, Clone, Copy)]
pub(crate) enum AgentUsage {
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

impl AgentUsage {
    /// Every column, in the order [`count_one`] gives their values.
    const COLUMNS: [AgentUsage; 12] = [
        AgentUsage::AgentId,
        AgentUsage::SequenceNumber,
        AgentUsage::AgentType,
        AgentUsage::Day,
        AgentUsage::CreatedAt,
        AgentUsage::InputTokens,
        AgentUsage::OutputTokens,
        AgentUsage::CacheReadTokens,
        AgentUsage::CacheWriteTokens,
        AgentUsage::CostNanos,
        AgentUsage::Turns,
        AgentUsage::DurationMs,
    ];
}
