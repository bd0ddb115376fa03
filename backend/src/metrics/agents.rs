//! `agentstream_agents`: the agents by type and status, counted in the database at each scrape. Read
//! rather than kept: it is right after a restart, and on several instances each one says the same
//! (the shared database's count) — a counter kept in memory would only know this process's launches.

use agentstream_wire::{AgentStatus, AgentType};
use entity::agent;
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QuerySelect};

/// The family's name.
const NAME: &str = "agentstream_agents";

/// `(type, status, count)` of every agent in the database.
pub async fn count(db: &impl ConnectionTrait) -> Result<Vec<(String, String, i64)>, DbErr> {
    entity::Agent::find()
        .select_only()
        .column(agent::Column::AgentType)
        .column(agent::Column::Status)
        .column_as(Expr::col(agent::Column::Id).count(), "count")
        .group_by(agent::Column::AgentType)
        .group_by(agent::Column::Status)
        .into_tuple::<(String, String, i64)>()
        .all(db)
        .await
}

/// The family from the counts: every known type and status (0 when there is none, so that a series
/// never vanishes), plus whatever else the database holds.
pub fn family(counts: &[(String, String, i64)]) -> prometheus::Result<Vec<MetricFamily>> {
    let gauge = IntGaugeVec::new(
        Opts::new(
            NAME,
            "Agents in the database, by type and status (the same on every instance of one database).",
        ),
        &["type", "status"],
    )?;
    for t in AgentType::ALL {
        for s in AgentStatus::ALL {
            gauge.with_label_values(&[t.as_str(), s.as_str()]).set(0);
        }
    }
    for (t, s, n) in counts {
        gauge.with_label_values(&[t.as_str(), s.as_str()]).add(*n);
    }
    let mut families = prometheus::core::Collector::collect(&gauge);
    // In a stable order, as the registry's own families are (a vector's children are not).
    for family in &mut families {
        family.mut_metric().sort_by_cached_key(|m| {
            m.get_label()
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect::<Vec<_>>()
        });
    }
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_and_status_is_shown_and_the_counts_are_theirs() {
        let counts = vec![
            ("synthetic".to_owned(), "completed".to_owned(), 3),
            ("synthetic".to_owned(), "running".to_owned(), 1),
        ];
        let families = family(&counts).unwrap();
        let metrics = families[0].get_metric();
        assert_eq!(metrics.len(), AgentType::ALL.len() * AgentStatus::ALL.len());
        let value = |t: &str, s: &str| {
            metrics
                .iter()
                .find(|m| {
                    let l = m.get_label();
                    l.iter().any(|p| p.name() == "type" && p.value() == t)
                        && l.iter().any(|p| p.name() == "status" && p.value() == s)
                })
                .map(|m| m.get_gauge().get_value())
        };
        assert_eq!(value("synthetic", "completed"), Some(3.0));
        assert_eq!(value("synthetic", "running"), Some(1.0));
        assert_eq!(value("codex", "failed"), Some(0.0));
    }
}
