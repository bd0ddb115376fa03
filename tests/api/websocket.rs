//! The WebSocket endpoint: bad frames get an `error` event and the socket stays usable; silent clients
//! are dropped.

use std::time::Duration;

use agentstream_testkit::TestServer;
use agentstream_wire::{AgentStatus, ServerEvent};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

use crate::SERVER;

fn expect_error(event: ServerEvent, code: &str) {
    match event {
        ServerEvent::Error(e) => assert_eq!(e.code, code, "{e:?}"),
        other => panic!("expected error {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_frames_get_an_error_event_and_the_socket_stays_usable() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(3, 0).await;
    app.wait_finished(agent.id).await;
    let mut ws = app.ws().await;
    let cases: Vec<(String, &str)> = vec![
        ("hello".into(), "invalid_json"),
        ("{\"event\": \"subscribe\"".into(), "invalid_json"),
        ("[]".into(), "invalid_frame"),
        ("{\"data\": {}}".into(), "invalid_frame"),
        (
            "{\"event\": \"subscribe\", \"data\": \"x\"}".into(),
            "invalid_frame",
        ),
        (
            "{\"event\": \"subscribe\", \"data\": {}}".into(),
            "invalid_frame",
        ),
        (
            "{\"event\": \"subscribe\", \"data\": {\"agentId\": \"nope\"}}".into(),
            "invalid_id",
        ),
        (
            format!(
                "{{\"event\": \"subscribe\", \"data\": {{\"agentId\": \"{}\", \"since\": -4}}}}",
                agent.id
            ),
            "invalid_since",
        ),
        (
            format!(
                "{{\"event\": \"subscribe\", \"data\": {{\"agentId\": \"{}\", \"since\": \"2\"}}}}",
                agent.id
            ),
            "invalid_since",
        ),
        (
            format!(
                "{{\"event\": \"launch\", \"data\": {{\"agentId\": \"{}\"}}}}",
                agent.id
            ),
            "unknown_event",
        ),
        (
            format!(
                "{{\"event\": \"subscribe\", \"data\": {{\"agentId\": \"{}\"}}}}",
                Uuid::new_v4()
            ),
            "agent_not_found",
        ),
    ];
    for (frame, code) in cases {
        ws.send_text(&frame).await;
        expect_error(ws.next_event().await, code);
    }
    ws.stream
        .send(WsMessage::Binary(vec![1, 2, 3]))
        .await
        .unwrap();
    expect_error(ws.next_event().await, "unsupported_frame");

    // Still usable.
    ws.subscribe(agent.id, Some(0)).await;
    assert_eq!(ws.expect_subscribed().await.agent_id, agent.id);
    let mut replayed = 0;
    while let Some(ServerEvent::AgentMessage(_)) =
        ws.try_next_event(Duration::from_millis(300)).await
    {
        replayed += 1;
    }
    assert_eq!(replayed, 6);
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_socket() {
    let app = TestServer::spawn(SERVER).await;
    let mut big = app.ws().await;
    let mut other = app.ws().await;
    let _ = big.stream.send(WsMessage::Text("x".repeat(200_000))).await;
    assert!(
        big.try_next_event(Duration::from_secs(5)).await.is_none(),
        "socket closed"
    );
    let agent = app.launch(2, 0).await;
    other.subscribe(agent.id, Some(0)).await;
    assert!(matches!(
        other.next_event().await,
        ServerEvent::AgentCreated(_) | ServerEvent::Subscribed(_) | ServerEvent::AgentStatus(_)
    ));
    app.assert_healthy().await;
}

#[tokio::test]
async fn unsubscribe_stops_the_room_events() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(500, 5).await;
    let mut ws = app.ws().await;
    ws.subscribe(agent.id, None).await;
    ws.expect_subscribed().await;
    ws.unsubscribe(agent.id).await;
    // Messages already in flight may precede the reply; none may follow it.
    loop {
        match ws.next_event().await {
            ServerEvent::Unsubscribed(u) => {
                assert_eq!(u.agent_id, agent.id);
                break;
            }
            ServerEvent::AgentMessage(_) | ServerEvent::AgentStatus(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    while let Some(event) = ws.try_next_event(Duration::from_millis(300)).await {
        assert!(
            !matches!(event, ServerEvent::AgentMessage(_)),
            "message after unsubscribe"
        );
    }
    let _ = app.delete_agent(agent.id, false).await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_by_the_heartbeat() {
    let app = TestServer::builder()
        .envs(&[
            ("AGENTSTREAM__WEBSOCKET__HEARTBEAT_INTERVAL_SECS", "1"),
            ("AGENTSTREAM__WEBSOCKET__CLIENT_TIMEOUT_SECS", "2"),
        ])
        .spawn(SERVER)
        .await;
    let mut silent = app.ws().await;
    // Not reading means not answering pings: after the timeout the server closes the socket.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut closed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(
            Duration::from_secs(1),
            futures_util::StreamExt::next(&mut silent.stream),
        )
        .await
        {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(WsMessage::Close(_)))) => {
                closed = true;
                break;
            }
            _ => continue,
        }
    }
    assert!(closed, "the silent client was not dropped");
}

#[tokio::test]
async fn the_subscribe_reply_says_whether_the_position_was_recovered() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(20, 0).await;
    let done = app.wait_finished(agent.id).await;
    let last = app.messages(agent.id, None).await.len() as i64;
    assert!(matches!(done.status, AgentStatus::Completed));
    let mut ws = app.ws().await;

    // A position inside the history: recovered, and the rest follows.
    ws.subscribe(agent.id, Some(last - 5)).await;
    let s = ws.expect_subscribed().await;
    assert_eq!((s.last_sequence, s.recovered), (last, Some(true)));
    for seq in last - 4..=last {
        match ws.next_event().await {
            ServerEvent::AgentMessage(m) => assert_eq!(m.message.sequence_number, seq),
            other => panic!("expected message {seq}, got {other:?}"),
        }
    }
    // At the very end: recovered, nothing to replay.
    ws.subscribe(agent.id, Some(last)).await;
    assert_eq!(ws.expect_subscribed().await.recovered, Some(true));
    // Beyond the end: the client holds what the server lacks.
    ws.subscribe(agent.id, Some(last + 100)).await;
    let s = ws.expect_subscribed().await;
    assert_eq!((s.last_sequence, s.recovered), (last, Some(false)));
    // Without `since` nothing is claimed.
    ws.subscribe(agent.id, None).await;
    assert_eq!(ws.expect_subscribed().await.recovered, None);

    // Purged: an explicit error that says the position is lost.
    let purge = app.delete_agent(agent.id, true).await;
    assert_eq!(purge.status(), 204);
    ws.subscribe(agent.id, Some(3)).await;
    loop {
        match ws.next_event().await {
            ServerEvent::Error(e) => {
                assert_eq!(
                    (e.code.as_str(), e.agent_id, e.recovered),
                    ("agent_not_found", Some(agent.id), Some(false))
                );
                break;
            }
            ServerEvent::AgentStatus(_) | ServerEvent::AgentDeleted(_) => {}
            other => panic!("expected error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_close_handshake_ends_the_connection_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestServer::spawn(SERVER).await;
    // A client as RFC 6455 has it (Python's `websockets`, for one): it sends its Close, gets the
    // server's, and waits for the server to close the TCP connection.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        app.port
    );
    tcp.write_all(upgrade.as_bytes()).await.expect("upgrade");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(tcp.read(&mut byte).await.expect("read the handshake"), 1);
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // Close, code 1000, masked as a client's frames are.
    let mask = [0x11, 0x22, 0x33, 0x44];
    let code = 1000u16.to_be_bytes();
    let frame = [
        0x88,
        0x82,
        mask[0],
        mask[1],
        mask[2],
        mask[3],
        code[0] ^ mask[0],
        code[1] ^ mask[1],
    ];
    let begun = std::time::Instant::now();
    tcp.write_all(&frame).await.expect("close");
    let mut rest = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut rest),
    )
    .await
    .expect("the server closes the connection")
    .expect("read to the end");
    let elapsed = begun.elapsed();
    assert_eq!(
        rest.first(),
        Some(&0x88),
        "the server's Close came first: {rest:?}"
    );
    assert!(
        elapsed < std::time::Duration::from_millis(500),
        "the connection stayed open {elapsed:?} after the close handshake"
    );
}
