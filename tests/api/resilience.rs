//! Nothing lost: slow consumers, dropped sockets, crashes and shutdowns, each checked against the stored
//! history.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use agentstream_testkit::{assert_contiguous, TestDir, TestServer, WsClient, TIMEOUT};
use agentstream_wire::{AgentStatus, ServerEvent, StoredMessage};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

use crate::SERVER;

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_without_holding_anyone_up_and_then_recovers() {
    const TOKENS: u64 = 100_000;
    // The default backlog allowance: about 18,000 messages of this agent.
    let app = TestServer::builder()
        .env("AGENTSTREAM__WEBSOCKET__MAX_QUEUED_BYTES", "8388608")
        .spawn(SERVER)
        .await;
    let agent = app.launch(TOKENS, 0).await;
    let mut stalled = app.ws_small_buffer().await;
    stalled.subscribe(agent.id, Some(0)).await;
    let mut healthy = app.ws().await;
    healthy.subscribe(agent.id, Some(0)).await;

    // The healthy client gets everything while the stalled one reads nothing at all. It keeps the
    // frames as they come and parses them afterwards, so that it reads as fast as a real client would.
    let mut frames = Vec::new();
    loop {
        let frame = tokio::time::timeout(TIMEOUT, healthy.stream.next())
            .await
            .unwrap_or_else(|_| panic!("the healthy client was held up; log:\n{}", app.log()))
            .expect("the healthy client's socket ended")
            .expect("ws read");
        match frame {
            WsMessage::Text(text) if text.contains("\"agent:complete\"") => break,
            WsMessage::Text(text) => frames.push(text),
            WsMessage::Close(close) => panic!("the healthy client was closed: {close:?}"),
            _ => {}
        }
    }
    let got: Vec<StoredMessage> = frames
        .iter()
        .filter_map(|text| match serde_json::from_str(text) {
            Ok(ServerEvent::AgentMessage(m)) => Some(m.message),
            _ => None,
        })
        .collect();
    let stored = app.messages(agent.id, None).await;
    assert_eq!(stored.len() as u64, TOKENS + 3);
    assert_eq!(
        got, stored,
        "the healthy client's copy differs from the history"
    );

    // The stalled client now reads: a prefix of the history, in order, then the slow-consumer close.
    let (events, close) = stalled.read_until_close().await;
    let mut seen: Vec<StoredMessage> = messages_of(events);
    assert_eq!(close.code, CloseCode::Library(4008), "{close:?}");
    assert!(close.reason.starts_with("slow_consumer"), "{close:?}");
    // Counted for operators, as a WebSocket's.
    assert_eq!(crate::metrics::slow_consumer_cuts(&app).await, (1.0, 0.0));
    assert!(
        (seen.len() as u64) < TOKENS,
        "the stalled client got {} messages: it was never cut",
        seen.len()
    );
    assert_contiguous(&seen, 1);

    // It reconnects and resumes where it stopped: together, exactly the history.
    let mut again = app.ws().await;
    again
        .subscribe(agent.id, Some(seen.last().map_or(0, |m| m.sequence_number)))
        .await;
    let reply = again.expect_subscribed().await;
    assert_eq!(reply.recovered, Some(true));
    while seen.len() < stored.len() {
        match again.try_next_event(TIMEOUT).await {
            Some(ServerEvent::AgentMessage(m)) => seen.push(m.message),
            other => panic!(
                "after {} of {} messages: {other:?}; server log:\n{}",
                seen.len(),
                stored.len(),
                app.log()
            ),
        }
    }
    assert_eq!(seen, stored);
}

/// The messages among `events`, in order.
fn messages_of(events: Vec<ServerEvent>) -> Vec<StoredMessage> {
    events
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::AgentMessage(m) => Some(m.message),
            _ => None,
        })
        .collect()
}

/// A small deterministic generator (xorshift): a failing trial can be replayed with its seed.
struct Rng(u64);

impl Rng {
    /// Seeded from `AGENTSTREAM_TEST_SEED`, else from the clock; the seed is printed.
    fn from_env() -> Rng {
        let seed = std::env::var("AGENTSTREAM_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        println!("AGENTSTREAM_TEST_SEED={seed}");
        Rng(seed)
    }

    /// Uniform in `range`.
    fn range(&mut self, range: std::ops::Range<u64>) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        range.start + self.0 % (range.end - range.start).max(1)
    }
}

