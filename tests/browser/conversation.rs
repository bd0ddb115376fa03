//! Conversations in a real browser: a follow-up typed in the composer (Enter sends, Shift+Enter is a new
//! line) is answered and shown as a turn; a second browser sees it and its answer live; a tool allowed
//! from the permission card; a permission that still waits after a reload, answered after it; Interrupt
//! and Continue; a card whose turn was interrupted can no longer be answered.

use agentstream_testkit::{joined, request_id, TestServer};
use agentstream_wire::{keys, Agent, AgentStatus, EventType, StoredMessage};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::agents::{assert_browser_view_complete, assert_view_complete};
use crate::harness::{browser_test, describe, Browser, Session, PAGE_TIMEOUT};

/// Waits until `n` turns of the agent have ended and its status is terminal again; returns it.
async fn wait_turns(app: &TestServer, id: Uuid, n: usize) -> Agent {
    app.wait_turns(id, n).await;
    app.agent(id).await
}

fn of_type(
    messages: &[StoredMessage],
    event: EventType,
) -> impl Iterator<Item = &StoredMessage> + '_ {
    messages
        .iter()
        .filter(move |m| EventType::of(&m.metadata) == Some(event))
}

/// What each child of the transcript is, in order: its `data-testid`, or the first one inside it, or
/// its class.
async fn transcript_order(b: &Browser) -> Vec<String> {
    let v = b
        .js("return [...document.querySelector('[data-testid=transcript]').children].map((e) => {\
               const inner = e.querySelector('[data-testid]');\
               return e.getAttribute('data-testid') || (inner && inner.getAttribute('data-testid')) || e.className;\
             });")
        .await;
    serde_json::from_value(v).expect("transcript order")
}

