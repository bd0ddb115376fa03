//! Every connection cut mid-stream, several times: the page must say `reconnecting`, come back `live`,
//! and end with exactly the stored text — no duplicate, no hole.

use agentstream_wire::AgentStatus;

use crate::agents::assert_view_complete;
use crate::harness::{browser_test, Session, PAGE_TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_every_connection_mid_stream_converges_to_the_exact_text() {
    browser_test("reconnect_after_cuts", true, async |s: &Session| {
        let proxy = s.proxy.as_ref().expect("the chaos proxy");
        s.open("/").await;
        s.browser
            .wait_page("the connection to be live", PAGE_TIMEOUT, |p| {
                p.connection.as_deref() == Some("live")
            })
            .await;
        s.browser.record_connection_states().await;
        let id = s.launch_synthetic("through a flaky network", 3000, 2).await;

        let mut cuts_mid_stream = 0;
        for threshold in [300, 1200, 2100] {
            s.browser
                .wait_page(
                    &format!("data-last-sequence to reach {threshold}"),
                    PAGE_TIMEOUT,
                    |p| p.last() >= threshold,
                )
                .await;
            if s.app.agent(id).await.status != AgentStatus::Running {
                break;
            }
            let before = s.browser.connection_states().await.len();
            let cut = proxy.cut_all();
            assert!(
                cut >= 1,
                "no connection to cut: the page has no WebSocket open"
            );
            cuts_mid_stream += 1;
            // The page notices the cut, then comes back.
            s.browser
                .wait_until(
                    &format!("`reconnecting` then `live` after cut {cuts_mid_stream}"),
                    PAGE_TIMEOUT,
                    || async {
                        let states = s.browser.connection_states().await;
                        let after = states.get(before..).unwrap_or_default();
                        let saw = after.iter().any(|st| st.as_deref() == Some("reconnecting"));
                        let live = after.last().and_then(|st| st.as_deref()) == Some("live");
                        (saw && live).then_some(())
                    },
                )
                .await;
        }
        assert!(
            cuts_mid_stream >= 2,
            "the agent ended before two cuts could be made mid-stream ({cuts_mid_stream})"
        );

        assert_eq!(s.app.wait_finished(id).await.status, AgentStatus::Completed);
        assert_view_complete(s, id, "completed", PAGE_TIMEOUT).await;
        let page = s.browser.page().await;
        assert_eq!(page.connection.as_deref(), Some("live"));
        assert!(
            page.error_banner.is_none(),
            "an error banner after a successful run: {:?}",
            page.error_banner
        );
    })
    .await;
}
