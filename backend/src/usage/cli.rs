//! What each agent CLI's `result` reports, as a [`ReportedUsage`]. Input tokens are those not read from
//! a cache, whichever way the CLI counts them (OpenAI's and Google's input counts include cached
//! tokens; Anthropic's do not).
//!
//! | CLI | this turn | running totals of the session |
//! |---|---|---|
//! | Claude Code (and the synthetic agent) | `usage` (`input_tokens`, `output_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`), `num_turns`, `duration_ms` | `total_cost_usd` |
//! | Gemini CLI | `stats` (`input` or `input_tokens` − `cached`, `output_tokens`, `cached`, `duration_ms`), 1 turn; no cost | |
//! | Codex | 1 turn, the turn's `durationMs`; no cost | the last `thread/tokenUsage/updated`'s `total` (`inputTokens` − `cachedInputTokens`, `outputTokens`, `cachedInputTokens`, `cacheWriteInputTokens`) |

use serde_json::Value;

use super::{nanos, Amounts, ReportedUsage, MAX_COUNT};

/// A count the CLI reported, bounded; 0 when it is missing or not a count.
fn count(v: Option<&Value>) -> i64 {
    match v.and_then(Value::as_u64) {
        Some(n) => i64::try_from(n).unwrap_or(MAX_COUNT).min(MAX_COUNT),
        None => 0,
    }
}

/// Claude Code's `result` line (the synthetic agent prints the same). `None` when it reports neither
/// tokens nor cost.
pub fn claude(line: &serde_json::Map<String, Value>) -> Option<ReportedUsage> {
    let usage = line.get("usage").filter(|u| u.is_object());
    let cost = line
        .get("total_cost_usd")
        .and_then(Value::as_f64)
        .and_then(nanos);
    if usage.is_none() && cost.is_none() {
        return None;
    }
    let field = |key: &str| count(usage.and_then(|u| u.get(key)));
    Some(ReportedUsage {
        turn: Amounts {
            input_tokens: field("input_tokens"),
            output_tokens: field("output_tokens"),
            cache_read_tokens: field("cache_read_input_tokens"),
            cache_write_tokens: field("cache_creation_input_tokens"),
            cost_nanos: None,
            turns: line.get("num_turns").map_or(1, |n| count(Some(n))),
            duration_ms: count(line.get("duration_ms")),
        },
        session: cost.map(|cost_nanos| Amounts {
            cost_nanos: Some(cost_nanos),
            ..Default::default()
        }),
    })
}

/// The Gemini CLI's `result` line's `stats`.
pub fn gemini(stats: Option<&Value>) -> Option<ReportedUsage> {
    let stats = stats.filter(|s| s.is_object())?;
    let cached = count(stats.get("cached"));
    let input = match stats.get("input") {
        Some(input) => count(Some(input)),
        None => (count(stats.get("input_tokens")) - cached).max(0),
    };
    Some(ReportedUsage {
        turn: Amounts {
            input_tokens: input,
            output_tokens: count(stats.get("output_tokens")),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            cost_nanos: None,
            turns: 1,
            duration_ms: count(stats.get("duration_ms")),
        },
        session: None,
    })
}

/// A Codex turn's end: its duration, and the thread's last reported `tokenUsage` (if any).
pub fn codex(token_usage: Option<&Value>, duration_ms: Option<i64>) -> ReportedUsage {
    let total = token_usage
        .and_then(|u| u.get("total"))
        .filter(|t| t.is_object());
    ReportedUsage {
        turn: Amounts {
            turns: 1,
            duration_ms: duration_ms.unwrap_or(0).clamp(0, MAX_COUNT),
            ..Default::default()
        },
        session: total.map(|t| {
            let cached = count(t.get("cachedInputTokens"));
            Amounts {
                input_tokens: (count(t.get("inputTokens")) - cached).max(0),
                output_tokens: count(t.get("outputTokens")),
                cache_read_tokens: cached,
                cache_write_tokens: count(t.get("cacheWriteInputTokens")),
                ..Default::default()
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claude_tokens_are_the_turns_and_its_cost_the_sessions() {
        let line = json!({"type": "result", "num_turns": 2, "duration_ms": 98,
            "total_cost_usd": 0.152104, "usage": {"input_tokens": 25333, "output_tokens": 16,
            "cache_read_input_tokens": 3, "cache_creation_input_tokens": 4}});
        let reported = claude(line.as_object().expect("object")).expect("usage");
        assert_eq!(
            reported.turn,
            Amounts {
                input_tokens: 25333,
                output_tokens: 16,
                cache_read_tokens: 3,
                cache_write_tokens: 4,
                cost_nanos: None,
                turns: 2,
                duration_ms: 98,
            }
        );
        assert_eq!(
            reported.session.and_then(|s| s.cost_nanos),
            Some(152_104_000)
        );
        assert_eq!(
            claude(json!({"type": "result"}).as_object().expect("object")),
            None
        );
        // Hostile numbers are bounded, not trusted.
        let huge =
            json!({"usage": {"input_tokens": u64::MAX, "output_tokens": -3}, "total_cost_usd": -1});
        let reported = claude(huge.as_object().expect("object")).expect("usage");
        assert_eq!(
            (reported.turn.input_tokens, reported.turn.output_tokens),
            (MAX_COUNT, 0)
        );
        assert_eq!(reported.session, None);
    }

    #[test]
    fn gemini_input_excludes_the_cache_and_counts_one_turn() {
        let stats = json!({"total_tokens": 10648, "input_tokens": 10640, "output_tokens": 8,
            "cached": 40, "duration_ms": 148});
        let reported = gemini(Some(&stats)).expect("usage");
        assert_eq!(
            (
                reported.turn.input_tokens,
                reported.turn.cache_read_tokens,
                reported.turn.output_tokens
            ),
            (10600, 40, 8)
        );
        assert_eq!((reported.turn.turns, reported.turn.duration_ms), (1, 148));
        assert_eq!(reported.turn.cost_nanos, None);
        assert_eq!(gemini(None), None);
    }

    #[test]
    fn codex_tokens_are_the_threads_running_totals() {
        let usage = json!({"total": {"totalTokens": 19148, "inputTokens": 19137, "cachedInputTokens": 100,
            "cacheWriteInputTokens": 5, "outputTokens": 11}, "last": {"inputTokens": 1}});
        let reported = codex(Some(&usage), Some(77));
        let total = reported.session.expect("totals");
        assert_eq!(
            (
                total.input_tokens,
                total.cache_read_tokens,
                total.cache_write_tokens,
                total.output_tokens
            ),
            (19037, 100, 5, 11)
        );
        assert_eq!((reported.turn.turns, reported.turn.duration_ms), (1, 77));
        assert_eq!(codex(None, None).session, None);
    }
}