/// Reads `agent:message` events into each agent's copy until `until`, checking each arrives in order.
async fn read_into(
    ws: &mut WsClient,
    copies: &mut HashMap<Uuid, Vec<StoredMessage>>,
    until: tokio::time::Instant,
) {
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match ws.try_next_event(left).await {
            Some(ServerEvent::AgentMessage(m)) => {
                let copy = copies.entry(m.agent_id).or_default();
                let expected = copy.last().map_or(1, |last| last.sequence_number + 1);
                assert_eq!(
                    m.message.sequence_number, expected,
                    "hole, repeat or reorder"
                );
                copy.push(m.message);
            }
            Some(_) => {}
            None => return,
        }
    }
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_reorders_and_duplicates_nothing() {
    let trials: u64 = std::env::var("AGENTSTREAM_CRASH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut rng = Rng::from_env();
    let dir = TestDir::new();
    let mut app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    // What a client has seen of every agent, across all restarts.
    let mut copies: HashMap<Uuid, Vec<StoredMessage>> = HashMap::new();
    for trial in 0..trials {
        let mut ws = app.ws().await;
        for _ in 0..rng.range(1..5) {
            let agent = app.launch(rng.range(50..1500), rng.range(0..3)).await;
            copies.insert(agent.id, Vec::new());
            ws.subscribe(agent.id, Some(0)).await;
        }
        // Stream for a random moment, reading, then kill the server mid-whatever.
        let until = tokio::time::Instant::now() + Duration::from_millis(rng.range(0..400));
        read_into(&mut ws, &mut copies, until).await;
        app.kill().await;
        drop(ws);

        app = TestServer::builder().dir(&dir).spawn(SERVER).await;
        let mut ws = app.ws().await;
        // Nothing runs after a restart, so every history is final now.
        let mut histories = HashMap::new();
        for (id, copy) in &copies {
            let agent = app.agent(*id).await;
            assert!(
                matches!(
                    agent.status,
                    AgentStatus::Completed | AgentStatus::Interrupted
                ),
                "trial {trial}: agent {id} is {:?} after a restart",
                agent.status
            );
            let history = app.messages(*id, None).await;
            assert_contiguous(&history, 1);
            let ids: HashSet<Uuid> = history.iter().map(|m| m.id).collect();
            assert_eq!(ids.len(), history.len(), "trial {trial}: duplicate ids");
            assert_eq!(
                copy[..],
                history[..copy.len().min(history.len())],
                "trial {trial}: the client saw a message that is not stored"
            );
            if copy.len() < history.len() {
                ws.subscribe(*id, Some(copy.last().map_or(0, |m| m.sequence_number)))
                    .await;
            }
            histories.insert(*id, history);
        }
        // Resubscribed with `since`, every client copy converges exactly to the stored history.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while copies.iter().any(|(id, c)| c.len() < histories[id].len()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "trial {trial}: no convergence"
            );
            let until = tokio::time::Instant::now() + Duration::from_millis(100);
            read_into(&mut ws, &mut copies, until).await;
        }
        for (id, copy) in &copies {
            assert_eq!(copy, &histories[id], "trial {trial}: agent {id}");
        }
    }
}

#[tokio::test]
async fn clients_whose_sockets_drop_at_random_converge_to_the_history() {
    let mut rng = Rng::from_env();
    let app = TestServer::spawn(SERVER).await;
    let agents = [app.launch(20_000, 0).await, app.launch(5_000, 1).await];
    let mut copies: HashMap<Uuid, Vec<StoredMessage>> = HashMap::new();
    let mut drops = 0;
    loop {
        let mut ws = app.ws().await;
        for agent in &agents {
            let since = copies
                .get(&agent.id)
                .and_then(|c| c.last())
                .map_or(0, |m| m.sequence_number);
            ws.subscribe(agent.id, Some(since)).await;
        }
        let until = tokio::time::Instant::now() + Duration::from_millis(rng.range(5..300));
        read_into(&mut ws, &mut copies, until).await;
        // Gone without a close frame, like a pulled cable.
        drop(ws);
        drops += 1;
        let mut done = true;
        for agent in &agents {
            let finished = app.agent(agent.id).await.status.is_terminal();
            let stored = app.messages(agent.id, None).await;
            let copy = copies.get(&agent.id).map_or(&[][..], |c| &c[..]);
            assert_eq!(copy, &stored[..copy.len()]);
            done &= finished && copy.len() == stored.len();
        }
        if done {
            break;
        }
        assert!(drops < 2000, "no convergence after {drops} reconnects");
    }
    assert!(
        drops > 3,
        "the stream ended before the sockets were dropped enough"
    );
}

#[tokio::test]
async fn sigterm_interrupts_the_agents_stores_everything_and_says_going_away() {
    let dir = TestDir::new();
    let mut app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    let agent = app.launch(1_000_000, 1).await;
    let mut ws = app.ws().await;
    ws.subscribe(agent.id, Some(0)).await;
    app.wait_messages(agent.id, 100).await;

    let pid = app.pid().expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);

    // The client sees every stored message, the agent interrupted, then a "going away" close.
    let (events, close) = ws.read_until_close().await;
    let interrupted = events.iter().any(|e| {
        matches!(e, ServerEvent::AgentStatus(s)
            if s.agent_id == agent.id && s.status == AgentStatus::Interrupted)
    });
    let seen = messages_of(events);
    assert_eq!(close.code, CloseCode::Away, "{close:?}");
    assert!(interrupted, "no agent:status interrupted before the close");
    let status = tokio::time::timeout(TIMEOUT, app.wait_exit())
        .await
        .expect("the server did not exit after SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        app.log()
    );
    assert!(app.log().contains("shutting down"));

    let app = TestServer::builder().dir(&dir).spawn(SERVER).await;
    assert_eq!(app.agent(agent.id).await.status, AgentStatus::Interrupted);
    let history = app.messages(agent.id, None).await;
    assert_contiguous(&history, 1);
    assert_eq!(
        seen, history,
        "the client's copy differs from what was stored"
    );
}
