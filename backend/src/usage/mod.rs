//! Usage and cost: what each agent CLI reports at the end of a turn (its `result` line), normalized
//! ([`cli`]) into [`Amounts`], and how a turn's report adds to its agent's totals ([`ReportedUsage::added`]).
//!
//! Some CLIs report what the turn used (Claude's tokens, the Gemini CLI's `stats`); others report
//! running totals of their session (Claude's `total_cost_usd`, Codex's `tokenUsage.total`), which go on
//! across a resumed session. A turn adds the difference between its session totals and those the
//! agent's previous turn reported; totals that went down mean a new session, counted whole. So a turn
//! that ended without a `result` (its CLI killed) still has its cost and Codex tokens counted by the
//! next turn that reports. Everything is integers (nano-dollars for cost), so sums are exact and the
//! same on every database.

pub mod cli;

use agentstream_wire::UsageTotals;
use serde::{Deserialize, Serialize};

/// Bounds on one report's numbers, so that no CLI output can overflow a sum kept in a 64-bit column
/// (2^40 tokens is a million times any model's context; $1M a turn).
pub const MAX_COUNT: i64 = 1 << 40;
pub const MAX_COST_NANOS: i64 = 1_000_000 * NANOS_PER_USD;
const NANOS_PER_USD: i64 = 1_000_000_000;

/// Amounts of usage: tokens, nano-dollars, turns, milliseconds. `cost_nanos` is `None` where no cost
/// was reported (not zero: unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_nanos: Option<i64>,
    pub turns: i64,
    pub duration_ms: i64,
}

impl Amounts {
    /// The agent's totals, as its row keeps them.
    pub fn of_agent(row: &entity::agent::Model) -> Amounts {
        Amounts {
            input_tokens: row.usage_input_tokens,
            output_tokens: row.usage_output_tokens,
            cache_read_tokens: row.usage_cache_read_tokens,
            cache_write_tokens: row.usage_cache_write_tokens,
            cost_nanos: row.usage_cost_nanos,
            turns: row.usage_turns,
            duration_ms: row.usage_duration_ms,
        }
    }

    /// Both added up (saturating: the database's columns are 64-bit).
    pub fn plus(&self, other: &Amounts) -> Amounts {
        Amounts {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            cache_read_tokens: self
                .cache_read_tokens
                .saturating_add(other.cache_read_tokens),
            cache_write_tokens: self
                .cache_write_tokens
                .saturating_add(other.cache_write_tokens),
            cost_nanos: match (self.cost_nanos, other.cost_nanos) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
            },
            turns: self.turns.saturating_add(other.turns),
            duration_ms: self.duration_ms.saturating_add(other.duration_ms),
        }
    }

    /// Whether every counter is at least `before`'s: running totals of the same session.
    fn continues(&self, before: &Amounts) -> bool {
        self.input_tokens >= before.input_tokens
            && self.output_tokens >= before.output_tokens
            && self.cache_read_tokens >= before.cache_read_tokens
            && self.cache_write_tokens >= before.cache_write_tokens
            && match (self.cost_nanos, before.cost_nanos) {
                (Some(now), Some(then)) => now >= then,
                (None, Some(_)) => false,
                _ => true,
            }
    }

    /// What running totals grew by since `before` (which they continue).
    fn since(&self, before: &Amounts) -> Amounts {
        Amounts {
            input_tokens: self.input_tokens - before.input_tokens,
            output_tokens: self.output_tokens - before.output_tokens,
            cache_read_tokens: self.cache_read_tokens - before.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens - before.cache_write_tokens,
            cost_nanos: self
                .cost_nanos
                .map(|now| now - before.cost_nanos.unwrap_or(0)),
            turns: 0,
            duration_ms: 0,
        }
    }

    /// As the protocol shows them.
    pub fn to_wire(&self) -> UsageTotals {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        UsageTotals {
            input_tokens: count(self.input_tokens),
            output_tokens: count(self.output_tokens),
            cache_read_tokens: count(self.cache_read_tokens),
            cache_write_tokens: count(self.cache_write_tokens),
            cost_usd: self.cost_nanos.map(usd),
            turns: count(self.turns),
            duration_ms: count(self.duration_ms),
        }
    }
}

/// Nano-dollars as dollars.
pub fn usd(nanos: i64) -> f64 {
    nanos as f64 / NANOS_PER_USD as f64
}

