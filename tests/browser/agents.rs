//! The app's main paths in a real browser: launching from the form, the exact streamed text and result,
//! a view loaded directly by its URL, a validation error from the server, terminating and deleting, and
//! the list following another client's launches and purges live.

use std::time::Duration;

use agentstream_testkit::{joined, TestServer};
use agentstream_wire::{AgentStatus, StoredMessage};
use fantoccini::Locator;
use serde_json::json;
use uuid::Uuid;

use crate::harness::{browser_test, browser_test_with, describe, Browser, Session, PAGE_TIMEOUT};

/// The stored messages of a finished agent, its text and its last sequence number.
pub async fn stored(app: &TestServer, id: Uuid) -> (Vec<StoredMessage>, String, i64) {
    let messages = app.messages(id, None).await;
    // The assistant text as stored: every `content_delta` message's content, in sequence order.
    let text = joined(&messages, "content_delta");
    let last = messages.last().map_or(0, |m| m.sequence_number);
    (messages, text, last)
}

/// Waits until the agent view shows everything stored for a finished agent, then checks the text
/// exactly, the message count and the badge.
pub async fn assert_view_complete(s: &Session, id: Uuid, status: &str, timeout: Duration) {
    assert_browser_view_complete(&s.browser, &s.app, id, status, timeout).await
}

