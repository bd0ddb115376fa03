//! Usage and cost: what each agent's turns reported, summed per agent (`Agent.usage`, `agent:status`)
//! and per UTC day and agent type (`GET /api/usage`): equal to what the agents reported in their
//! `result` lines, over several turns, exactly once across a restart; bad ranges refused. The synthetic
//! agent always; the real Claude, Gemini and Codex CLIs against the in-repo fakes when installed.

use agentstream_testkit::{assert_error, of_event, TestDir, TestServer};
use agentstream_wire::{
    Agent, AgentStatus, ServerEvent, StoredMessage, SyntheticConfig, UsageReport, UsageTotals,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::cli_agents::{Cli, CliAgents};
use crate::SERVER;

/// The numbers of the `result` lines of a history, added up as the usage docs say each CLI's are.
fn reported(history: &[StoredMessage], field: &str) -> u64 {
    of_event(history, "result")
        .iter()
        .map(|r| r.metadata["usage"][field].as_u64().unwrap_or(0))
        .sum()
}

async fn report(app: &TestServer, query: &str) -> UsageReport {
    let r = app
        .client
        .get(app.url(&format!("/api/usage{query}")))
        .send()
        .await
        .expect("GET /api/usage");
    assert_eq!(r.status(), 200);
    r.json().await.expect("a usage report")
}

/// A synthetic agent of `tokens` tokens a turn, run for `turns` turns; its history.
async fn synthetic(app: &TestServer, tokens: u64, turns: usize) -> (Uuid, Vec<StoredMessage>) {
    let config = SyntheticConfig {
        tokens: Some(tokens),
        interval_ms: Some(0),
        ..SyntheticConfig::default()
    };
    let id = app
        .try_launch_synthetic("count for me, please", &config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    app.wait_finished(id).await;
    for turn in 1..turns {
        app.send(id, &format!("and once more ({turn})")).await;
        app.wait_turns(id, turn + 1).await;
        app.wait_finished(id).await;
    }
    (id, app.messages(id, None).await)
}

#[tokio::test]
async fn a_synthetic_agents_usage_is_what_it_streamed_summed_over_its_turns() {
    let app = TestServer::spawn(SERVER).await;
    let mut ws = app.ws().await;
    let (id, history) = synthetic(&app, 7, 3).await;
    let agent = app.agent(id).await;
    let streamed = of_event(&history, "content_delta").len() as u64;
    assert_eq!(streamed, 21);
    assert_eq!(
        agent.usage,
        UsageTotals {
            input_tokens: reported(&history, "input_tokens"),
            output_tokens: streamed,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            // Plainly synthetic: it costs nothing, and says so (0, not unknown).
            cost_usd: Some(0.0),
            turns: 3,
            duration_ms: of_event(&history, "result")
                .iter()
                .map(|r| r.metadata["durationMs"].as_u64().unwrap_or(0))
                .sum(),
        }
    );
    assert!(agent.usage.input_tokens >= 3, "{:?}", agent.usage);
    // The list shows the same, and so did the status that ended the last turn.
    let listed: Vec<Agent> = app.get_json("/api/agents").await;
    assert_eq!(listed[0].usage, agent.usage);
    let mut last = None;
    while let Some(event) = ws
        .try_next_event(std::time::Duration::from_millis(300))
        .await
    {
        if let ServerEvent::AgentStatus(s) = event {
            if s.agent_id == id && s.status == AgentStatus::Completed {
                last = s.usage;
            }
        }
    }
    assert_eq!(last, Some(agent.usage));
}

#[tokio::test]
async fn usage_per_day_and_type_adds_up_its_agents_and_bad_ranges_are_400() {
    let app = TestServer::spawn(SERVER).await;
    let empty = report(&app, "").await;
    // The default range: the last 30 days through today (the server's UTC day), each listed.
    assert_eq!(empty.days.len(), 30);
    assert_eq!(
        empty.days.last().map(|d| d.day.as_str()),
        Some(empty.to.as_str())
    );
    assert_eq!((empty.total.agents, empty.total.usage.cost_usd), (0, None));
    let today = empty.to.clone();

    let (a, _) = synthetic(&app, 5, 2).await;
    let (b, _) = synthetic(&app, 11, 1).await;
    let (a, b) = (app.agent(a).await.usage, app.agent(b).await.usage);
    let day = report(&app, &format!("?from={today}&to={today}")).await;
    assert_eq!(
        (day.from.as_str(), day.to.as_str()),
        (today.as_str(), today.as_str())
    );
    assert_eq!(day.days.len(), 1);
    assert_eq!(day.total.agents, 2);
    assert_eq!(day.total.usage.output_tokens, 21);
    assert_eq!(
        day.total.usage.output_tokens,
        a.output_tokens + b.output_tokens
    );
    assert_eq!(
        day.total.usage.input_tokens,
        a.input_tokens + b.input_tokens
    );
    assert_eq!(day.total.usage.turns, 3);
    assert_eq!(day.total.usage.cost_usd, Some(0.0));
    assert_eq!(day.days[0].total, day.total);
    assert_eq!(day.types.len(), 1);
    assert_eq!(day.types[0].agent_type, "synthetic");
    assert_eq!(day.types[0].bucket, day.total);
    assert_eq!(day.days[0].types, day.types);
    // Today is the last day of the default range too; the day before has nothing.
    let month = report(&app, "").await;
    assert_eq!(month.total, day.total);
    assert_eq!(month.days.last().map(|d| &d.total), Some(&day.total));
    assert!(month.days[..29]
        .iter()
        .all(|d| d.total.agents == 0 && d.types.is_empty()));
    let before = &month.days[28].day;
    let nothing = report(&app, &format!("?from={before}&to={before}")).await;
    assert_eq!(nothing.total.usage, UsageTotals::default());

    for query in [
        "?from=2026-13-01",
        "?to=2026-02-30",
        "?from=yesterday",
        "?from=2026-1-01",
        "?from=2026-12-02T00:00:00Z",
        "?from=2026-12-02&to=2026-12-01",
        "?from=2025-01-01&to=2026-01-02",
        "?from=%FF",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/api/usage{query}")))
            .send()
            .await
            .expect("GET");
        assert_error(r, 400, "invalid_query").await;
    }
    // 366 days is the longest range.
    assert_eq!(
        report(&app, "?from=2025-01-01&to=2026-01-01")
            .await
            .days
            .len(),
        366
    );
    app.assert_healthy().await;
}

#[tokio::test]
async fn usage_is_counted_once_across_a_restart_and_goes_on_after_it() {
    let dir = TestDir::new();
    let mut app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    let (id, _) = synthetic(&app, 9, 2).await;
    let agent = app.agent(id).await;
    let totals = report(&app, "").await;
    assert_eq!(agent.usage.output_tokens, 18);
    app.kill().await;

    let app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    assert_eq!(app.agent(id).await.usage, agent.usage);
    assert_eq!(report(&app, "").await, totals);
    // The next turn adds itself, once.
    app.send(id, "after the restart").await;
    app.wait_turns(id, 3).await;
    let after = app.wait_finished(id).await;
    assert_eq!(after.usage.output_tokens, 27);
    assert_eq!(after.usage.turns, 3);
    let totals = report(&app, "").await;
    assert_eq!(totals.total.usage.output_tokens, 27);
    assert_eq!(totals.total.agents, 1);
}

#[tokio::test]
async fn a_purged_agents_usage_stays_counted_per_day() {
    let app = TestServer::spawn(SERVER).await;
    let (id, _) = synthetic(&app, 4, 1).await;
    let before = report(&app, "").await;
    assert_eq!(before.total.usage.output_tokens, 4);
    assert_eq!(app.delete_agent(id, true).await.status(), 204);
    assert_eq!(report(&app, "").await, before);
}

/// The usage the real CLI's two turns (a launch and a follow-up) reported, against what the agent
/// shows: Claude Code.
#[tokio::test]
async fn a_claude_code_agent_counts_the_tokens_of_each_result_and_its_sessions_cost() {
    let Some(c) = crate::claude::Claude::start(crate::claude::Transport::Cli).await else {
        return;
    };
    let agent = c.launch("say hello [[scenario:hello]]", json!({})).await;
    c.app.wait_finished(agent.id).await;
    c.app
        .send(agent.id, "once more [[scenario:hello chunk=3]]")
        .await;
    let history = c.app.wait_turns(agent.id, 2).await;
    let agent = c.app.wait_finished(agent.id).await;
    let results = of_event(&history, "result");
    assert_eq!(results.len(), 2);
    let usage = &agent.usage;
    assert!(
        usage.input_tokens > 0 && usage.output_tokens > 0,
        "{usage:?}"
    );
    assert_eq!(usage.input_tokens, reported(&history, "input_tokens"));
    assert_eq!(usage.output_tokens, reported(&history, "output_tokens"));
    assert_eq!(
        usage.cache_read_tokens,
        reported(&history, "cache_read_input_tokens")
    );
    assert_eq!(
        usage.cache_write_tokens,
        reported(&history, "cache_creation_input_tokens")
    );
    let field = |r: &StoredMessage, key: &str| r.metadata[key].as_u64().unwrap_or(0);
    assert_eq!(
        usage.turns,
        results.iter().map(|r| field(r, "numTurns")).sum::<u64>()
    );
    assert_eq!(
        usage.duration_ms,
        results.iter().map(|r| field(r, "durationMs")).sum::<u64>()
    );
    // `total_cost_usd` is the session's running total (the resumed CLI goes on from it): the agent's
    // cost is the last one, not the sum.
    let costs: Vec<f64> = results
        .iter()
        .map(|r| r.metadata["totalCostUsd"].as_f64().expect("a cost"))
        .collect();
    assert!(costs[1] > costs[0], "{costs:?}");
    let cost = usage.cost_usd.expect("Claude reports a cost");
    assert!((cost - costs[1]).abs() < 1e-9, "{cost} vs {costs:?}");
    let day = report(&c.app, "").await;
    assert_eq!(day.types[0].agent_type, "claude-code");
    assert_eq!(day.total.usage, agent.usage);
}

/// Gemini and Codex: two turns; no cost (unknown, not 0).
async fn cli_two_turns(cli: Cli) -> Option<(Agent, Vec<StoredMessage>)> {
    let g = CliAgents::start(cli).await?;
    let agent = g.launch("say hello [[scenario:hello]]", json!({})).await;
    g.app.wait_finished(agent.id).await;
    g.app.send(agent.id, "once more [[scenario:hello]]").await;
    let history = g.app.wait_turns(agent.id, 2).await;
    let agent = g.app.wait_finished(agent.id).await;
    assert_eq!(agent.usage.cost_usd, None, "{:?}", agent.usage);
    assert_eq!(agent.usage.turns, 2);
    let report = report(&g.app, "").await;
    assert_eq!(report.total.usage, agent.usage);
    assert_eq!(report.total.usage.cost_usd, None);
    Some((agent, history))
}

#[tokio::test]
async fn a_gemini_agent_counts_the_stats_of_each_run() {
    let Some((agent, history)) = cli_two_turns(Cli::Gemini).await else {
        return;
    };
    let cached = reported(&history, "cached");
    assert_eq!(agent.usage.cache_read_tokens, cached);
    assert_eq!(
        agent.usage.input_tokens,
        reported(&history, "input_tokens") - cached
    );
    assert_eq!(
        agent.usage.output_tokens,
        reported(&history, "output_tokens")
    );
    assert!(agent.usage.output_tokens > 0);
}

#[tokio::test]
async fn a_codex_agent_counts_its_threads_token_totals_once() {
    let Some((agent, history)) = cli_two_turns(Cli::Codex).await else {
        return;
    };
    // `tokenUsage.total` is the thread's running total: the agent's tokens are the last one's.
    let last: &Value = &of_event(&history, "result")[1].metadata["usage"]["total"];
    let n = |key: &str| last[key].as_u64().unwrap_or(0);
    assert!(n("outputTokens") > 0, "{last}");
    assert_eq!(agent.usage.output_tokens, n("outputTokens"));
    assert_eq!(agent.usage.cache_read_tokens, n("cachedInputTokens"));
    assert_eq!(
        agent.usage.input_tokens,
        n("inputTokens") - n("cachedInputTokens")
    );
}
