//! The web app served by one instance, the agents run by another (several instances on PostgreSQL):
//! the app shows another instance's agent live and exactly, and a follow-up typed in it reaches the
//! agent's owner. Run by `scripts/test`'s PostgreSQL pass; NOT APPLICABLE on SQLite.

use agentstream_testkit::{on_postgres, TestServer};
use agentstream_wire::{AgentStatus, EventType};

use crate::agents::assert_view_complete;
use crate::harness::{browser_test, dist, Session, PAGE_TIMEOUT};
use crate::SERVER;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_by_another_instance_streams_live_and_takes_a_follow_up_from_the_app() {
    if !on_postgres("the web app of one instance showing another's agents") {
        return;
    }
    browser_test("another_instance", false, async |s: &Session| {
        let owner_dir = s.app.another_instance_dir();
        let owner = TestServer::builder()
            .dir(&owner_dir)
            .env(
                "AGENTSTREAM__SERVER__STATIC_DIR",
                dist().to_str().expect("utf-8 path"),
            )
            .spawn(SERVER)
            .await;
        s.open("/").await;
        s.browser
            .wait_page("the connection to be live", PAGE_TIMEOUT, |p| {
                p.connection.as_deref() == Some("live")
            })
            .await;
        // Launched on the other instance: in this app's list, live, then its whole answer.
        let agent = owner.launch(300, 10).await;
        s.browser
            .wait_page(
                "the other instance's agent in the list",
                PAGE_TIMEOUT,
                |p| p.item(agent.id).is_some(),
            )
            .await;
        s.browser
            .click(&format!(
                "[data-testid=agent-item][data-agent-id=\"{}\"]",
                agent.id
            ))
            .await;
        assert_eq!(s.wait_agent_view().await, agent.id);
        s.browser
            .wait_page("its tokens streaming in", PAGE_TIMEOUT, |p| {
                p.text_length > 0
            })
            .await;
        owner.wait_finished(agent.id).await;
        assert_view_complete(s, agent.id, "completed", PAGE_TIMEOUT).await;

        // A follow-up typed here is stored and answered by the owner, and shown here as it streams.
        const FOLLOW_UP: &str = "asked through the other instance";
        s.browser.send_follow_up(FOLLOW_UP).await;
        s.browser
            .wait_page("the follow-up shown as a user turn", PAGE_TIMEOUT, |p| {
                p.user_turns == [FOLLOW_UP]
            })
            .await;
        owner.wait_turns(agent.id, 2).await;
        assert_eq!(owner.agent(agent.id).await.status, AgentStatus::Completed);
        let stored = owner.messages(agent.id, None).await;
        assert!(stored
            .iter()
            .any(|m| EventType::of(&m.metadata) == Some(EventType::UserInput)
                && m.content == FOLLOW_UP));
        // The owner ran the agent; this instance never had an actor for it (nothing logged of it).
        let id = agent.id.to_string();
        assert!(owner.log().contains(&id), "{}", owner.log());
        assert!(!s.app.log().contains(&id), "{}", s.app.log());
        assert_view_complete(s, agent.id, "completed", PAGE_TIMEOUT).await;
    })
    .await;
}
