//! How long the browser takes to show 20,000 tokens streamed as fast as the server can (a figure for
//! BENCHMARKS.md, printed, not asserted beyond a generous bound), and whether the page stays responsive
//! meanwhile.

use std::time::{Duration, Instant};

use agentstream_testkit::say;
use agentstream_wire::{AgentStatus, MessageType};
use fantoccini::Locator;

use crate::agents::assert_view_complete;
use crate::harness::{browser_test, describe, Session, PAGE_TIMEOUT};

/// Tokens of the agent.
const TOKENS: u64 = 20_000;
/// The bound on the whole render: far above any expected figure, only there to end a stuck test.
const RENDER_LIMIT: Duration = Duration::from_secs(120);
/// The longest a trivial script may wait for the page's main thread while tokens flow.
const RESPONSIVE: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_tokens_render_and_the_page_stays_responsive() {
    browser_test("render_20000_tokens", false, async |s: &Session| {
        s.open("/").await;
        let b = &s.browser;
        b.wait_for(Locator::Css("select[data-testid=launch-type]"))
            .await
            .select_by_value("synthetic")
            .await
            .expect("select synthetic");
        b.fill("textarea[data-testid=launch-prompt]", "as fast as you can")
            .await;
        b.fill("input[data-testid=launch-tokens]", &TOKENS.to_string())
            .await;
        b.fill("input[data-testid=launch-interval-ms]", "0").await;
        let submit = b
            .wait_for(Locator::Css("button[data-testid=launch-submit]"))
            .await;

        let started = Instant::now();
        submit.click().await.expect("click launch");
        let id = s.wait_agent_view().await;

        // Poll until the page shows everything the server stored; probe responsiveness meanwhile.
        let mut final_state: Option<(i64, usize)> = None; // (last sequence, text length in UTF-16 units)
        let mut worst_probe = Duration::ZERO;
        let mut probes = 0u32;
        let rendered = loop {
            let page = b.page().await;
            if let Some((last, length)) = final_state {
                if page.last() == last && page.text_length == length {
                    break started.elapsed();
                }
            } else if s.app.agent(id).await.status.is_terminal() {
                // The result message carries the whole text: its length is what the page must reach.
                let tail = s.app.messages(id, Some(TOKENS as i64 - 1)).await;
                let last = tail.last().map_or(0, |m| m.sequence_number);
                let text = tail
                    .iter()
                    .find(|m| m.message_type == MessageType::Result)
                    .map(|m| m.content.encode_utf16().count())
                    .expect("the result message");
                final_state = Some((last, text));
            }
            if started.elapsed() > RENDER_LIMIT {
                panic!(
                    "the page did not show all {TOKENS} tokens within {RENDER_LIMIT:?}; it shows {}",
                    describe(&page)
                );
            }
            if page.last() > 1 {
                let probe = Instant::now();
                b.js("return 1").await;
                worst_probe = worst_probe.max(probe.elapsed());
                probes += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let agent = s.app.agent(id).await;
        let server_ms = match (&agent.started_at, &agent.completed_at) {
            (Some(a), Some(b)) => chrono::DateTime::parse_from_rfc3339(b)
                .and_then(|b| Ok(b - chrono::DateTime::parse_from_rfc3339(a)?))
                .map_or(-1, |d| d.num_milliseconds()),
            _ => -1,
        };
        say(&format!(
            "browser render of {TOKENS} tokens: {} ms (from the click on launch; the server stored them in \
             {server_ms} ms; worst `return 1` round trip while streaming: {} ms over {probes} probes)",
            rendered.as_millis(),
            worst_probe.as_millis()
        ));

        assert_eq!(s.app.agent(id).await.status, AgentStatus::Completed);
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        assert!(probes > 0, "never probed while streaming");
        assert!(
            worst_probe < RESPONSIVE,
            "the page's main thread was blocked for {worst_probe:?} while tokens flowed (limit {RESPONSIVE:?})"
        );
    })
    .await;
}
