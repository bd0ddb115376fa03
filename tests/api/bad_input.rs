//! Bad input, from the corpus in `tests/corpus/` (its README gives the format): every REST request,
//! WebSocket frame and runner output there, plus a few generated ones too big to commit, gets a clear
//! error — a 4xx with the JSON error form, an `error` event, a documented close, or an agent that ends
//! with a clear status — never a 5xx or a crash, and the data already stored stays byte-identical.

use std::path::{Path, PathBuf};

use agentstream_testkit::{assert_contiguous, Closed, TestServer, WsClient, TIMEOUT};
use agentstream_wire::{
    Agent, AgentStatus, ErrorBody, MessageType, ServerEvent, StoredMessage, Unsubscribed,
};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

use crate::SERVER;

/// The corpus folder.
fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus")
        .join(kind)
}

/// One input: its file name (which says what is expected) and its bytes.
struct Case {
    name: String,
    bytes: Vec<u8>,
}

impl Case {
    /// What the name says before `--`: `400-invalid_body`, `invalid_json`, `completed`, …
    fn expected(&self) -> &str {
        self.name.split("--").next().unwrap_or_default()
    }

    /// The file's extension: how to send it.
    fn kind(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or_default()
    }
}

/// Every file of a corpus folder, by name.
fn corpus(kind: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(corpus_dir(kind))
        .expect("corpus folder")
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            Case {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes: std::fs::read(&path).expect("corpus file"),
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!cases.is_empty(), "empty corpus {kind}");
    cases
}

/// `{agent}` (an existing agent), `{AGENT}` (the same, upper case) and `{unknown}` (a fresh UUID).
fn substitute(text: &str, agent: Uuid) -> String {
    text.replace("{agent}", &agent.to_string())
        .replace("{AGENT}", &agent.to_string().to_uppercase())
        .replace("{unknown}", &Uuid::new_v4().to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------------

/// A response read off the socket as it came.
struct RawResponse {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

/// Sends `request` as is over a new connection, half-closes it, and reads the answer to its end. A
/// reset after the answer (the server closing on a body it did not read) is the end too.
async fn raw_http(port: u16, request: Vec<u8>) -> RawResponse {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        if write.write_all(&request).await.is_ok() {
            let _ = write.shutdown().await;
        }
        write
    });
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, async {
        let mut chunk = vec![0u8; 64 * 1024];
        while let Ok(n) = read.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("no answer in time");
    drop(writer.await);
    let end = find(&raw, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no complete answer: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(300)])
        )
    });
    let headers = String::from_utf8_lossy(&raw[..end]).to_lowercase();
    let status = headers
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {headers}"));
    let mut body = raw[end + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

/// The payload of a chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16)
            .expect("chunk size");
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
    out
}

