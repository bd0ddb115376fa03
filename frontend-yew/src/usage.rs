//! Usage and cost as the app shows them: compact figures (`12.3k tok`, `$0.0505`), the bars of the
//! per-day chart scaled to its height, and the day arithmetic of a range. Plain Rust with no browser
//! API: tested natively, as `timeline.rs` is.

use agentstream_wire::{DayUsage, UsageTotals};

/// What the chart draws per day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Metric {
    /// Input, output and cache tokens together.
    #[default]
    Tokens,
    /// US dollars (days whose agents reported no cost count 0).
    Cost,
    /// Model turns.
    Turns,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Tokens, Metric::Cost, Metric::Turns];

    pub fn label(self) -> &'static str {
        match self {
            Metric::Tokens => "tokens",
            Metric::Cost => "cost",
            Metric::Turns => "turns",
        }
    }

    /// The metric's value of some usage.
    pub fn of(self, usage: &UsageTotals) -> f64 {
        match self {
            Metric::Tokens => all_tokens(usage) as f64,
            Metric::Cost => usage.cost_usd.unwrap_or(0.0),
            Metric::Turns => usage.turns as f64,
        }
    }

    /// A value of the metric, for a bar's label.
    pub fn format(self, value: f64) -> String {
        match self {
            Metric::Tokens => count(value as u64),
            Metric::Cost => cost(Some(value)),
            Metric::Turns => count(value as u64),
        }
    }
}

/// Every token: input, output, and those read from or written to the cache.
pub fn all_tokens(usage: &UsageTotals) -> u64 {
    usage
        .input_tokens
        .saturating_add(usage.output_tokens)
        .saturating_add(usage.cache_read_tokens)
        .saturating_add(usage.cache_write_tokens)
}

/// A count, compact: `950`, `12.3k`, `4.5M`, `1.2G`.
pub fn count(n: u64) -> String {
    let scaled = |d: f64, unit: &str| {
        let v = n as f64 / d;
        if v < 10.0 {
            format!("{v:.1}{unit}")
        } else {
            format!("{v:.0}{unit}")
        }
    };
    match n {
        n if n < 1_000 => n.to_string(),
        n if n < 999_500 => scaled(1e3, "k"),
        n if n < 999_500_000 => scaled(1e6, "M"),
        _ => scaled(1e9, "G"),
    }
}

/// A cost in dollars: `$0.0505`, `$12.35`, `$0` for nothing, `—` when unknown (the CLI reports none).
pub fn cost(usd: Option<f64>) -> String {
    match usd {
        None => "—".to_owned(),
        Some(0.0) => "$0".to_owned(),
        Some(v) if v < 0.0001 => "<$0.0001".to_owned(),
        Some(v) if v < 1.0 => format!("${v:.4}"),
        Some(v) if v < 100.0 => format!("${v:.2}"),
        Some(v) => format!("${v:.0}"),
    }
}

/// The agent list's one-line figure: tokens and, when known, cost; empty when nothing was used.
pub fn summary(usage: &UsageTotals) -> String {
    let tokens = all_tokens(usage);
    if tokens == 0 && usage.turns == 0 {
        return String::new();
    }
    match usage.cost_usd {
        Some(usd) => format!("{} tok · {}", count(tokens), cost(Some(usd))),
        None => format!("{} tok", count(tokens)),
    }
}

/// One bar of the chart: its day, value, and height in the chart's units.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub day: String,
    pub value: f64,
    pub height: f64,
}

