//! `GET /api/usage`'s sums: `agent_usage` rows (one per turn that reported usage) added up per UTC day
//! and agent type over a range of days. Each row carries its day as `YYYY-MM-DD` text, written by the
//! server, so a range is a text comparison and a bucket a `GROUP BY` — the same SQL on SQLite and
//! PostgreSQL (no date functions, which the two spell differently). Sums are cast back to 64-bit
//! integers (PostgreSQL's `SUM` of a `BIGINT` is a `NUMERIC`).

use std::collections::BTreeMap;

use agentstream_wire::{DayUsage, TypeUsage, UsageBucket, UsageReport};
use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement};

use crate::usage::Amounts;

/// How a sum is grouped.
#[derive(Clone, Copy)]
enum By {
    DayAndType,
    Day,
    Type,
    Nothing,
}

impl By {
    fn keys(self) -> &'static str {
        match self {
            By::DayAndType => "day, agent_type",
            By::Day => "day",
            By::Type => "agent_type",
            By::Nothing => "",
        }
    }
}

/// One group's sums: its day and type (where grouped by them), its amounts and distinct agents.
struct Sum {
    day: Option<String>,
    agent_type: Option<String>,
    bucket: UsageBucket,
}

const SUMS: &str = "CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
    CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
    CAST(SUM(cache_read_tokens) AS BIGINT) AS cache_read_tokens, \
    CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens, \
    CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos, \
    CAST(SUM(turns) AS BIGINT) AS turns, \
    CAST(SUM(duration_ms) AS BIGINT) AS duration_ms, \
    CAST(COUNT(DISTINCT agent_id) AS BIGINT) AS agents";

async fn sums(db: &impl ConnectionTrait, from: &str, to: &str, by: By) -> Result<Vec<Sum>, DbErr> {
    let backend = db.get_database_backend();
    let (a, b) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    let keys = by.keys();
    let select = if keys.is_empty() {
        SUMS.to_owned()
    } else {
        format!("{keys}, {SUMS}")
    };
    let group = if keys.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {keys} ORDER BY {keys}")
    };
    let sql = format!("SELECT {select} FROM agent_usage WHERE day >= {a} AND day <= {b}{group}");
    let rows = db
        .query_all(Statement::from_sql_and_values(
            backend,
            sql,
            [from.into(), to.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let text = |col: &str| -> Result<Option<String>, DbErr> {
                match by {
                    By::DayAndType => row.try_get("", col).map(Some),
                    By::Day if col == "day" => row.try_get("", col).map(Some),
                    By::Type if col == "agent_type" => row.try_get("", col).map(Some),
                    _ => Ok(None),
                }
            };
            Ok(Sum {
                day: text("day")?,
                agent_type: text("agent_type")?,
                bucket: bucket(row)?,
            })
        })
        .collect()
}

/// A row's sums (a group without rows sums to zeros; its cost stays unknown).
fn bucket(row: &QueryResult) -> Result<UsageBucket, DbErr> {
    let n =
        |col: &str| -> Result<i64, DbErr> { Ok(row.try_get::<Option<i64>>("", col)?.unwrap_or(0)) };
    let amounts = Amounts {
        input_tokens: n("input_tokens")?,
        output_tokens: n("output_tokens")?,
        cache_read_tokens: n("cache_read_tokens")?,
        cache_write_tokens: n("cache_write_tokens")?,
        cost_nanos: row.try_get("", "cost_nanos")?,
        turns: n("turns")?,
        duration_ms: n("duration_ms")?,
    };
    Ok(UsageBucket {
        usage: amounts.to_wire(),
        agents: u64::try_from(n("agents")?).unwrap_or(0),
    })
}

/// The sums of the UTC days `from ..= to`: every day listed (zeros where nothing was used), and per
/// agent type.
pub async fn report(
    db: &impl ConnectionTrait,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<UsageReport, DbErr> {
    let (first, last) = (day(from), day(to));
    let total = sums(db, &first, &last, By::Nothing)
        .await?
        .pop()
        .map(|s| s.bucket)
        .unwrap_or_default();
    let typed = |sums: Vec<Sum>| -> Vec<(Option<String>, TypeUsage)> {
        sums.into_iter()
            .map(|s| {
                (
                    s.day,
                    TypeUsage {
                        agent_type: s.agent_type.unwrap_or_default(),
                        bucket: s.bucket,
                    },
                )
            })
            .collect()
    };
    let types = typed(sums(db, &first, &last, By::Type).await?)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let mut per_day: BTreeMap<String, DayUsage> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|d| {
            let day = day(d);
            let usage = DayUsage {
                day: day.clone(),
                total: UsageBucket::default(),
                types: Vec::new(),
            };
            (day, usage)
        })
        .collect();
    for s in sums(db, &first, &last, By::Day).await? {
        if let Some(d) = s.day.and_then(|d| per_day.get_mut(&d)) {
            d.total = s.bucket;
        }
    }
    for (d, t) in typed(sums(db, &first, &last, By::DayAndType).await?) {
        if let Some(d) = d.and_then(|d| per_day.get_mut(&d)) {
            d.types.push(t);
        }
    }
    Ok(UsageReport {
        from: first,
        to: last,
        total,
        days: per_day.into_values().collect(),
        types,
    })
}

/// `YYYY-MM-DD`.
pub fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}