/// Dollars as nano-dollars, bounded; `None` for what is not a cost (negative, not finite).
pub fn nanos(usd: f64) -> Option<i64> {
    (usd.is_finite() && usd >= 0.0).then(|| {
        let nanos = (usd * NANOS_PER_USD as f64).round();
        if nanos >= MAX_COST_NANOS as f64 {
            MAX_COST_NANOS
        } else {
            nanos as i64
        }
    })
}

/// What one `result` line reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportedUsage {
    /// What this turn alone used.
    pub turn: Amounts,
    /// Running totals of the CLI's session, where it reports some.
    pub session: Option<Amounts>,
}

impl ReportedUsage {
    /// What the turn adds to its agent's totals, given the session totals the agent's previous report
    /// left (`before`).
    pub fn added(&self, before: Option<&Amounts>) -> Amounts {
        match &self.session {
            None => self.turn,
            Some(now) => {
                let grown = match before {
                    Some(before) if now.continues(before) => now.since(before),
                    _ => *now,
                };
                self.turn.plus(&grown)
            }
        }
    }

    /// The session totals to keep for the agent's next report: these, or the previous ones when this
    /// report has none.
    pub fn session_after(&self, before: Option<Amounts>) -> Option<Amounts> {
        self.session.or(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(nanos: i64) -> Amounts {
        Amounts {
            cost_nanos: Some(nanos),
            ..Default::default()
        }
    }

    #[test]
    fn a_turn_report_adds_itself() {
        let report = ReportedUsage {
            turn: Amounts {
                input_tokens: 10,
                output_tokens: 5,
                turns: 1,
                duration_ms: 7,
                ..Default::default()
            },
            session: None,
        };
        assert_eq!(report.added(Some(&cost(99))), report.turn);
        assert_eq!(report.added(None).cost_nanos, None);
    }

    #[test]
    fn running_totals_add_their_growth_and_a_new_session_counts_whole() {
        let report = |n| ReportedUsage {
            turn: Amounts {
                turns: 1,
                ..Default::default()
            },
            session: Some(cost(n)),
        };
        // First report: all of it.
        assert_eq!(report(50).added(None).cost_nanos, Some(50));
        // Claude's cost across two turns of one session (and a resumed one): the difference.
        assert_eq!(report(152).added(Some(&cost(50))).cost_nanos, Some(102));
        assert_eq!(report(152).added(Some(&cost(152))).cost_nanos, Some(0));
        // Totals that went down: a new session, counted whole.
        assert_eq!(report(30).added(Some(&cost(152))).cost_nanos, Some(30));
        assert_eq!(report(30).added(Some(&cost(152))).turns, 1);
        // Tokens (Codex's totals): the same rule.
        let tokens = |n| Amounts {
            input_tokens: n,
            output_tokens: n / 10,
            ..Default::default()
        };
        let codex = ReportedUsage {
            turn: Amounts::default(),
            session: Some(tokens(28_862)),
        };
        let added = codex.added(Some(&tokens(19_148)));
        assert_eq!((added.input_tokens, added.output_tokens), (9_714, 972));
        assert_eq!(added.cost_nanos, None);
        assert_eq!(codex.session_after(Some(tokens(1))), Some(tokens(28_862)));
        assert_eq!(
            ReportedUsage::default().session_after(Some(tokens(1))),
            Some(tokens(1))
        );
    }

    #[test]
    fn sums_saturate_and_a_missing_cost_stays_unknown() {
        let big = Amounts {
            input_tokens: i64::MAX,
            ..Default::default()
        };
        assert_eq!(big.plus(&big).input_tokens, i64::MAX);
        assert_eq!(big.plus(&big).cost_nanos, None);
        assert_eq!(big.plus(&cost(3)).cost_nanos, Some(3));
        assert_eq!(cost(0).to_wire().cost_usd, Some(0.0));
    }

    #[test]
    fn dollars_become_exact_nano_dollars_within_bounds() {
        assert_eq!(nanos(0.050452000000000004), Some(50_452_000));
        assert_eq!(nanos(0.0), Some(0));
        assert_eq!(nanos(-1.0), None);
        assert_eq!(nanos(f64::NAN), None);
        assert_eq!(nanos(1e300), Some(MAX_COST_NANOS));
        assert_eq!(usd(152_104_000), 0.152104);
    }
}