/// The assistant text shown after the first user turn.
async fn text_after_the_user_turn(b: &Browser) -> String {
    let v = b
        .js(
            "const turn = document.querySelector('[data-testid=user-turn]');\
             if (!turn) return null;\
             return [...document.querySelectorAll('[data-testid=assistant-text]')]\
               .filter((e) => turn.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING)\
               .map((e) => e.textContent).join('');",
        )
        .await;
    v.as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_typed_in_the_composer_is_answered_and_shown_as_a_turn() {
    browser_test("follow_up", false, async |s: &Session| {
        s.open("/").await;
        let id = s.launch_synthetic("the first question", 30, 5).await;
        assert_eq!(
            wait_turns(&s.app, id, 1).await.status,
            AgentStatus::Completed
        );
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;

        // Shift+Enter is a new line, Enter sends.
        const FOLLOW_UP: &str = "a second question\non two lines";
        s.browser.send_follow_up(FOLLOW_UP).await;
        s.browser
            .wait_page("the follow-up shown as a user turn", PAGE_TIMEOUT, |p| {
                p.user_turns == [FOLLOW_UP]
            })
            .await;
        // The ended agent takes it as its next turn, which is answered.
        assert_eq!(
            wait_turns(&s.app, id, 2).await.status,
            AgentStatus::Completed
        );
        let messages = s.app.messages(id, None).await;
        let inputs: Vec<&StoredMessage> = of_type(&messages, EventType::UserInput).collect();
        assert_eq!(inputs.len(), 1, "one follow-up stored: {inputs:?}");
        assert_eq!(inputs[0].content, FOLLOW_UP, "stored as typed");
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;

        // The answer follows the user's turn, which follows the first turn's result.
        let after: Vec<StoredMessage> = messages
            .iter()
            .filter(|m| m.sequence_number > inputs[0].sequence_number)
            .cloned()
            .collect();
        let answer = joined(&after, "content_delta");
        assert!(!answer.is_empty(), "the second turn has text");
        assert_eq!(text_after_the_user_turn(&s.browser).await, answer);
        let order = transcript_order(&s.browser).await;
        let turn = order.iter().position(|k| k == "user-turn");
        let first_result = order.iter().position(|k| k == "result");
        let last_result = order.iter().rposition(|k| k == "result");
        assert!(
            turn.is_some() && first_result < turn && turn < last_result,
            "the transcript's blocks, in order: {order:?}"
        );
        // The composer is empty again, and ready for the next one.
        let value = s
            .browser
            .js("return document.querySelector('textarea[data-testid=composer-input]').value;")
            .await;
        assert_eq!(value, json!(""), "the composer is cleared once sent");
        let page = s.browser.page().await;
        assert_eq!(
            page.composer.as_deref(),
            Some("ready"),
            "{}",
            describe(&page)
        );
        assert!(page.composer_error.is_none(), "{}", describe(&page));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_typed_in_one_browser_shows_live_in_another() {
    browser_test("follow_up_two_browsers", false, async |s: &Session| {
        // Each turn streams for about 3 s: long enough to be watched live.
        let id = s.app.launch(300, 10).await.id;
        s.app.wait_finished(id).await;
        let path = format!("/agents/{id}");
        s.open(&path).await;
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        let other = s.second_browser().await;
        other.open(&s.url(&path)).await;
        assert_browser_view_complete(&other, &s.app, id, "completed", PAGE_TIMEOUT).await;
        other.js("window.__sameDocument = 7;").await;
        let before = other.page().await.text_length;

        const FOLLOW_UP: &str = "typed in the first browser";
        s.browser.send_follow_up(FOLLOW_UP).await;
        // The other client sees the follow-up, then the answer streaming in, while the turn runs.
        other
            .wait_page("the follow-up in the second browser", PAGE_TIMEOUT, |p| {
                p.user_turns == [FOLLOW_UP]
            })
            .await;
        other
            .wait_page(
                "the answer streaming into the second browser while it runs",
                PAGE_TIMEOUT,
                |p| p.badge.as_deref() == Some("running") && p.text_length > before,
            )
            .await;
        assert_eq!(
            wait_turns(&s.app, id, 2).await.status,
            AgentStatus::Completed
        );
        assert_browser_view_complete(&other, &s.app, id, "completed", PAGE_TIMEOUT).await;
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        assert_eq!(
            other.js("return window.__sameDocument;").await,
            json!(7),
            "the second browser reloaded: it must follow the conversation live"
        );
        let violations = other.csp_violations();
        other.shutdown().await;
        assert!(
            violations.is_empty(),
            "the second browser's page broke the CSP:\n{}",
            violations.join("\n")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_is_allowed_from_the_permission_card() {
    browser_test("permission_allow", false, async |s: &Session| {
        s.open("/").await;
        let id = s.launch_synthetic_with("may I run it?", 20, 5, true).await;
        let page = s
            .browser
            .wait_page("an answerable permission card", PAGE_TIMEOUT, |p| {
                p.cards.len() == 1
                    && p.cards[0].can_allow
                    && p.badge.as_deref() == Some("awaiting_permission")
            })
            .await;
        let card = &page.cards[0];
        assert_eq!(card.tool.as_deref(), Some("Bash"), "{}", describe(&page));
        let input = card.input.clone().unwrap_or_default();
        assert!(
            input.contains("\"command\": \"echo turn 1\""),
            "the tool's input, pretty-printed: {input:?}"
        );
        assert_eq!(card.state.as_deref(), Some("waiting"));
        let request = s.app.wait_permission_request(id, 0).await;
        assert_eq!(card.request_id.as_deref(), Some(request_id(&request).as_str()));
        assert_eq!(s.app.agent(id).await.status, AgentStatus::AwaitingPermission);
        // The header and the list say the agent waits.
        let notice = s
            .browser
            .js("const e = document.querySelector('[data-testid=awaiting-permission]');\
                 return e ? e.textContent : null;")
            .await;
        assert!(
            notice.as_str().is_some_and(|n| n.contains("Bash")),
            "the header's notice: {notice}"
        );
        s.browser
            .wait_page("the list to say awaiting_permission", PAGE_TIMEOUT, |p| {
                p.item(id).and_then(|i| i.status.as_deref()) == Some("awaiting_permission")
            })
            .await;

        s.browser.click("[data-testid=permission-allow]").await;
        assert_eq!(wait_turns(&s.app, id, 1).await.status, AgentStatus::Completed);
        let page = s
            .browser
            .wait_page("the card to show the decision", PAGE_TIMEOUT, |p| {
                p.cards.len() == 1 && p.cards[0].state.as_deref() == Some("allowed")
            })
            .await;
        assert_eq!(page.cards[0].decision.as_deref(), Some("Allowed"));
        assert!(!page.cards[0].can_allow, "no buttons on an answered card");
        assert!(page.cards[0].error.is_none(), "{}", describe(&page));
        let messages = s.app.messages(id, None).await;
        let answers: Vec<&StoredMessage> =
            of_type(&messages, EventType::PermissionResponse).collect();
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert_eq!(answers[0].metadata[keys::DECISION], json!("allow"));
        assert_eq!(
            answers[0].metadata[keys::REQUEST_ID],
            json!(request_id(&request))
        );
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        // The tool ran: its card has the result; the header no longer waits.
        let tool = s
            .browser
            .js("return [...document.querySelectorAll('[data-testid=tool-card]')].map((e) => e.textContent).join('\\n');")
            .await;
        assert!(
            tool.as_str().is_some_and(|t| t.contains("synthetic tool output")),
            "the tool card: {tool}"
        );
        let notice = s
            .browser
            .js("return document.querySelector('[data-testid=awaiting-permission]') === null;")
            .await;
        assert_eq!(notice, Value::Bool(true), "the header still says it waits");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_still_waits_after_a_reload_and_is_answered_after_it() {
    browser_test("permission_reload", false, async |s: &Session| {
        let response = s
            .app
            .post_agent(&json!({"type": "synthetic", "prompt": "ask me, then reload",
                                "configuration": {"tokens": 20, "intervalMs": 5, "askPermission": true}}))
            .await;
        assert_eq!(response.status(), 201);
        let agent: Agent = response.json().await.expect("agent");
        let id = agent.id;
        let request = request_id(&s.app.wait_permission_request(id, 0).await);
        let path = format!("/agents/{id}");
        s.open(&path).await;
        let waiting = |p: &crate::harness::Page| {
            p.cards.len() == 1
                && p.cards[0].request_id.as_deref() == Some(request.as_str())
                && p.cards[0].can_allow
        };
        s.browser
            .wait_page("the waiting card", PAGE_TIMEOUT, waiting)
            .await;

        s.browser.js("window.__beforeReload = 1;").await;
        s.browser.client.refresh().await.expect("reload");
        s.browser
            .wait_for(fantoccini::Locator::Css("[data-testid=connection]"))
            .await;
        let page = s
            .browser
            .wait_page("the card, still answerable after the reload", PAGE_TIMEOUT, |p| {
                waiting(p) && p.badge.as_deref() == Some("awaiting_permission")
            })
            .await;
        assert_eq!(
            s.browser.js("return window.__beforeReload ?? null;").await,
            Value::Null,
            "the page was not reloaded"
        );
        assert_eq!(page.cards[0].tool.as_deref(), Some("Bash"));

        s.browser.click("[data-testid=permission-always]").await;
        assert_eq!(wait_turns(&s.app, id, 1).await.status, AgentStatus::Completed);
        let page = s
            .browser
            .wait_page("the card to show the decision", PAGE_TIMEOUT, |p| {
                p.cards.len() == 1 && p.cards[0].state.as_deref() == Some("allowed")
            })
            .await;
        assert_eq!(page.cards[0].decision.as_deref(), Some("Always allowed"));
        let messages = s.app.messages(id, None).await;
        let answer = of_type(&messages, EventType::PermissionResponse)
            .next()
            .expect("the stored answer");
        assert_eq!(answer.metadata[keys::REQUEST_ID], json!(request));
        assert_eq!(answer.metadata[keys::DECISION], json!("allow"));
        assert_eq!(answer.metadata[keys::ALWAYS], json!(true));
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_ends_the_turn_and_continue_starts_the_next() {
    browser_test("interrupt_continue", false, async |s: &Session| {
        s.open("/").await;
        let id = s.launch_synthetic("a very long answer", 100_000, 20).await;
        s.browser
            .wait_page("a running agent with some tokens", PAGE_TIMEOUT, |p| {
                p.last() >= 5 && p.badge.as_deref() == Some("running")
            })
            .await;
        s.browser.click("[data-testid=interrupt]").await;
        s.browser
            .wait_page("the badge to say interrupted", PAGE_TIMEOUT, |p| {
                p.badge.as_deref() == Some("interrupted")
            })
            .await;
        assert_eq!(s.app.agent(id).await.status, AgentStatus::Interrupted);

        // Continue: the follow-up "Continue." starts the next turn of the same session.
        s.browser.click("[data-testid=continue]").await;
        s.browser
            .wait_page(
                "Continue. as a user turn, and the next turn running",
                PAGE_TIMEOUT,
                |p| p.user_turns == ["Continue."] && p.badge.as_deref() == Some("running"),
            )
            .await;
        let messages = s.app.messages(id, None).await;
        let inputs: Vec<&StoredMessage> = of_type(&messages, EventType::UserInput).collect();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].content, "Continue.");
        let last = s.browser.page().await.last();
        s.browser
            .wait_page("the next turn's tokens", PAGE_TIMEOUT, |p| {
                p.last() >= last + 5
            })
            .await;

        s.browser.click("[data-testid=interrupt]").await;
        s.browser
            .wait_page("interrupted again", PAGE_TIMEOUT, |p| {
                p.badge.as_deref() == Some("interrupted")
            })
            .await;
        assert_eq!(
            wait_turns(&s.app, id, 2).await.status,
            AgentStatus::Interrupted
        );
        assert_view_complete(s, id, "interrupted", PAGE_TIMEOUT).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_whose_turn_was_interrupted_can_no_longer_be_answered() {
    browser_test("permission_interrupted", false, async |s: &Session| {
        s.open("/").await;
        let id = s.launch_synthetic_with("ask, then stop", 20, 5, true).await;
        s.browser
            .wait_page("an answerable permission card", PAGE_TIMEOUT, |p| {
                p.cards.len() == 1
                    && p.cards[0].can_allow
                    && p.badge.as_deref() == Some("awaiting_permission")
            })
            .await;
        s.browser.click("[data-testid=interrupt]").await;
        let page = s
            .browser
            .wait_page("the card to be no longer waiting", PAGE_TIMEOUT, |p| {
                p.badge.as_deref() == Some("interrupted")
                    && p.cards.len() == 1
                    && p.cards[0].state.as_deref() == Some("ended")
            })
            .await;
        assert!(!page.cards[0].can_allow, "{}", describe(&page));
        assert!(
            page.cards[0]
                .decision
                .as_deref()
                .is_some_and(|d| d.contains("No longer waiting")),
            "{}",
            describe(&page)
        );
        assert_eq!(s.app.agent(id).await.status, AgentStatus::Interrupted);
        let messages = s.app.messages(id, None).await;
        assert_eq!(
            of_type(&messages, EventType::PermissionResponse).count(),
            0,
            "nobody answered"
        );
        assert_view_complete(s, id, "interrupted", PAGE_TIMEOUT).await;
    })
    .await;
}