/// The days' bars for `metric`, scaled so the largest is `height` tall; a day with something gets at
/// least 1 unit, so it shows.
pub fn bars(days: &[DayUsage], metric: Metric, height: f64) -> Vec<Bar> {
    let values: Vec<f64> = days.iter().map(|d| metric.of(&d.total.usage)).collect();
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    days.iter()
        .zip(values)
        .map(|(d, value)| Bar {
            day: d.day.clone(),
            value,
            height: if max > 0.0 && value > 0.0 {
                (value / max * height).max(1.0)
            } else {
                0.0
            },
        })
        .collect()
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian); `None` when it is not one.
fn days_from_civil(day: &str) -> Option<i64> {
    let mut parts = day.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The `YYYY-MM-DD` date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The first day of the `days` days ending with `to` (`to` itself for 1).
pub fn range_start(to: &str, days: u32) -> Option<String> {
    days_from_civil(to).map(|t| civil_from_days(t - i64::from(days.max(1)) + 1))
}

/// `Mon DD` of a `YYYY-MM-DD` day, for the chart's axis.
pub fn short_day(day: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = day
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)));
    match (month, day.get(8..10)) {
        (Some(m), Some(d)) => format!("{m} {}", d.trim_start_matches('0')),
        _ => day.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentstream_wire::UsageBucket;

    fn day(day: &str, tokens: u64, usd: Option<f64>) -> DayUsage {
        DayUsage {
            day: day.into(),
            total: UsageBucket {
                usage: UsageTotals {
                    input_tokens: tokens,
                    cost_usd: usd,
                    turns: 1,
                    ..Default::default()
                },
                agents: 1,
            },
            types: Vec::new(),
        }
    }

    #[test]
    fn counts_and_costs_are_compact_and_an_unknown_cost_is_a_dash() {
        assert_eq!(count(950), "950");
        assert_eq!(count(12_345), "12k");
        assert_eq!(count(1_234), "1.2k");
        assert_eq!(count(999_999), "1.0M");
        assert_eq!(count(4_500_000), "4.5M");
        assert_eq!(count(2_000_000_000), "2.0G");
        assert_eq!(cost(None), "—");
        assert_eq!(cost(Some(0.0)), "$0");
        assert_eq!(cost(Some(0.050452)), "$0.0505");
        assert_eq!(cost(Some(0.152104)), "$0.1521");
        assert_eq!(cost(Some(0.00001)), "<$0.0001");
        assert_eq!(cost(Some(12.345)), "$12.35");
        assert_eq!(cost(Some(1234.5)), "$1234");
    }

    #[test]
    fn the_list_figure_shows_tokens_and_a_known_cost_only() {
        let mut usage = UsageTotals {
            input_tokens: 12_000,
            output_tokens: 345,
            cache_read_tokens: 1_000,
            turns: 2,
            ..Default::default()
        };
        assert_eq!(summary(&usage), "13k tok");
        usage.cost_usd = Some(0.05);
        assert_eq!(summary(&usage), "13k tok · $0.0500");
        assert_eq!(summary(&UsageTotals::default()), "");
    }

    #[test]
    fn bars_scale_to_the_largest_day_and_a_small_day_still_shows() {
        let days = [
            day("2026-12-01", 0, None),
            day("2026-12-02", 1_000, Some(0.5)),
            day("2026-12-03", 1, Some(0.0)),
        ];
        let bars = bars(&days, Metric::Tokens, 100.0);
        let heights: Vec<f64> = bars.iter().map(|b| b.height).collect();
        assert_eq!(heights, vec![0.0, 100.0, 1.0]);
        assert_eq!(bars[1].day, "2026-12-02");
        let costs = super::bars(&days, Metric::Cost, 50.0);
        assert_eq!(
            costs.iter().map(|b| b.height).collect::<Vec<_>>(),
            vec![0.0, 50.0, 0.0]
        );
        assert!(super::bars(&[day("2026-12-01", 0, None)], Metric::Turns, 10.0)[0].height > 0.0);
        assert!(super::bars(&[], Metric::Tokens, 10.0).is_empty());
    }

    #[test]
    fn a_range_starts_the_right_number_of_days_back_across_months_and_leap_years() {
        assert_eq!(range_start("2026-12-02", 30).as_deref(), Some("2026-11-03"));
        assert_eq!(range_start("2024-03-01", 2).as_deref(), Some("2024-02-29"));
        assert_eq!(range_start("2026-01-01", 7).as_deref(), Some("2025-12-26"));
        assert_eq!(range_start("2026-12-02", 1).as_deref(), Some("2026-12-02"));
        assert_eq!(range_start("1970-01-01", 1).as_deref(), Some("1970-01-01"));
        assert_eq!(range_start("2026-13-01", 7), None);
        assert_eq!(range_start("today", 7), None);
        assert_eq!(short_day("2026-12-02"), "Dec 2");
        assert_eq!(short_day("junk"), "junk");
    }
}
