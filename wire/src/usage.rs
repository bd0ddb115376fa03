//! Usage and cost: what the agent CLIs report (tokens, cost, turns, time), summed per agent
//! ([`UsageTotals`] on `Agent.usage` and `agent:status`) and per day and agent type over a range
//! (`GET /api/usage`, [`UsageReport`]).

use serde::{Deserialize, Serialize};

/// What agents used: tokens, cost, turns and time, summed over the turns that reported them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    /// Input tokens not read from a cache.
    pub input_tokens: u64,
    /// Output tokens (reasoning included where the CLI counts it there).
    pub output_tokens: u64,
    /// Input tokens read from the model's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the model's prompt cache.
    pub cache_write_tokens: u64,
    /// US dollars, as the CLI computed them; `null` when no turn counted here reported a cost (the
    /// Gemini CLI and Codex report none).
    pub cost_usd: Option<f64>,
    /// The model turns the CLI reported (Claude's `num_turns`: one per model call), 1 per turn for a
    /// CLI that reports none.
    pub turns: u64,
    /// The turns' durations as the CLI reported them, in milliseconds.
    pub duration_ms: u64,
}

/// A sum over some agents' turns, with how many agents they were.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageBucket {
    #[serde(flatten)]
    pub usage: UsageTotals,
    /// How many distinct agents reported usage in the bucket.
    pub agents: u64,
}

/// One agent type's part of a bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TypeUsage {
    /// The agent type (`synthetic`, `claude-code`, …), as text: a newer server may know more.
    #[serde(rename = "type")]
    pub agent_type: String,
    #[serde(flatten)]
    pub bucket: UsageBucket,
}

/// One UTC day of a [`UsageReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DayUsage {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Every type's sum that day.
    pub total: UsageBucket,
    /// Per agent type, those with usage that day only, by type name.
    pub types: Vec<TypeUsage>,
}

/// `GET /api/usage`: totals per day and per agent type over a range of UTC days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// The first day of the range, `YYYY-MM-DD`.
    pub from: String,
    /// The last day of the range (inclusive).
    pub to: String,
    /// The whole range.
    pub total: UsageBucket,
    /// Every day of the range, oldest first, days without usage as zeros.
    pub days: Vec<DayUsage>,
    /// Per agent type over the whole range, those with usage only, by type name.
    pub types: Vec<TypeUsage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_camel_case_and_a_missing_cost_is_null() {
        let json = serde_json::to_value(UsageTotals {
            input_tokens: 1,
            cache_write_tokens: 2,
            ..Default::default()
        })
        .expect("json");
        assert_eq!(json["inputTokens"], 1);
        assert_eq!(json["cacheWriteTokens"], 2);
        assert!(json["costUsd"].is_null());
        let bucket = serde_json::to_value(TypeUsage {
            agent_type: "codex".into(),
            bucket: UsageBucket {
                usage: UsageTotals::default(),
                agents: 3,
            },
        })
        .expect("json");
        assert_eq!(
            (bucket["type"].as_str(), bucket["agents"].as_u64()),
            (Some("codex"), Some(3))
        );
        assert_eq!(bucket["turns"], 0);
    }
}
