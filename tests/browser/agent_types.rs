//! The launch form as the server describes it (`GET /api/agent-types`): a Gemini CLI agent launched
//! from it, with the type's own options, shows its answer; a type whose CLI is missing says why and
//! cannot be launched.

use agentstream_testkit::agent_clis::{gemini_cli, GeminiHome};
use fake_anthropic::FakeAnthropic;
use fantoccini::Locator;

use crate::agents::assert_view_complete;
use crate::harness::{browser_test_with, Session, PAGE_TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_agent_launched_from_the_form_shows_its_answer() {
    let Some(cli) = gemini_cli() else {
        return;
    };
    let fake = FakeAnthropic::start();
    let home = GeminiHome::new().expect("a HOME for the Gemini CLI");
    let mut env = home.server_env(&cli, &fake.url());
    env.push((
        "AGENTSTREAM__CLAUDE__CLI_PATH".into(),
        "/nonexistent/claude".into(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser_test_with("gemini_from_the_form", false, &env, async |s: &Session| {
        s.open("/").await;
        let b = &s.browser;
        let select = || async {
            b.wait_for(Locator::Css("select[data-testid=launch-type]"))
                .await
        };
        // A type whose CLI is missing says so, naming the setting, and cannot be launched.
        select()
            .await
            .select_by_value("claude-code")
            .await
            .expect("select claude-code");
        let reason = b
            .wait_for(Locator::Css("[data-testid=type-unavailable]"))
            .await;
        let reason = reason.text().await.expect("its text");
        assert!(reason.contains("claude.cli_path"), "{reason}");
        let disabled = b
            .js("return document.querySelector('[data-testid=launch-submit]').disabled;")
            .await;
        assert_eq!(disabled, serde_json::Value::Bool(true));

        // The Gemini CLI's own options come from the server.
        select()
            .await
            .select_by_value("gemini-cli")
            .await
            .expect("select gemini-cli");
        b.wait_for(Locator::Css("select[data-testid=launch-approval-mode]"))
            .await
            .select_by_value("yolo")
            .await
            .expect("select yolo");
        b.fill(
            "textarea[data-testid=launch-prompt]",
            "say hello [[scenario:hello]]",
        )
        .await;
        b.fill("input[data-testid=launch-model]", "gemini-2.5-flash")
            .await;
        b.click("button[data-testid=launch-submit]").await;
        let id = s.wait_agent_view().await;
        s.app.wait_finished(id).await;
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        let shown = b.assistant_text().await;
        assert_eq!(shown, "Hello! This is the fake API answering.");
        let agent = s.app.agent(id).await;
        assert_eq!(
            agent.configuration,
            serde_json::json!({"model": "gemini-2.5-flash", "approvalMode": "yolo"})
        );
    })
    .await;
}