/// [`assert_view_complete`] in any browser (a second client's).
pub async fn assert_browser_view_complete(
    browser: &Browser,
    app: &TestServer,
    id: Uuid,
    status: &str,
    timeout: Duration,
) {
    let (messages, text, last) = stored(app, id).await;
    let id_text = id.to_string();
    let page = browser
        .wait_page(
            &format!("the view of {id} to show all {last} messages and status {status}"),
            timeout,
            |p| {
                p.view_agent.as_deref() == Some(&id_text)
                    && p.last() == last
                    && p.badge.as_deref() == Some(status)
            },
        )
        .await;
    let shown = browser.assistant_text().await;
    assert!(
        shown == text,
        "[data-testid=assistant-text] differs from the stored content_delta messages: {} chars shown, \
         {} stored; first difference at char {}",
        shown.chars().count(),
        text.chars().count(),
        shown
            .chars()
            .zip(text.chars())
            .position(|(a, b)| a != b)
            .unwrap_or(shown.chars().count().min(text.chars().count()))
    );
    assert_eq!(
        page.count(),
        messages.len() as i64,
        "data-message-count (messages applied) vs messages stored: {}",
        describe(&page)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_from_the_form_streams_the_exact_text_and_the_result() {
    browser_test("launch_from_the_form", false, async |s: &Session| {
        s.open("/").await;
        let id = s.launch_synthetic("hello from the browser", 300, 5).await;
        // The server received what the form said.
        let agent = s.app.agent(id).await;
        assert_eq!(agent.prompt, "hello from the browser");
        assert_eq!(
            agent.configuration,
            json!({"tokens": 300, "intervalMs": 5}),
            "the launch form's configuration"
        );
        // Tokens show while it runs, not only at the end.
        s.browser
            .wait_page("the first tokens on the page", PAGE_TIMEOUT, |p| {
                p.text_length > 0
            })
            .await;
        assert_eq!(s.app.wait_finished(id).await.status, AgentStatus::Completed);
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;

        // The run's result is shown once it ended (the app chooses how: its text, or a summary of it).
        let page = s
            .browser
            .wait_page("[data-testid=result]", PAGE_TIMEOUT, |p| {
                p.result.as_deref().is_some_and(|r| !r.trim().is_empty())
            })
            .await;
        assert!(page.error_banner.is_none(), "{}", describe(&page));

        // The same view loaded directly by its URL (history instead of live).
        s.open(&format!("/agents/{id}")).await;
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        let page = s.browser.page().await;
        if let Some(item) = page.item(id) {
            assert_eq!(
                item.status.as_deref(),
                Some("completed"),
                "list item status"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_validation_error_shows_on_the_form() {
    browser_test("validation_error", false, async |s: &Session| {
        s.open("/").await;
        let b = &s.browser;
        b.wait_for(fantoccini::Locator::Css("select[data-testid=launch-type]"))
            .await
            .select_by_value("synthetic")
            .await
            .expect("select synthetic");
        b.fill("textarea[data-testid=launch-prompt]", "too many tokens")
            .await;
        // Above the server's synthetic.max_tokens (1,000,000): only the server knows that bound.
        b.fill("input[data-testid=launch-tokens]", "2000000").await;
        b.fill("input[data-testid=launch-interval-ms]", "5").await;
        b.click("button[data-testid=launch-submit]").await;
        let shown = b
            .wait_until(
                "an error in [data-testid=field-error-tokens], field-error-configuration or form-error",
                PAGE_TIMEOUT,
                || async {
                    let v = b
                        .js("for (const s of ['field-error-tokens', 'field-error-configuration', 'form-error']) {\
                               const e = document.querySelector(`[data-testid=${s}]`);\
                               if (e && e.textContent.trim()) return [s, e.textContent.trim()];\
                             } return null;")
                        .await;
                    serde_json::from_value::<Option<(String, String)>>(v).ok().flatten()
                },
            )
            .await;
        assert!(!shown.1.is_empty());
        let page = b.page().await;
        assert!(
            page.view_agent.is_none(),
            "no agent view after a refused launch"
        );
        let agents: Vec<serde_json::Value> = s
            .app
            .client
            .get(s.app.url("/api/agents"))
            .send()
            .await
            .expect("GET /api/agents")
            .json()
            .await
            .expect("agents");
        assert!(agents.is_empty(), "a refused launch created {agents:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_stops_the_agent_and_delete_removes_it() {
    browser_test("terminate", false, async |s: &Session| {
        s.open("/").await;
        let id = s.launch_synthetic("run until stopped", 100_000, 20).await;
        s.browser
            .wait_page("a running agent with some tokens", PAGE_TIMEOUT, |p| {
                p.last() >= 5 && p.badge.as_deref() == Some("running")
            })
            .await;
        s.browser.js("window.confirm = () => true;").await;
        s.browser.click("[data-testid=terminate]").await;
        s.browser
            .wait_page("the badge to say terminated", PAGE_TIMEOUT, |p| {
                p.badge.as_deref() == Some("terminated")
            })
            .await;
        assert_eq!(s.app.agent(id).await.status, AgentStatus::Terminated);
        // Everything stored before the stop is shown, nothing more.
        assert_view_complete(s, id, "terminated", PAGE_TIMEOUT).await;
        let (messages, _, _) = stored(&s.app, id).await;
        assert!(messages.len() < 100_003, "the agent was stopped early");
        // The list says so too, live where the view shows the list, else on the list page.
        if s.browser.page().await.item(id).is_none() {
            s.open("/").await;
        }
        s.browser
            .wait_page("the list item to say terminated", PAGE_TIMEOUT, |p| {
                p.item(id).and_then(|i| i.status.as_deref()) == Some("terminated")
            })
            .await;

        // Delete (after its confirmation) removes the agent: from the list, and from the server.
        s.open(&format!("/agents/{id}")).await;
        s.browser.js("window.confirm = () => true;").await;
        s.browser.click("[data-testid=delete]").await;
        s.browser
            .wait_page("the deleted agent to leave the list", PAGE_TIMEOUT, |p| {
                p.item(id).is_none()
            })
            .await;
        let r = s
            .app
            .client
            .get(s.app.url(&format!("/api/agents/{id}")))
            .send()
            .await
            .expect("GET agent");
        assert_eq!(r.status(), 404, "the delete button should purge the agent");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_launch_and_purge_show_live_in_the_list() {
    browser_test("live_list", false, async |s: &Session| {
        s.open("/").await;
        s.browser
            .wait_for(fantoccini::Locator::Css("[data-testid=agent-list]"))
            .await;
        s.browser
            .wait_page("the connection to be live", PAGE_TIMEOUT, |p| {
                p.connection.as_deref() == Some("live")
            })
            .await;
        // A marker that a reload would wipe out.
        s.browser.js("window.__sameDocument = 42;").await;

        let agent = s.app.launch(40, 25).await;
        s.browser
            .wait_page("another client's agent in the list", PAGE_TIMEOUT, |p| {
                p.item(agent.id).is_some()
            })
            .await;
        s.browser
            .wait_page("its status to turn completed, live", PAGE_TIMEOUT, |p| {
                p.item(agent.id).and_then(|i| i.status.as_deref()) == Some("completed")
            })
            .await;

        let r = s
            .app
            .client
            .delete(s.app.url(&format!("/api/agents/{}?purge=true", agent.id)))
            .send()
            .await
            .expect("DELETE ?purge=true");
        assert_eq!(r.status(), 204);
        s.browser
            .wait_page("the purged agent to leave the list", PAGE_TIMEOUT, |p| {
                p.item(agent.id).is_none()
            })
            .await;
        assert_eq!(
            s.browser.js("return window.__sameDocument;").await,
            json!(42),
            "the page was reloaded: the list must follow the server without a reload"
        );

        // Clicking an item opens its view at /agents/<id>.
        let other = s.app.launch(30, 0).await;
        s.app.wait_finished(other.id).await;
        s.browser
            .wait_page("the second agent in the list", PAGE_TIMEOUT, |p| {
                p.item(other.id).is_some()
            })
            .await;
        s.browser
            .click(&format!(
                "[data-testid=agent-item][data-agent-id=\"{}\"]",
                other.id
            ))
            .await;
        assert_eq!(s.wait_agent_view().await, other.id);
        assert_view_complete(s, other.id, "completed", PAGE_TIMEOUT).await;
        assert_eq!(
            s.browser.js("return window.__sameDocument;").await,
            json!(42)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_token_is_asked_for_it_once_and_then_works() {
    const TOKEN: &str = "b7f3c2a9e1d04f6a8c5b2e9d7a1f3c6e";
    let env = [("AGENTSTREAM__AUTH__TOKEN", TOKEN)];
    browser_test_with("token", false, &env, async |s: &Session| {
        let b = &s.browser;
        s.open("/").await;
        b.wait_for(Locator::Css("[data-testid=token-form]")).await;
        // A wrong token is refused, and the form says so.
        b.fill("input[data-testid=token-input]", "not-the-token-at-all")
            .await;
        b.click("button[data-testid=token-submit]").await;
        b.wait_for(Locator::Css("[data-testid=token-error]")).await;
        // The right one opens the app: launch, stream, the exact stored text.
        b.fill("input[data-testid=token-input]", TOKEN).await;
        b.click("button[data-testid=token-submit]").await;
        let id = s.launch_synthetic("behind a token", 200, 2).await;
        assert_eq!(s.app.wait_finished(id).await.status, AgentStatus::Completed);
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        // Kept: a reload goes straight to the agent, without asking again.
        s.open(&format!("/agents/{id}")).await;
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        let asked = b
            .js("return document.querySelector('[data-testid=token-form]') !== null")
            .await;
        assert_eq!(
            asked,
            serde_json::Value::Bool(false),
            "asked for the token again"
        );
    })
    .await;
}
