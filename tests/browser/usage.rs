//! Usage in the web app: after an agent ran, its header shows its usage (tokens in / out / cache, cost,
//! turns, time) and the agent list its compact figure; the Usage view, reached from the top bar, shows
//! the range's totals, the chart has a bar for today (and only today: nothing else ran), the table a
//! row for the agent's type, and a shorter range redraws the chart with as many bars as days.

use agentstream_wire::{AgentStatus, UsageReport};
use fantoccini::Locator;
use serde_json::Value;

use crate::agents::assert_view_complete;
use crate::harness::{browser_test, Browser, Session, PAGE_TIMEOUT};

/// The trimmed text of the first element matching `selector`, if any.
async fn text(b: &Browser, selector: &str) -> Option<String> {
    let script = format!(
        "const e = document.querySelector({}); return e ? e.textContent.trim() : null;",
        Value::from(selector)
    );
    b.js(&script).await.as_str().map(str::to_owned)
}

/// Waits until the element's text is `want`.
async fn wait_text(b: &Browser, selector: &str, want: &str) {
    b.wait_until(
        &format!("{selector} to read {want:?}"),
        PAGE_TIMEOUT,
        || async { (text(b, selector).await.as_deref() == Some(want)).then_some(()) },
    )
    .await
}

/// Every bar of the chart: its day and height.
async fn bars(b: &Browser) -> Vec<(String, f64)> {
    let value = b
        .js(
            "return Array.from(document.querySelectorAll('[data-testid=usage-bar]'))\
             .map(r => [r.dataset.day, parseFloat(r.getAttribute('height'))]);",
        )
        .await;
    let Value::Array(bars) = value else {
        return Vec::new();
    };
    bars.iter()
        .filter_map(|bar| Some((bar.get(0)?.as_str()?.to_owned(), bar.get(1)?.as_f64()?)))
        .collect()
}

/// Waits until the chart has a bar for each of `days` days; its bars.
async fn wait_bars(b: &Browser, days: usize) -> Vec<(String, f64)> {
    b.wait_until(
        &format!("{days} bars in the chart"),
        PAGE_TIMEOUT,
        || async {
            let bars = bars(b).await;
            (bars.len() == days).then_some(bars)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_view_and_the_agent_header_show_what_an_agent_used() {
    browser_test("usage_view", false, async |s: &Session| {
        let b = &s.browser;
        s.open("/").await;
        let id = s.launch_synthetic("what did it cost?", 120, 1).await;
        assert_eq!(s.app.wait_finished(id).await.status, AgentStatus::Completed);
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        let usage = s.app.agent(id).await.usage;
        assert_eq!((usage.output_tokens, usage.turns), (120, 1));
        let tokens = usage.input_tokens + usage.output_tokens;
        assert!(tokens < 1000, "{usage:?}");

        // The header: in / out / cache, cost (the synthetic agent's plain $0), turns, time.
        wait_text(b, "[data-testid=usage-out]", "out 120").await;
        let input = format!("in {}", usage.input_tokens);
        wait_text(
            b,
            "[data-testid=agent-usage-header] [data-testid=usage-in]",
            &input,
        )
        .await;
        wait_text(
            b,
            "[data-testid=agent-usage-header] [data-testid=usage-cache]",
            "cache 0 / 0",
        )
        .await;
        wait_text(
            b,
            "[data-testid=agent-usage-header] [data-testid=usage-cost]",
            "$0",
        )
        .await;
        wait_text(b, "[data-testid=usage-turns]", "1 turns").await;
        // The list's figure.
        let item = format!("[data-agent-id='{id}'] [data-testid=agent-usage]");
        wait_text(b, &item, &format!("{tokens} tok · $0")).await;

        // The Usage view, from the top bar.
        b.click("a[data-testid=usage-link]").await;
        b.wait_for(Locator::Css("[data-testid=usage-view]")).await;
        assert_eq!(b.path().await, "/usage");
        wait_text(b, "[data-testid=usage-total-tokens]", &tokens.to_string()).await;
        wait_text(b, "[data-testid=usage-total-agents]", "1").await;
        wait_text(b, "[data-testid=usage-total-cost]", "$0").await;
        wait_text(b, "[data-testid=usage-total-turns]", "1").await;
        let report: UsageReport = s.app.get_json("/api/usage").await;
        let today = report.to.clone();
        let chart = wait_bars(b, 30).await;
        assert_eq!(
            chart.last().map(|(day, _)| day.as_str()),
            Some(today.as_str())
        );
        assert!(chart.last().is_some_and(|(_, h)| *h > 0.0), "{chart:?}");
        assert!(chart[..29].iter().all(|(_, h)| *h == 0.0), "{chart:?}");
        b.wait_for(Locator::Css(
            "[data-testid=usage-type][data-type=synthetic]",
        ))
        .await;

        // A week: seven bars, today's still the last and the only one drawn.
        b.click("button[data-testid=usage-range][data-days='7']")
            .await;
        let week = wait_bars(b, 7).await;
        assert_eq!(
            week.last().map(|(day, _)| day.as_str()),
            Some(today.as_str())
        );
        assert!(week.last().is_some_and(|(_, h)| *h > 0.0), "{week:?}");
    })
    .await;
}
