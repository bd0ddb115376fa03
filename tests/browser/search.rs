//! The agent list's search box: typing a word lists only the agents that hold it (in their prompt or in
//! what they streamed), with the passage found; a word nobody holds says so; clearing the box shows
//! every agent again.

use std::time::Duration;

use agentstream_testkit::TestServer;
use agentstream_wire::{AgentMatch, SyntheticConfig};
use fantoccini::Locator;
use uuid::Uuid;

use crate::harness::{browser_test, Session, PAGE_TIMEOUT};

/// A synthetic agent answering `tokens` tokens at once (20 tokens say "… each subscriber in order.").
async fn launch(app: &TestServer, prompt: &str, tokens: u64) -> Uuid {
    let configuration = SyntheticConfig {
        tokens: Some(tokens),
        interval_ms: Some(0),
        ..SyntheticConfig::default()
    };
    let agent = app
        .try_launch_synthetic(prompt, &configuration)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.wait_finished(agent.id).await;
    agent.id
}

/// Waits until the API's search for `q` finds `expected` (the index follows the store within a second).
async fn wait_indexed(app: &TestServer, q: &str, expected: &[Uuid]) {
    let indexed = tokio::time::timeout(PAGE_TIMEOUT, async {
        loop {
            let found: Vec<AgentMatch> = app
                .client
                .get(app.url("/api/agents"))
                .query(&[("q", q)])
                .send()
                .await
                .expect("search")
                .json()
                .await
                .expect("results");
            if found.iter().map(|m| m.agent.id).collect::<Vec<_>>() == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(indexed.is_ok(), "{q:?} was not indexed in time");
}

/// The ids the list shows, in order.
async fn listed(s: &Session) -> Vec<String> {
    s.browser
        .page()
        .await
        .items
        .into_iter()
        .filter_map(|i| i.id)
        .collect()
}

/// Types `keys` into the search box (WebDriver keys, as a user would).
async fn type_into_search(s: &Session, keys: &str) {
    s.browser
        .wait_for(Locator::Css("input[data-testid=agent-search]"))
        .await
        .send_keys(keys)
        .await
        .unwrap_or_else(|e| panic!("type into the search box: {e}"));
}

/// Waits until the list shows exactly `expected`, in order.
async fn wait_listed(s: &Session, what: &str, expected: &[Uuid]) {
    let expected: Vec<String> = expected.iter().map(Uuid::to_string).collect();
    s.browser
        .wait_until(what, PAGE_TIMEOUT, || async {
            (listed(s).await == expected).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_box_lists_only_the_matching_agents_and_clearing_it_lists_all_again() {
    browser_test("search_box", false, async |s: &Session| {
        let giraffe = launch(&s.app, "Feed the giraffe", 3).await;
        let okapi = launch(&s.app, "Groom the okapi", 3).await;
        let zebra = launch(&s.app, "Count the zebra stripes", 20).await;
        wait_indexed(&s.app, "subscriber", &[zebra]).await;
        wait_indexed(&s.app, "giraffe", &[giraffe]).await;
        wait_indexed(&s.app, "okapi", &[okapi]).await;
        s.open("/").await;
        let all = [zebra, okapi, giraffe];
        wait_listed(s, "every agent, newest first", &all).await;

        type_into_search(s, "okapi").await;
        wait_listed(s, "only the okapi agent", &[okapi]).await;

        // A word only the zebra agent's streamed answer holds; the passage found is shown.
        const BACKSPACE: char = '\u{E003}';
        let erase: String = std::iter::repeat_n(BACKSPACE, "okapi".len()).collect();
        type_into_search(s, &format!("{erase}subscriber")).await;
        wait_listed(s, "only the zebra agent", &[zebra]).await;
        let matched = s
            .browser
            .js("return document.querySelector('[data-testid=agent-match]')?.textContent ?? null;")
            .await;
        assert!(
            matched.as_str().is_some_and(|m| m.contains("subscriber")),
            "the passage found: {matched}"
        );

        // Nobody holds this word: the list says so.
        let erase: String = std::iter::repeat_n(BACKSPACE, "subscriber".len()).collect();
        type_into_search(s, &format!("{erase}\"NEAR(pangolin")).await;
        wait_listed(s, "no agent", &[]).await;
        s.browser
            .wait_for(Locator::Css("[data-testid=search-empty]"))
            .await;

        // Cleared: every agent again.
        let erase: String = std::iter::repeat_n(BACKSPACE, "\"NEAR(pangolin".len()).collect();
        type_into_search(s, &erase).await;
        wait_listed(s, "every agent again", &all).await;
        let empty_note = s
            .browser
            .js("return document.querySelector('[data-testid=search-empty]') === null;")
            .await;
        assert_eq!(empty_note, serde_json::Value::Bool(true));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_matches_than_a_page_are_listed_a_page_at_a_time_with_more_matches() {
    browser_test("search_more", false, async |s: &Session| {
        // One more than two pages of 20: the newest first, then "More matches" twice.
        let mut herd = Vec::new();
        for n in 0..41 {
            herd.push(launch(&s.app, &format!("Count gnu number {n}"), 1).await);
        }
        let loner = launch(&s.app, "A lone ibex", 1).await;
        herd.reverse();
        wait_indexed(&s.app, "gnu", &herd).await;
        wait_indexed(&s.app, "ibex", &[loner]).await;
        s.open("/").await;
        type_into_search(s, "gnu").await;
        wait_listed(s, "the newest 20 matches", &herd[..20]).await;

        s.browser.click("[data-testid=search-more]").await;
        wait_listed(s, "the next 20 after them", &herd[..40]).await;
        s.browser.click("[data-testid=search-more]").await;
        wait_listed(s, "every match", &herd).await;
        // The last page was short: nothing more to ask for.
        s.browser
            .wait_until("no more matches offered", PAGE_TIMEOUT, || async {
                let gone = s
                    .browser
                    .js("return document.querySelector('[data-testid=search-more]') === null;")
                    .await;
                (gone == serde_json::Value::Bool(true)).then_some(())
            })
            .await;
        assert!(!listed(s).await.contains(&loner.to_string()));

        // A new query starts again from its first page.
        const BACKSPACE: char = '\u{E003}';
        let erase: String = std::iter::repeat_n(BACKSPACE, "gnu".len()).collect();
        type_into_search(s, &format!("{erase}ibex")).await;
        wait_listed(s, "only the ibex", &[loner]).await;
    })
    .await;
}