/// The request a `.http` case describes: `METHOD target`, header lines, a blank line, the body bytes.
/// `Host`, `Content-Length`, `Connection: close` and (for a body) a JSON content type are added unless
/// the case sets them.
fn http_request(case: &Case, agent: Uuid) -> Vec<u8> {
    let (head, body) = match find(&case.bytes, b"\n\n") {
        Some(i) => (&case.bytes[..i], &case.bytes[i + 2..]),
        None => (&case.bytes[..], &b""[..]),
    };
    let head = std::str::from_utf8(head).expect("the head of a .http case is UTF-8");
    let mut lines = head.lines().filter(|l| !l.is_empty());
    let request_line = substitute(lines.next().expect("a request line"), agent);
    let headers: Vec<&str> = lines.collect();
    let has = |name: &str| {
        headers
            .iter()
            .any(|h| h.to_lowercase().starts_with(&format!("{name}:")))
    };
    let mut out = format!(
        "{request_line} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !has("connection") {
        out.push_str("Connection: close\r\n");
    }
    if !body.is_empty() && !has("content-type") {
        out.push_str("Content-Type: application/json\r\n");
    }
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Checks one answer against `expected` (`<status>-<code>`): never a 5xx; a 4xx has the JSON error
/// form with that code, except `http`, the HTTP layer's own answer to malformed HTTP (empty body,
/// before any route); a 201 is an agent whose stored prompt is the one sent; a 200 is JSON.
async fn check_rest(app: &TestServer, name: &str, expected: &str, request: &[u8], r: RawResponse) {
    let (status, code) = expected
        .split_once('-')
        .unwrap_or_else(|| panic!("{name}: the name does not start with <status>-<code>"));
    let status: u16 = status.parse().expect("status in the name");
    let text = String::from_utf8_lossy(&r.body);
    assert!(r.status < 500, "{name}: {} {text}", r.status);
    assert_eq!(r.status, status, "{name}: {text}");
    match r.status {
        400..=499 if code == "http" => assert!(r.body.is_empty(), "{name}: {text}"),
        400..=499 => {
            assert!(
                r.headers.contains("content-type: application/json"),
                "{name}: {}",
                r.headers
            );
            let body: ErrorBody = serde_json::from_slice(&r.body)
                .unwrap_or_else(|e| panic!("{name}: not the error form ({e}): {text}"));
            assert_eq!(body.error.code, code, "{name}: {text}");
            assert!(!body.error.message.is_empty(), "{name}");
        }
        201 => {
            let agent: Agent = serde_json::from_slice(&r.body)
                .unwrap_or_else(|e| panic!("{name}: not an agent ({e}): {text}"));
            assert_eq!(app.agent(agent.id).await.prompt, agent.prompt, "{name}");
            // When the body was plain JSON, the prompt is stored exactly as sent.
            let body = find(request, b"\r\n\r\n").map(|i| &request[i + 4..]);
            if let Some(Ok(sent)) = body.map(serde_json::from_slice::<Value>) {
                assert_eq!(sent["prompt"], json!(agent.prompt), "{name}");
            }
            app.wait_finished(agent.id).await;
        }
        200 => {
            serde_json::from_slice::<Value>(&r.body)
                .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"));
        }
        other => panic!("{name}: unexpected status {other}"),
    }
}

/// The generated REST cases: too big (or too silly) to commit.
fn generated_rest_cases(agent: Uuid, max_body: usize) -> Vec<(String, Vec<u8>)> {
    let post = |extra_headers: &str, body: &[u8]| {
        let mut r = format!(
            "POST /api/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let get = |target: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .into_bytes()
    };
    let prompt_of = |n: usize| {
        format!(
            "{{\"type\":\"synthetic\",\"prompt\":\"{}\"}}",
            "y".repeat(n)
        )
    };
    // One byte over server.max_body_bytes, as the whole body.
    let just_over = prompt_of(max_body + 1 - prompt_of(0).len());
    // 4 MiB with no length: the limit applies while reading.
    let mut chunked = b"POST /api/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
        Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..64 {
        chunked.extend_from_slice(format!("{:x}\r\n", 65536).as_bytes());
        chunked.extend_from_slice(&[b' '; 65536]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let nested = |open: &str, close: &str, n: usize| {
        format!(
            "{{\"type\":\"synthetic\",\"prompt\":\"x\",\"configuration\":{{\"tokens\":1,\"x\":{}{}}}}}",
            open.repeat(n),
            close.repeat(n)
        )
    };
    vec![
        (
            "413-payload_too_large--one-byte-over-max-body".into(),
            post("", just_over.as_bytes()),
        ),
        (
            "413-payload_too_large--20-mib-body".into(),
            post("", prompt_of(20 << 20).as_bytes()),
        ),
        (
            "413-payload_too_large--4-mib-chunked-without-length".into(),
            chunked,
        ),
        (
            "400-invalid_body--100k-open-brackets".into(),
            post("", "[".repeat(100_000).as_bytes()),
        ),
        (
            "400-invalid_body--100k-nested-objects".into(),
            post("", "{\"a\":".repeat(100_000).as_bytes()),
        ),
        (
            "400-invalid_body--100k-nested-arrays-in-configuration".into(),
            post("", nested("[", "]", 100_000).as_bytes()),
        ),
        (
            "400-invalid_body--100k-nested-objects-in-configuration".into(),
            post("", nested("{\"a\":", "}", 100_000).as_bytes()),
        ),
        (
            "400-invalid_id--8-kib-id".into(),
            get(&format!("/api/agents/{}", "a".repeat(8192))),
        ),
        (
            "400-invalid_id--64-kib-percent-encoded-id".into(),
            get(&format!("/api/agents/{}/messages", "%FF".repeat(20_000))),
        ),
        (
            "400-invalid_since--20k-digit-since".into(),
            get(&format!(
                "/api/agents/{agent}/messages?since={}",
                "9".repeat(20_000)
            )),
        ),
        (
            "431-http--200-kib-path".into(),
            get(&format!("/api/agents/{}", "a".repeat(200 * 1024))),
        ),
    ]
}

#[tokio::test]
async fn every_rest_case_gets_a_clear_4xx_and_stored_data_stays_intact() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(5, 0).await;
    app.wait_finished(agent.id).await;
    let history = stored_history(&app, agent.id).await;
    let before = app.agent(agent.id).await;
    let mut count = 0;
    for case in corpus("rest") {
        let request = match case.kind() {
            "http" => http_request(&case, agent.id),
            "raw" => case.bytes.clone(),
            other => panic!("{}: unknown kind {other}", case.name),
        };
        let response = raw_http(app.port, request.clone()).await;
        check_rest(&app, &case.name, case.expected(), &request, response).await;
        count += 1;
    }
    let max_body = 1 << 20;
    for (name, request) in generated_rest_cases(agent.id, max_body) {
        let expected = name.split("--").next().unwrap_or_default();
        let response = raw_http(app.port, request.clone()).await;
        check_rest(&app, &name, expected, &request, response).await;
        count += 1;
    }
    assert!(count > 100, "{count} cases");
    app.assert_healthy().await;
    assert_eq!(stored_history(&app, agent.id).await, history);
    let after = app.agent(agent.id).await;
    assert_eq!(
        (after.status, &after.completed_at, &after.prompt),
        (before.status, &before.completed_at, &before.prompt)
    );
    // Every agent the odd bodies created lists and reads back.
    let agents: Vec<Agent> = app.get_json("/api/agents").await;
    assert!(agents.len() > 1);
}

// ---------------------------------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------------------------------

/// Sends an unsubscribe for `agent` and reads up to its reply: a barrier showing the socket still
/// works; returns what came before it.
async fn barrier(ws: &mut WsClient, agent: Uuid) -> Vec<ServerEvent> {
    ws.unsubscribe(agent).await;
    let mut before = Vec::new();
    loop {
        match ws.next_reply().await {
            Ok(ServerEvent::Unsubscribed(Unsubscribed { agent_id })) if agent_id == agent => {
                return before
            }
            Ok(e) => before.push(e),
            Err(Closed(code)) => panic!("closed ({code:?}) instead of answering"),
        }
    }
}

/// Checks what a frame got against `expected`: an error code (the socket stays usable), `subscribed`,
/// `unsubscribed`, or `close-<code>` (1002: not WebSocket as the protocol says, 1009: over
/// `websocket.max_frame_bytes`; that socket is closed, the server stays usable).
async fn check_ws(ws: &mut WsClient, name: &str, expected: &str, agent: Uuid) {
    let reply = ws.next_reply().await;
    match (expected, reply) {
        (close, Err(Closed(code))) if close.starts_with("close-") => {
            assert_eq!(
                code.map(|c| format!("close-{c}")).as_deref(),
                Some(close),
                "{name}"
            );
            return;
        }
        ("subscribed", Ok(ServerEvent::Subscribed(s))) => {
            assert_eq!(s.agent_id, agent, "{name}")
        }
        ("unsubscribed", Ok(ServerEvent::Unsubscribed(_))) => {}
        (code, Ok(ServerEvent::Error(e))) => {
            assert_eq!(e.code, code, "{name}: {e:?}");
            assert!(!e.message.is_empty(), "{name}");
        }
        (_, other) => panic!("{name}: expected {expected}, got {other:?}"),
    }
    // Whatever follows (a replay after `subscribed`) comes before the barrier's reply.
    for event in barrier(ws, agent).await {
        match event {
            ServerEvent::AgentMessage(m) if m.agent_id == agent => {}
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
}

/// A raw frame: `opcode`, `payload`, final or not.
fn raw_frame(opcode: Data, payload: Vec<u8>, fin: bool) -> WsMessage {
    WsMessage::Frame(Frame::message(payload, OpCode::Data(opcode), fin))
}

#[tokio::test]
async fn every_ws_case_gets_an_error_event_or_a_documented_close() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(3, 0).await;
    app.wait_finished(agent.id).await;
    let history = stored_history(&app, agent.id).await;
    let mut ws = app.ws().await;
    let mut count = 0;
    for case in corpus("ws") {
        let frame = match case.kind() {
            "txt" => {
                let text = std::str::from_utf8(&case.bytes).expect("a .txt case is UTF-8");
                WsMessage::Text(substitute(text, agent.id))
            }
            "bin" => WsMessage::Binary(case.bytes.clone()),
            // A text frame whose payload is not UTF-8 (a client library would refuse to send it).
            "badtext" => raw_frame(Data::Text, case.bytes.clone(), true),
            other => panic!("{}: unknown kind {other}", case.name),
        };
        ws.stream.send(frame).await.expect("send");
        check_ws(&mut ws, &case.name, case.expected(), agent.id).await;
        if case.expected().starts_with("close-") {
            ws = app.ws().await;
        }
        count += 1;
    }

    // Generated: at the frame limit (64 KiB by default) and one byte over it; nesting as deep as fits.
    let max = 65536;
    let generated: Vec<(&str, WsMessage)> = vec![
        (
            "invalid_json--exactly-max-frame-bytes",
            WsMessage::Text("x".repeat(max)),
        ),
        (
            "close-1009--one-byte-over-max-frame-bytes",
            WsMessage::Text("x".repeat(max + 1)),
        ),
        (
            "invalid_json--60k-open-brackets",
            WsMessage::Text("[".repeat(60_000)),
        ),
        (
            "invalid_json--10k-nested-objects-in-data",
            WsMessage::Text(format!(
                "{{\"event\":\"subscribe\",\"data\":{}",
                "{\"a\":".repeat(10_000)
            )),
        ),
        (
            "unknown_event--60-kib-event-name",
            WsMessage::Text(format!(
                "{{\"event\":\"{}\",\"data\":{{\"agentId\":\"{}\"}}}}",
                "e".repeat(60_000),
                agent.id
            )),
        ),
        // A continuation with nothing to continue is a protocol error.
        (
            "close-1002--continuation-without-start",
            raw_frame(Data::Continue, b"{}".to_vec(), true),
        ),
        (
            "close-1002--reserved-opcode",
            raw_frame(Data::Reserved(3), b"{}".to_vec(), true),
        ),
    ];
    for (name, frame) in generated {
        let expected = name.split("--").next().unwrap_or_default();
        ws.stream.send(frame).await.expect("send");
        check_ws(&mut ws, name, expected, agent.id).await;
        if expected.starts_with("close-") {
            ws = app.ws().await;
        }
        count += 1;
    }

    // A fragmented message is not understood (one error per fragment), and nothing is reassembled.
    ws.stream
        .send(raw_frame(Data::Text, b"{\"event\":".to_vec(), false))
        .await
        .expect("send");
    ws.stream
        .send(raw_frame(Data::Continue, b"\"subscribe\"}".to_vec(), true))
        .await
        .expect("send");
    for _ in 0..2 {
        match ws.next_reply().await {
            Ok(ServerEvent::Error(e)) => assert_eq!(e.code, "unsupported_frame"),
            other => panic!("fragment: {other:?}"),
        }
    }
    barrier(&mut ws, agent.id).await;

    assert!(count > 40, "{count} cases");
    assert_replay_works(&mut ws, agent.id, 6).await;
    app.assert_healthy().await;
    assert_eq!(stored_history(&app, agent.id).await, history);
}

/// Subscribing with `since = 0` answers `subscribed` and replays exactly `1..=n`.
async fn assert_replay_works(ws: &mut WsClient, agent: Uuid, n: i64) {
    ws.subscribe(agent, Some(0)).await;
    assert_eq!(ws.expect_subscribed().await.agent_id, agent);
    let replay = barrier(ws, agent).await;
    let numbers: Vec<i64> = replay
        .iter()
        .map(|e| match e {
            ServerEvent::AgentMessage(m) => m.message.sequence_number,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(numbers, (1..=n).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_subscribe_flood_is_answered_frame_by_frame_and_the_socket_survives() {
    let app = TestServer::spawn(SERVER).await;
    let agent = app.launch(3, 0).await;
    app.wait_finished(agent.id).await;
    let mut ws = app.ws().await;

    // 1000 subscribes for agents that do not exist, in one burst: one `agent_not_found` each.
    let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        let frame = json!({"event": "subscribe", "data": {"agentId": id, "since": 0}});
        ws.stream
            .feed(WsMessage::Text(frame.to_string()))
            .await
            .expect("feed");
    }
    ws.stream.flush().await.expect("burst");
    let mut answered = std::collections::HashSet::new();
    while answered.len() < ids.len() {
        match ws.next_reply().await {
            Ok(ServerEvent::Error(e)) => {
                // Beyond `websocket.max_subscriptions_per_connection` pending at once, the flood is
                // refused instead of looked up: still one answer per frame.
                assert!(
                    e.code == "agent_not_found" || e.code == "too_many_subscriptions",
                    "{e:?}"
                );
                assert!(
                    answered.insert(e.agent_id.expect("agentId")),
                    "answered twice"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(ids.iter().all(|id| answered.contains(id)));

    // 1000 subscribes for the same agent: each replaces the one before, and a replaced one may go
    // unanswered. The last (`since` = 5, so its reply is told apart by a replay of just 6) is answered
    // with `subscribed` and its replay; any earlier answer is a whole, ordered replay from 1.
    for i in 0..1001 {
        let since = if i == 1000 { 5 } else { 0 };
        let frame = json!({"event": "subscribe", "data": {"agentId": agent.id, "since": since}});
        ws.stream
            .feed(WsMessage::Text(frame.to_string()))
            .await
            .expect("feed");
    }
    ws.stream.flush().await.expect("burst");
    let mut replay: Option<Vec<i64>> = None;
    loop {
        match (ws.next_reply().await, replay.as_mut()) {
            (Ok(ServerEvent::Subscribed(s)), _) => {
                assert_eq!(s.agent_id, agent.id);
                if let Some(earlier) = replay.replace(Vec::new()) {
                    assert_eq!(earlier, vec![1, 2, 3, 4, 5, 6]);
                }
            }
            (Ok(ServerEvent::AgentMessage(m)), Some(seqs)) => {
                seqs.push(m.message.sequence_number);
                if seqs == &[6] {
                    break;
                }
            }
            (other, _) => panic!("unexpected {other:?}"),
        }
    }
    assert!(barrier(&mut ws, agent.id).await.is_empty());

    // 1000 frames of garbage interleaved with the above kinds, then the socket still works.
    for i in 0..1000 {
        ws.send_text(if i % 2 == 0 { "{" } else { "[]" }).await;
    }
    for i in 0..1000 {
        match ws.next_reply().await {
            Ok(ServerEvent::Error(e)) => {
                assert_eq!(
                    e.code,
                    if i % 2 == 0 {
                        "invalid_json"
                    } else {
                        "invalid_frame"
                    }
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_replay_works(&mut ws, agent.id, 6).await;
    // Another client is unaffected.
    let mut other = app.ws().await;
    assert_replay_works(&mut other, agent.id, 6).await;
    app.assert_healthy().await;
}

// ---------------------------------------------------------------------------------------------------
// Runner output
// ---------------------------------------------------------------------------------------------------

/// A valid `result` line, for the generated cases.
const RESULT: &str =
    r#"{"type":"result","subtype":"success","is_error":false,"result":"done","num_turns":1}"#;

/// 50 MiB: far over runners.max_line_bytes (8 MiB by default).
const HUGE_LINE_BYTES: usize = 50 << 20;

/// The fake CLI: prints the corpus file named by its prompt byte for byte, or, for a `generated:`
/// prompt, output too big to commit.
fn runner_cli() -> String {
    format!(
        r#"case "$first_message" in
  *'"content":"generated:huge-line-then-result"'*)
    head -c {HUGE_LINE_BYTES} /dev/zero | tr '\0' x; echo; echo '{RESULT}';;
  *'"content":"generated:huge-line-without-newline"'*)
    head -c {HUGE_LINE_BYTES} /dev/zero | tr '\0' x;;
  *'"content":"generated:huge-json-string-then-result"'*)
    printf '{{"type":"system","subtype":"x","message":"'; head -c {HUGE_LINE_BYTES} /dev/zero | tr '\0' y; echo '"}}'; echo '{RESULT}';;
  *'"content":"generated:megabyte-of-nul-bytes"'*)
    head -c 1048576 /dev/zero; echo; echo '{RESULT}';;
  *'"content":"generated:20k-lines-of-garbage"'*)
    yes garbage | head -n 20000; echo '{RESULT}';;
  *)
    file=${{first_message#*'"content":"'}}; file=${{file%%'"'*}}; cat "$file";;
esac"#
    )
}

/// The history of an agent, byte for byte as the API serves it.
async fn stored_history(app: &TestServer, agent: Uuid) -> Vec<u8> {
    let body = app.try_messages_body(agent, None).await;
    body.unwrap_or_else(|e| panic!("{e}")).to_vec()
}

/// Runs one runner case to its end and checks it: the status its name says, a clear error when it
/// failed, messages numbered 1..n, every `error` message saying what was wrong, no stored `raw`
/// longer than the line limit allows.
async fn check_runner_case(
    app: &TestServer,
    name: &str,
    expected: &str,
    prompt: &str,
) -> Vec<StoredMessage> {
    let agent = app.run_claude_to_end(prompt).await;
    let want = match expected {
        "completed" => AgentStatus::Completed,
        "failed" => AgentStatus::Failed,
        other => panic!("{name}: unknown expectation {other}"),
    };
    assert_eq!(agent.status, want, "{name}: {agent:?}");
    if want == AgentStatus::Failed {
        let error = agent.error.as_ref().expect("a failed agent says why");
        assert!(
            !error.code.is_empty() && !error.message.is_empty(),
            "{name}"
        );
    }
    let messages = app.messages(agent.id, None).await;
    assert_contiguous(&messages, 1);
    for m in &messages {
        // What a message is (`metadata.eventType`) always agrees with its type: no line can pass
        // for another kind of message.
        let kind = m.metadata["eventType"].as_str().unwrap_or_default();
        let kinds = agentstream::parser::event_types(m.message_type);
        assert!(kinds.contains(&kind), "{name}: {m:?}");
        if m.message_type == MessageType::Error {
            assert!(!m.content.is_empty(), "{name}: {m:?}");
        }
        // A lossily decoded line may grow (U+FFFD is 3 bytes), never past 3 × the 8 MiB limit.
        assert!(
            m.raw.as_deref().unwrap_or_default().len() <= 3 * (8 << 20),
            "{name}"
        );
    }
    // A result is stored exactly when the run ended on one, and the first one decided it.
    let first_result = messages
        .iter()
        .find(|m| m.message_type == MessageType::Result);
    let ended_on_result = want == AgentStatus::Completed
        || agent
            .error
            .as_ref()
            .is_some_and(|e| e.code == "agent_failed");
    assert_eq!(first_result.is_some(), ended_on_result, "{name}");
    if let Some(result) = first_result {
        assert_eq!(
            result.metadata["isError"],
            json!(want == AgentStatus::Failed),
            "{name}"
        );
    }
    messages
}

#[tokio::test]
async fn every_runner_output_ends_the_agent_clearly_and_keeps_history_intact() {
    let app = TestServer::builder()
        .fake_cli(&runner_cli())
        .spawn(SERVER)
        .await;
    // The history that must not change: a synthetic agent's, stored before any bad output.
    let earlier = app.launch(20, 0).await;
    app.wait_finished(earlier.id).await;
    let history = stored_history(&app, earlier.id).await;
    let mut count = 0;
    for case in corpus("runner") {
        assert_eq!(case.kind(), "out", "{}", case.name);
        let path = corpus_dir("runner").join(&case.name);
        let prompt = path.to_str().expect("a UTF-8 path");
        assert!(!prompt.contains('"') && !prompt.contains('\\'));
        check_runner_case(&app, &case.name, case.expected(), prompt).await;
        assert_eq!(
            stored_history(&app, earlier.id).await,
            history,
            "{}",
            case.name
        );
        app.assert_healthy().await;
        count += 1;
    }

    let generated = [
        ("completed", "generated:huge-line-then-result"),
        ("failed", "generated:huge-line-without-newline"),
        ("completed", "generated:huge-json-string-then-result"),
        ("completed", "generated:megabyte-of-nul-bytes"),
        ("completed", "generated:20k-lines-of-garbage"),
    ];
    for (expected, prompt) in generated {
        let messages = check_runner_case(&app, prompt, expected, prompt).await;
        if prompt.starts_with("generated:huge") {
            // The 50 MiB line is one `error` message keeping only its first bytes.
            let cut = messages
                .iter()
                .find(|m| m.metadata["eventType"] == "line_too_long")
                .unwrap_or_else(|| panic!("{prompt}: no line_too_long message"));
            let length = cut.metadata["length"].as_u64().unwrap_or_default();
            assert!(
                length >= HUGE_LINE_BYTES as u64,
                "{prompt}: {}",
                cut.content
            );
            assert!(cut.content.contains(&length.to_string()), "{}", cut.content);
            assert!(cut.raw.as_deref().unwrap_or_default().len() <= 4096);
        }
        if prompt == "generated:20k-lines-of-garbage" {
            assert_eq!(messages.len(), 20_001);
        }
        assert_eq!(stored_history(&app, earlier.id).await, history, "{prompt}");
        app.assert_healthy().await;
        count += 1;
    }
    assert!(count >= 20, "{count} cases");
    // Reading 50 MiB lines never holds much more than one line limit (8 MiB) at a time.
    let peak = app.peak_rss();
    assert!(peak < 160 << 20, "peak RSS {} MiB", peak >> 20);
}
