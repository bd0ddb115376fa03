//! The Server-Sent Events stream read by a browser's own `EventSource`, through a proxy that cuts every
//! connection mid-stream: `EventSource` reconnects by itself with `Last-Event-ID`, and what it received
//! is the stored history exactly — no duplicate, no hole. (A stream reconnecting after the agent ended
//! learns it from `subscribed`, whose status is final and whose `lastSequence` it has then received.)

use agentstream_wire::AgentStatus;
use serde_json::Value;

use crate::harness::{browser_test, Session, PAGE_TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_source_cut_mid_stream_reconnects_and_gets_every_message_once() {
    browser_test("event_source_reconnect", true, async |s: &Session| {
        let proxy = s.proxy.as_ref().expect("the chaos proxy");
        s.open("/").await;
        let agent = s.app.launch(2000, 3).await;
        // The page's own EventSource, same origin; what it receives is kept on `window`.
        let script = format!(
            "window.__sse = {{seqs: [], opens: 0, errors: 0, complete: false}};\
             const es = new EventSource('/api/agents/{}/events');\
             es.onopen = () => window.__sse.opens++;\
             es.onerror = () => window.__sse.errors++;\
             es.addEventListener('agent:message', e => {{\
               const m = JSON.parse(e.data).message;\
               if (String(m.sequenceNumber) !== e.lastEventId) throw new Error('id mismatch');\
               window.__sse.seqs.push(m.sequenceNumber);\
             }});\
             const ended = st => ['completed', 'failed', 'terminated', 'interrupted'].includes(st);\
             const done = () => {{ window.__sse.complete = true; es.close(); }};\
             es.addEventListener('agent:complete', done);\
             es.addEventListener('subscribed', e => {{\
               const s = JSON.parse(e.data);\
               window.__sse.subscribed = s;\
               const seqs = window.__sse.seqs;\
               const upTo = seqs.length ? seqs[seqs.length - 1] : 0;\
               if (ended(s.status) && upTo >= s.lastSequence) done();\
             }});\
             es.addEventListener('agent:message', e => {{\
               const s = window.__sse.subscribed;\
               if (s && ended(s.status) && Number(e.lastEventId) >= s.lastSequence) setTimeout(done, 0);\
             }});\
             return true;",
            agent.id
        );
        s.browser.js(&script).await;
        let seen = || async {
            let v = s.browser.js("return window.__sse;").await;
            let count = v["seqs"].as_array().map_or(0, Vec::len);
            (v, count)
        };
        let mut cuts = 0;
        for threshold in [200, 900] {
            s.browser
                .wait_until(&format!("{threshold} messages"), PAGE_TIMEOUT, || async {
                    (seen().await.1 >= threshold).then_some(())
                })
                .await;
            if s.app.agent(agent.id).await.status != AgentStatus::Running {
                break;
            }
            assert!(proxy.cut_all() >= 1, "no connection to cut");
            cuts += 1;
        }
        assert!(cuts >= 1, "the agent ended before a cut mid-stream");
        let (state, _) = s
            .browser
            .wait_until("agent:complete", PAGE_TIMEOUT, || async {
                let (v, count) = seen().await;
                (v["complete"] == Value::Bool(true)).then_some((v, count))
            })
            .await;
        let stored = s.app.messages(agent.id, None).await;
        let expected: Vec<i64> = stored.iter().map(|m| m.sequence_number).collect();
        let got: Vec<i64> = state["seqs"]
            .as_array()
            .expect("the sequence numbers")
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        assert_eq!(got, expected, "every message once, in order, across {cuts} cut(s)");
        assert!(state["opens"].as_i64() > Some(1), "it reconnected: {state}");
    })
    .await;
}
