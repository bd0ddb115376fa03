//! Webhooks: consumers registered over `/api/webhooks` get every event they asked for POSTed to a
//! receiver in this process (a real HTTP server on 127.0.0.1 that checks every signature), in order
//! per agent, at least once: through failing, hanging and stopped receivers, a server killed and
//! restarted on the same database, pauses and filters. And every bad registration gets its 4xx.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use agentstream_testkit::{assert_error, TestDir, TestServer, TIMEOUT};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::SERVER;

/// What the receiver does with the next requests.
#[derive(Default)]
struct Behaviour {
    /// Answer 500 to this many more requests.
    fail: usize,
    /// Hold every request without answering while set.
    hang: bool,
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// The bodies it acknowledged (2xx), in arrival order.
    accepted: Vec<Value>,
    /// Every request, answered or not.
    requests: usize,
    bad_signatures: usize,
}

struct Shared {
    secret: String,
    behaviour: Mutex<Behaviour>,
    seen: Mutex<Seen>,
}

/// An HTTP receiver on 127.0.0.1 in its own thread (its own actix system), stoppable and restartable
/// on the same port.
struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    handle: Option<actix_web::dev::ServerHandle>,
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let signature = req
        .headers()
        .get("x-agentstream-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut mac = Hmac::<Sha256>::new_from_slice(shared.secret.as_bytes()).expect("hmac key");
    mac.update(&body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (hang, fail) = {
        let mut b = shared.behaviour.lock().unwrap();
        let fail = b.fail > 0;
        if fail {
            b.fail -= 1;
        }
        (b.hang, fail)
    };
    {
        let mut seen = shared.seen.lock().unwrap();
        seen.requests += 1;
        if signature != format!("sha256={expected}") {
            seen.bad_signatures += 1;
            return HttpResponse::Unauthorized().finish();
        }
    }
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if fail {
        return HttpResponse::InternalServerError().body("not now");
    }
    let value: Value = serde_json::from_slice(&body).expect("a JSON body");
    shared.seen.lock().unwrap().accepted.push(value);
    HttpResponse::NoContent().finish()
}

impl Receiver {
    fn start(secret: &str) -> Receiver {
        let mut r = Receiver {
            port: 0,
            shared: Arc::new(Shared {
                secret: secret.to_owned(),
                behaviour: Mutex::default(),
                seen: Mutex::default(),
            }),
            handle: None,
        };
        r.listen();
        r
    }

    /// Listens (again) on its port (a free one the first time).
    fn listen(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the receiver");
        self.port = listener.local_addr().expect("address").port();
        let shared = web::Data::from(self.shared.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .default_service(web::to(receive))
                })
                .workers(1)
                .shutdown_timeout(0)
                .listen(listener)
                .expect("listen")
                .run();
                let _ = tx.send(server.handle());
                let _ = server.await;
            })
        });
        self.handle = Some(rx.recv().expect("the receiver started"));
    }

    /// Stops listening: connections are refused until [`Receiver::listen`].
    async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop(false).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.shared.behaviour.lock().unwrap());
    }

    fn accepted(&self) -> Vec<Value> {
        self.shared.seen.lock().unwrap().accepted.clone()
    }

    fn requests(&self) -> usize {
        self.shared.seen.lock().unwrap().requests
    }

    fn bad_signatures(&self) -> usize {
        self.shared.seen.lock().unwrap().bad_signatures
    }

    /// Waits until an acknowledged body satisfies `pred`.
    async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.accepted().iter().any(&pred) {
            assert!(
                Instant::now() < deadline,
                "the receiver never got {what}; it got {:?}",
                self.accepted()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the agent's `agent:complete`.
    async fn wait_complete(&self, agent: Uuid) {
        self.wait_for(&format!("agent:complete of {agent}"), |v| {
            v["event"] == "agent:complete" && v["data"]["agentId"] == agent.to_string()
        })
        .await;
    }

    /// The agent's events as the receiver keeps them after dropping repeats: messages by
    /// (agent, sequence number), lifecycle events by (agent, event, status, lastSequence).
    fn deduplicated(&self, agent: Uuid) -> Vec<Value> {
        let mut seen = HashSet::new();
        self.accepted()
            .into_iter()
            .filter(|v| {
                let data = &v["data"];
                data["agentId"] == agent.to_string() || data["agent"]["id"] == agent.to_string()
            })
            .filter(|v| {
                let data = &v["data"];
                let key = match v["event"].as_str() {
                    Some("agent:message") => format!("m{}", data["message"]["sequenceNumber"]),
                    Some(event) => format!(
                        "{event}/{}{}/{}",
                        data["status"], data["result"]["status"], data["lastSequence"]
                    ),
                    None => panic!("a body without an event: {v}"),
                };
                seen.insert(key)
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            drop(handle.stop(false));
        }
    }
}

/// A server whose webhooks may only reach loopback, retrying quickly.
fn server() -> agentstream_testkit::Builder {
    TestServer::builder().envs(&[
        ("AGENTSTREAM__WEBHOOKS__ALLOWED_HOSTS", "127.0.0.1"),
        ("AGENTSTREAM__WEBHOOKS__INITIAL_BACKOFF_MS", "50"),
        ("AGENTSTREAM__WEBHOOKS__MAX_BACKOFF_MS", "400"),
        ("AGENTSTREAM__WEBHOOKS__TIMEOUT_MS", "2000"),
    ])
}

async fn register(app: &TestServer, body: Value) -> Value {
    let response = app
        .client
        .post(app.url("/api/webhooks"))
        .json(&body)
        .send()
        .await
        .expect("POST /api/webhooks");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).expect("a webhook")
}

async fn patch(app: &TestServer, id: &str, body: Value) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/webhooks/{id}")))
        .json(&body)
        .send()
        .await
        .expect("PATCH")
}

