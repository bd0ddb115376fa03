//! The Webhooks view: a consumer created from the form shows in the list with its lag and its last
//! error (its receiver is down), pauses and resumes, and is deleted; a refused URL shows on its field.

use fantoccini::Locator;
use serde_json::Value;

use crate::harness::{browser_test_with, Session, PAGE_TIMEOUT};

/// The text of the element `selector` inside the first webhook item, once it satisfies `pred`.
async fn wait_item_text(
    s: &Session,
    what: &str,
    selector: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    let script = format!(
        "const e = document.querySelector('[data-testid=webhook-item] [data-testid={selector}]'); \
         return e ? e.textContent : null;"
    );
    s.browser
        .wait_until(what, PAGE_TIMEOUT, || {
            let script = script.clone();
            let pred = &pred;
            async move {
                match s.browser.js(&script).await {
                    Value::String(text) if pred(&text) => Some(text),
                    _ => None,
                }
            }
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_created_listed_with_its_lag_paused_and_deleted_from_the_view() {
    let env = [
        ("AGENTSTREAM__WEBHOOKS__ALLOWED_HOSTS", "127.0.0.1"),
        ("AGENTSTREAM__WEBHOOKS__INITIAL_BACKOFF_MS", "100"),
        ("AGENTSTREAM__WEBHOOKS__MAX_BACKOFF_MS", "500"),
    ];
    browser_test_with("webhooks_view", false, &env, async |s: &Session| {
        let b = &s.browser;
        s.open("/").await;
        b.click("a[data-testid=nav-webhooks]").await;
        assert_eq!(b.path().await, "/webhooks");
        b.wait_for(Locator::Css("[data-testid=webhooks-empty]"))
            .await;

        // A URL the server refuses: the error shows on the URL field.
        b.fill("input[data-testid=webhook-url-input]", "ftp://127.0.0.1/x")
            .await;
        b.fill("input[data-testid=webhook-secret-input]", "k").await;
        b.click("button[data-testid=webhook-create]").await;
        let error = b
            .wait_for(Locator::Css("[data-testid=webhook-error-url]"))
            .await;
        assert!(error.text().await.unwrap().contains("http"));

        // Port 9 of loopback: nothing listens, so deliveries fail and wait.
        b.fill(
            "input[data-testid=webhook-url-input]",
            "http://127.0.0.1:9/hook",
        )
        .await;
        b.fill("input[data-testid=webhook-secret-input]", "k").await;
        b.click("button[data-testid=webhook-create]").await;
        wait_item_text(s, "the new webhook", "webhook-url", |t| {
            t == "http://127.0.0.1:9/hook"
        })
        .await;
        wait_item_text(s, "an active webhook", "webhook-state", |t| t == "active").await;

        let agent = s.app.launch(30, 0).await;
        s.app.wait_finished(agent.id).await;
        let lag = wait_item_text(s, "its lag", "webhook-lag", |t| {
            t.parse::<i64>().is_ok_and(|n| n >= 30)
        })
        .await;
        assert!(lag.parse::<i64>().unwrap() >= 30);
        wait_item_text(s, "its last error", "webhook-last-error", |t| {
            t.contains("connect")
        })
        .await;
        b.screenshot("webhooks_view_listed").await;

        b.click("button[data-testid=webhook-pause]").await;
        wait_item_text(s, "a paused webhook", "webhook-state", |t| t == "paused").await;
        let listed: Vec<Value> = s.app.get_json("/api/webhooks").await;
        assert_eq!(listed[0]["paused"], true);
        b.click("button[data-testid=webhook-pause]").await;
        wait_item_text(s, "a resumed webhook", "webhook-state", |t| t == "active").await;

        b.click("button[data-testid=webhook-delete]").await;
        b.wait_for(Locator::Css("[data-testid=webhooks-empty]"))
            .await;
        let listed: Vec<Value> = s.app.get_json("/api/webhooks").await;
        assert!(listed.is_empty());

        // The view is also where a reload of its address lands.
        s.open("/webhooks").await;
        b.wait_for(Locator::Css("[data-testid=webhook-form]")).await;
    })
    .await;
}
