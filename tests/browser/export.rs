//! The agent header's export links: the downloaded JSONL is the stored history, line by line; on a
//! server with a token (which a plain link cannot send) the app fetches the file with it instead.

use agentstream_wire::{AgentStatus, StoredMessage};
use fantoccini::Locator;
use serde_json::Value;

use crate::agents::assert_view_complete;
use crate::harness::{browser_test, browser_test_with, Session, PAGE_TIMEOUT};

/// Keeps the Blobs the page hands to a download (`URL.createObjectURL`): what a click downloads when
/// the app fetches the file itself.
const CAPTURE: &str = "window.__blobs = [];\
    const create = URL.createObjectURL;\
    URL.createObjectURL = b => { window.__blobs.push(b); return create.call(URL, b); };\
    return true;";

/// The lines of a downloaded JSONL file, as stored messages.
fn lines(text: &str) -> Vec<StoredMessage> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a message ({e}): {l}")))
        .collect()
}

async fn launch_and_finish(s: &Session) -> uuid::Uuid {
    let id = s.launch_synthetic("to export", 120, 1).await;
    assert_eq!(s.app.wait_finished(id).await.status, AgentStatus::Completed);
    assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jsonl_link_downloads_the_stored_history() {
    browser_test("export_link", false, async |s: &Session| {
        s.open("/").await;
        let id = launch_and_finish(s).await;
        let b = &s.browser;
        let link = b
            .wait_for(Locator::Css("a[data-testid=export-jsonl]"))
            .await;
        let file = link.attr("download").await.expect("download attribute");
        assert_eq!(file.as_deref(), Some(format!("agent-{id}.jsonl").as_str()));
        let markdown = b
            .wait_for(Locator::Css("a[data-testid=export-markdown]"))
            .await;
        assert_eq!(
            markdown
                .attr("download")
                .await
                .expect("download attribute")
                .as_deref(),
            Some(format!("agent-{id}.md").as_str())
        );
        let text = b
            .js(
                "return fetch(document.querySelector('a[data-testid=export-jsonl]').href)\
                 .then(r => r.text());",
            )
            .await;
        let text = text.as_str().expect("the file's text");
        assert_eq!(lines(text), s.app.messages(id, None).await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_app_downloads_the_file_itself() {
    const TOKEN: &str = "e4a1c9b7d3f05a2e8c6b1d9f7a3e5c20";
    let env = [("AGENTSTREAM__AUTH__TOKEN", TOKEN)];
    browser_test_with("export_token", false, &env, async |s: &Session| {
        let b = &s.browser;
        s.open("/").await;
        b.wait_for(Locator::Css("[data-testid=token-form]")).await;
        b.fill("input[data-testid=token-input]", TOKEN).await;
        b.click("button[data-testid=token-submit]").await;
        let id = launch_and_finish(s).await;
        b.js(CAPTURE).await;
        b.click("a[data-testid=export-jsonl]").await;
        let text = b
            .wait_until(
                "the app to hand the file to a download",
                PAGE_TIMEOUT,
                || async {
                    let v = b.js("return window.__blobs.length ? null : false;").await;
                    if v == Value::Bool(false) {
                        return None;
                    }
                    let text = b.js("return window.__blobs[0].text();").await;
                    text.as_str().map(str::to_owned)
                },
            )
            .await;
        assert_eq!(lines(&text), s.app.messages(id, None).await);
        // Still the app: the click did not navigate to an error page.
        assert_eq!(b.path().await, format!("/agents/{id}"));
    })
    .await;
}