async fn webhook(app: &TestServer, id: &str) -> Value {
    app.get_json(&format!("/api/webhooks/{id}")).await
}

/// Waits until the consumer's lag is 0.
async fn wait_caught_up(app: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let w = webhook(app, id).await;
        if w["lag"] == 0 {
            return w;
        }
        assert!(Instant::now() < deadline, "the lag stays: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts `events` (one agent's, repeats dropped) are its creation, its stored history in order,
/// then its end: `agent:status` `completed` and `agent:complete` after the last message.
async fn assert_whole_run(app: &TestServer, agent: Uuid, events: &[Value]) {
    let history = app.messages(agent, None).await;
    assert_eq!(events[0]["event"], "agent:created", "{:?}", events[0]);
    let messages: Vec<&Value> = events
        .iter()
        .filter(|v| v["event"] == "agent:message")
        .map(|v| &v["data"]["message"])
        .collect();
    let expected: Vec<Value> = history
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    assert_eq!(messages.len(), expected.len(), "every stored message, once");
    for (got, want) in messages.iter().zip(&expected) {
        assert_eq!(*got, want);
    }
    // Messages come in order; the run's end after its last message.
    let last_message_at = events
        .iter()
        .rposition(|v| v["event"] == "agent:message")
        .expect("messages");
    let complete_at = events
        .iter()
        .position(|v| v["event"] == "agent:complete")
        .expect("agent:complete");
    assert!(complete_at > last_message_at);
    let last = history.last().expect("history").sequence_number;
    assert_eq!(events[complete_at]["data"]["result"]["lastSequence"], last);
    assert_eq!(events[complete_at]["data"]["result"]["status"], "completed");
    assert!(events.iter().any(|v| v["event"] == "agent:status"
        && v["data"]["status"] == "completed"
        && v["data"]["lastSequence"] == last));
}

#[tokio::test]
async fn every_event_reaches_a_consumer_signed_in_order_as_the_websocket_frames() {
    let app = server().spawn(SERVER).await;
    let receiver = Receiver::start("s3cret");
    let hook = register(&app, json!({"url": receiver.url(), "secret": "s3cret"})).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    assert_eq!(hook["paused"], false);
    assert_eq!(hook["agentIds"], Value::Null);
    let agent = app.launch(200, 1).await;
    receiver.wait_complete(agent.id).await;
    let events = receiver.deduplicated(agent.id);
    assert_whole_run(&app, agent.id, &events).await;
    // Nothing came twice to a receiver that never failed.
    assert_eq!(events.len(), receiver.accepted().len());
    assert_eq!(receiver.bad_signatures(), 0);
    let caught_up = wait_caught_up(&app, &id).await;
    assert_eq!(caught_up["lastError"], Value::Null);
    assert_eq!(caught_up["attempts"], 0);
    assert!(caught_up["lastDeliveredAt"].is_string());
}

#[tokio::test]
async fn a_receiver_failing_its_first_deliveries_gets_everything_in_order() {
    let app = server().spawn(SERVER).await;
    let receiver = Receiver::start("k");
    receiver.set(|b| b.fail = 5);
    let hook = register(&app, json!({"url": receiver.url(), "secret": "k"})).await;
    let agent = app.launch(100, 0).await;
    receiver.wait_complete(agent.id).await;
    assert_whole_run(&app, agent.id, &receiver.deduplicated(agent.id)).await;
    assert!(receiver.requests() >= receiver.accepted().len() + 5);
    let w = wait_caught_up(&app, hook["id"].as_str().unwrap()).await;
    assert!(
        w["lastError"]["message"].as_str().unwrap().contains("500"),
        "{w}"
    );
    assert!(w["lastError"]["at"].is_string());
    assert_eq!(w["attempts"], 0);
}

#[tokio::test]
async fn a_receiver_down_across_a_server_kill_gets_everything_once_it_is_back() {
    let dir = TestDir::new();
    let mut app = server().dir(&dir).spawn(SERVER).await;
    let mut receiver = Receiver::start("k");
    let hook = register(&app, json!({"url": receiver.url(), "secret": "k"})).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    // It takes the first part, then goes away.
    let first = app.launch(30, 0).await;
    receiver.wait_complete(first.id).await;
    receiver.stop().await;
    let agent = app.launch(300, 1).await;
    app.wait_finished(agent.id).await;
    let behind = webhook(&app, &id).await;
    assert!(behind["lag"].as_i64().unwrap() >= 300, "{behind}");
    assert!(behind["lastError"]["message"].is_string(), "{behind}");
    app.kill().await;

    let app = server().dir(&dir).spawn(SERVER).await;
    receiver.listen();
    receiver.wait_complete(agent.id).await;
    assert_whole_run(&app, agent.id, &receiver.deduplicated(agent.id)).await;
    wait_caught_up(&app, &id).await;
    assert_eq!(receiver.bad_signatures(), 0);
}

#[tokio::test]
async fn a_hanging_receiver_is_timed_out_and_retried_while_another_consumer_keeps_up() {
    let app = server()
        .env("AGENTSTREAM__WEBHOOKS__TIMEOUT_MS", "300")
        .spawn(SERVER)
        .await;
    let hanging = Receiver::start("a");
    let healthy = Receiver::start("b");
    hanging.set(|b| b.hang = true);
    let slow = register(&app, json!({"url": hanging.url(), "secret": "a"})).await;
    register(&app, json!({"url": healthy.url(), "secret": "b"})).await;
    let started = Instant::now();
    let agent = app.launch(50, 0).await;
    healthy.wait_complete(agent.id).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the healthy consumer waited on the hanging one: {:?}",
        started.elapsed()
    );
    let id = slow["id"].as_str().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let w = webhook(&app, id).await;
        if w["attempts"].as_i64().unwrap_or(0) >= 2 {
            assert!(
                w["lastError"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("no answer within"),
                "{w}"
            );
            assert!(w["nextRetryAt"].is_string());
            assert!(w["lag"].as_i64().unwrap() > 0);
            break;
        }
        assert!(Instant::now() < deadline, "never timed out: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hanging.accepted().is_empty());
    hanging.set(|b| b.hang = false);
    hanging.wait_complete(agent.id).await;
    assert_whole_run(&app, agent.id, &hanging.deduplicated(agent.id)).await;
    wait_caught_up(&app, id).await;
}

#[tokio::test]
async fn filters_deliver_only_the_agents_and_kinds_asked_for() {
    let app = server().spawn(SERVER).await;
    let receiver = Receiver::start("k");
    let wanted = app.launch(20, 0).await;
    app.wait_finished(wanted.id).await;
    let hook = register(
        &app,
        json!({"url": receiver.url(), "secret": "k", "agentIds": [wanted.id],
               "events": ["agent:complete", "agent:status"]}),
    )
    .await;
    assert_eq!(hook["agentIds"], json!([wanted.id]));
    assert_eq!(hook["events"], json!(["agent:complete", "agent:status"]));
    let other = app.launch(20, 0).await;
    app.wait_finished(other.id).await;
    // A registered consumer starts at the end: the next turn of the agent it asked for.
    app.send(wanted.id, "again").await;
    receiver.wait_complete(wanted.id).await;
    let got = receiver.accepted();
    assert!(got
        .iter()
        .all(|v| v["data"]["agentId"] == wanted.id.to_string()));
    assert!(got
        .iter()
        .all(|v| v["event"] == "agent:complete" || v["event"] == "agent:status"));
    assert_eq!(
        got.iter()
            .filter(|v| v["event"] == "agent:complete")
            .count(),
        1,
        "{got:?}"
    );
    wait_caught_up(&app, hook["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn pause_stops_deliveries_resume_catches_up_and_delete_stops_them() {
    let app = server().spawn(SERVER).await;
    let receiver = Receiver::start("k");
    let hook = register(&app, json!({"url": receiver.url(), "secret": "k"})).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let paused = patch(&app, &id, json!({"paused": true})).await;
    assert_eq!(paused.status(), 200);
    let paused: Value = paused.json().await.unwrap();
    assert_eq!(paused["paused"], true);
    let agent = app.launch(40, 0).await;
    app.wait_finished(agent.id).await;
    // The lag shows what waits; nothing is sent meanwhile.
    let deadline = Instant::now() + TIMEOUT;
    while webhook(&app, &id).await["lag"].as_i64().unwrap() < 40 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.requests(), 0);
    // `/metrics` shows the same lag for the consumer.
    let lag = webhook(&app, &id).await["lag"].as_f64().unwrap();
    let metrics = crate::metrics::scrape(&app).await;
    assert_eq!(
        metrics.value("agentstream_webhook_lag", &[("webhook", &id)]),
        lag
    );

    assert_eq!(
        patch(&app, &id, json!({"paused": false})).await.status(),
        200
    );
    receiver.wait_complete(agent.id).await;
    assert_whole_run(&app, agent.id, &receiver.deduplicated(agent.id)).await;
    wait_caught_up(&app, &id).await;
    let metrics = crate::metrics::scrape(&app).await;
    assert_eq!(
        metrics.value("agentstream_webhook_lag", &[("webhook", &id)]),
        0.0
    );

    let deleted = app
        .client
        .delete(app.url(&format!("/api/webhooks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let before = receiver.requests();
    let later = app.launch(20, 0).await;
    app.wait_finished(later.id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.requests(), before, "a deleted consumer got more");
    let gone = app
        .client
        .get(app.url(&format!("/api/webhooks/{id}")))
        .send()
        .await
        .unwrap();
    assert_error(gone, 404, "webhook_not_found").await;
    let listed: Vec<Value> = app.get_json("/api/webhooks").await;
    assert!(listed.is_empty());
    let metrics = crate::metrics::scrape(&app).await;
    assert!(metrics.samples("agentstream_webhook_lag", &[]).is_empty());
}

#[tokio::test]
async fn a_purged_agent_is_delivered_as_deleted_after_its_messages() {
    let app = server().spawn(SERVER).await;
    let receiver = Receiver::start("k");
    register(&app, json!({"url": receiver.url(), "secret": "k"})).await;
    let agent = app.launch(100_000, 5).await;
    receiver
        .wait_for("a message", |v| v["event"] == "agent:message")
        .await;
    assert_eq!(app.delete_agent(agent.id, true).await.status(), 204);
    receiver
        .wait_for("agent:deleted", |v| {
            v["event"] == "agent:deleted" && v["data"]["agentId"] == agent.id.to_string()
        })
        .await;
    let events = receiver.deduplicated(agent.id);
    let deleted_at = events
        .iter()
        .position(|v| v["event"] == "agent:deleted")
        .unwrap();
    assert!(events[deleted_at + 1..]
        .iter()
        .all(|v| v["event"] == "agent:deleted"));
    let seqs: Vec<i64> = events
        .iter()
        .filter(|v| v["event"] == "agent:message")
        .map(|v| v["data"]["message"]["sequenceNumber"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_secret_is_never_shown() {
    let app = server().spawn(SERVER).await;
    let receiver = Receiver::start("the-secret-value");
    let hook = register(
        &app,
        json!({"url": receiver.url(), "secret": "the-secret-value"}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    let shown = [
        hook.to_string(),
        webhook(&app, id).await.to_string(),
        app.get_json::<Value>("/api/webhooks").await.to_string(),
        patch(&app, id, json!({"secret": "another-secret-value"}))
            .await
            .text()
            .await
            .unwrap(),
    ];
    for text in shown {
        assert!(!text.contains("secret"), "{text}");
    }
}

#[tokio::test]
async fn bad_registrations_get_400_naming_the_field_and_unknown_ids_404() {
    let app = server()
        .env("AGENTSTREAM__WEBHOOKS__MAX_CONSUMERS", "2")
        .env("AGENTSTREAM__WEBHOOKS__MAX_AGENT_IDS", "3")
        .spawn(SERVER)
        .await;
    let ok = "http://127.0.0.1:9/hook";
    let own = format!("http://127.0.0.1:{}/api/webhooks", app.port);
    let own_localhost = format!("http://localhost:{}/", app.port);
    let own_v6 = format!("http://[::1]:{}/", app.port);
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"url": "ftp://127.0.0.1/x", "secret": "k"}),
            400,
            "invalid_url",
            "url",
        ),
        (
            json!({"url": "not a url", "secret": "k"}),
            400,
            "invalid_url",
            "url",
        ),
        (
            json!({"url": own, "secret": "k"}),
            400,
            "invalid_url",
            "url",
        ),
        (
            json!({"url": own_localhost, "secret": "k"}),
            400,
            "invalid_url",
            "url",
        ),
        (
            json!({"url": own_v6, "secret": "k"}),
            400,
            "invalid_url",
            "url",
        ),
        (
            json!({"url": "http://192.0.2.1:8080/", "secret": "k"}),
            400,
            "invalid_url",
            "allowed_hosts",
        ),
        (
            json!({"url": ok, "secret": ""}),
            400,
            "invalid_secret",
            "secret",
        ),
        (
            json!({"url": ok, "secret": "k".repeat(513)}),
            400,
            "invalid_secret",
            "secret",
        ),
        (
            json!({"url": ok, "secret": "k", "events": ["agent:nope"]}),
            400,
            "invalid_events",
            "events",
        ),
        (
            json!({"url": ok, "secret": "k", "agentIds": ["nope"]}),
            400,
            "invalid_agent_ids",
            "agentIds",
        ),
        (
            json!({"url": ok, "secret": "k", "agentIds": (0..4).map(|_| Uuid::now_v7()).collect::<Vec<_>>()}),
            400,
            "invalid_agent_ids",
            "agentIds",
        ),
        (json!({"secret": "k"}), 400, "invalid_body", "url"),
        (
            json!({"url": ok, "secret": "k", "extra": 1}),
            400,
            "invalid_body",
            "extra",
        ),
        (json!({"url": 7, "secret": "k"}), 400, "invalid_url", "url"),
        (
            json!({"url": ok, "secret": ["k"]}),
            400,
            "invalid_secret",
            "secret",
        ),
        (
            json!({"url": ok, "secret": "k", "agentIds": "all"}),
            400,
            "invalid_agent_ids",
            "agentIds",
        ),
        (
            json!({"url": ok, "secret": "k", "events": [1]}),
            400,
            "invalid_events",
            "events",
        ),
        (json!([1]), 400, "invalid_body", "object"),
        (
            json!({"url": ok, "secret": "x".repeat(70_000)}),
            413,
            "payload_too_large",
            "bytes",
        ),
    ];
    for (body, status, code, names) in cases {
        let response = app
            .client
            .post(app.url("/api/webhooks"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = assert_error(response, status, code).await;
        assert!(error.message.contains(names), "{body}: {}", error.message);
    }
    let not_json = app
        .client
        .post(app.url("/api/webhooks"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_error(not_json, 400, "invalid_body").await;

    let hook = register(&app, json!({"url": ok, "secret": "k"})).await;
    let id = hook["id"].as_str().unwrap();
    for (body, code) in [
        (json!({"url": "gopher://127.0.0.1/"}), "invalid_url"),
        (json!({"secret": ""}), "invalid_secret"),
        (json!({"events": ["x"]}), "invalid_events"),
        (json!({"agentIds": [1]}), "invalid_agent_ids"),
        (json!({"paused": "yes"}), "invalid_body"),
    ] {
        assert_error(patch(&app, id, body).await, 400, code).await;
    }
    // A refused change changes nothing.
    assert_eq!(webhook(&app, id).await["url"], ok);
    let changed: Value = patch(
        &app,
        id,
        json!({"events": ["agent:status"], "agentIds": null}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(changed["events"], json!(["agent:status"]));

    let unknown = Uuid::now_v7();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(&format!("/api/webhooks/{unknown}")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "webhook_not_found").await;
        let response = app
            .client
            .request(method, app.url("/api/webhooks/nope"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "invalid_id").await;
    }
    let put = app
        .client
        .put(app.url("/api/webhooks"))
        .send()
        .await
        .unwrap();
    assert_error(put, 405, "method_not_allowed").await;

    register(&app, json!({"url": ok, "secret": "k"})).await;
    let third = app
        .client
        .post(app.url("/api/webhooks"))
        .json(&json!({"url": ok, "secret": "k"}))
        .send()
        .await
        .unwrap();
    assert_error(third, 409, "too_many_webhooks").await;
    app.assert_healthy().await;
}

/// A consumer whose receiver never answers does not slow the agents: their pipeline never waits on
/// a delivery.
#[tokio::test]
async fn deliveries_never_hold_up_the_agents() {
    let app = server()
        .env("AGENTSTREAM__WEBHOOKS__TIMEOUT_MS", "60000")
        .spawn(SERVER)
        .await;
    let hanging = Receiver::start("a");
    hanging.set(|b| b.hang = true);
    register(&app, json!({"url": hanging.url(), "secret": "a"})).await;
    let started = Instant::now();
    let agent = app.launch(2000, 0).await;
    app.wait_finished(agent.id).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(app.messages(agent.id, None).await.len(), 2003);
}

#[tokio::test]
async fn on_several_instances_one_delivers_a_consumer_and_another_takes_over_when_it_dies() {
    if !agentstream_testkit::on_postgres("several instances on one database") {
        return;
    }
    let dir = TestDir::new();
    let other = dir.same_database();
    let mut a = server()
        .dir(&dir)
        .env("AGENTSTREAM__INSTANCE__ID", "a")
        .spawn(SERVER)
        .await;
    let b = server()
        .dir(&other)
        .env("AGENTSTREAM__INSTANCE__ID", "b")
        .spawn(SERVER)
        .await;
    let receiver = Receiver::start("k");
    let hook = register(&a, json!({"url": receiver.url(), "secret": "k"})).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    // An agent of b, delivered by a alone: nothing twice.
    let first = b.launch(100, 1).await;
    receiver.wait_complete(first.id).await;
    assert_whole_run(&b, first.id, &receiver.deduplicated(first.id)).await;
    wait_caught_up(&b, &id).await;
    assert_eq!(
        receiver.deduplicated(first.id).len(),
        receiver.accepted().len()
    );

    a.kill().await;
    let second = b.launch(200, 1).await;
    receiver.wait_complete(second.id).await;
    assert_whole_run(&b, second.id, &receiver.deduplicated(second.id)).await;
    wait_caught_up(&b, &id).await;
    assert_eq!(receiver.bad_signatures(), 0);
}

#[tokio::test]
async fn a_server_killed_mid_delivery_resends_from_its_stored_position_and_misses_nothing() {
    let dir = TestDir::new();
    let mut app = server().dir(&dir).spawn(SERVER).await;
    let receiver = Receiver::start("k");
    let hook = register(&app, json!({"url": receiver.url(), "secret": "k"})).await;
    let agent = app.launch(100_000, 2).await;
    receiver
        .wait_for("a hundred messages", |v| {
            v["data"]["message"]["sequenceNumber"].as_i64() >= Some(100)
        })
        .await;
    app.kill().await;

    let app = server().dir(&dir).spawn(SERVER).await;
    // The restart stored the agent as interrupted: that is its end for the consumer.
    receiver
        .wait_for("agent:status interrupted", |v| {
            v["event"] == "agent:status" && v["data"]["status"] == "interrupted"
        })
        .await;
    wait_caught_up(&app, hook["id"].as_str().unwrap()).await;
    let events = receiver.deduplicated(agent.id);
    let history = app.messages(agent.id, None).await;
    let delivered: Vec<i64> = events
        .iter()
        .filter(|v| v["event"] == "agent:message")
        .map(|v| v["data"]["message"]["sequenceNumber"].as_i64().unwrap())
        .collect();
    let stored: Vec<i64> = history.iter().map(|m| m.sequence_number).collect();
    assert_eq!(delivered, stored, "every stored message, in order");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "agent:status");
    assert_eq!(last["data"]["lastSequence"], *stored.last().unwrap());
    assert_eq!(receiver.bad_signatures(), 0);
}
