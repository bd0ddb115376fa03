//! Authentication and exposure, tried as an attacker would: no token, a wrong one, one of the right
//! length, the right one in the wrong scheme or in the URL of a REST call, a foreign page's Origin (CSRF,
//! cross-site WebSocket hijacking), DNS rebinding, an exposed port without a token, floods of sockets,
//! subscriptions and launches; and the headers of the static app.

use std::time::Duration;

use agentstream_testkit::{assert_error, backend, Backend, TestDir, TestServer, TIMEOUT};
use agentstream_wire::ServerEvent;
use reqwest::{Method, Response};
use serde_json::json;
use tempfile::TempDir;
use uuid::Uuid;

use crate::SERVER;

/// The server's token in these tests.
const TOKEN: &str = "s3cret-token-for-tests-0123456789";

async fn spawn_with_token(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("AGENTSTREAM__AUTH__TOKEN", TOKEN)];
    env.extend_from_slice(extra);
    TestServer::builder().envs(&env).spawn(SERVER).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A request with optional `Authorization`.
async fn call(app: &TestServer, method: Method, path: &str, auth: Option<&str>) -> Response {
    let mut request = app.client.request(method.clone(), app.url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if method == Method::POST {
        request = request.json(&json!({"type": "synthetic", "prompt": "pwned",
                                        "configuration": {"tokens": 1}}));
    }
    request.send().await.expect("request")
}

async fn assert_unauthorized(response: Response) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate: {challenge:?}"
    );
    assert_error(response, 401, "unauthorized").await;
}

/// The agents the server has, asked with the token.
async fn agent_count(app: &TestServer, auth: Option<&str>) -> usize {
    let r = call(app, Method::GET, "/api/agents", auth).await;
    assert_eq!(r.status(), 200);
    r.json::<Vec<serde_json::Value>>().await.unwrap().len()
}

#[tokio::test]
async fn rest_calls_without_the_exact_token_are_401_and_change_nothing() {
    let app = spawn_with_token(&[]).await;
    let same_length_wrong = {
        let mut t = TOKEN.to_owned();
        t.pop();
        t.push('X');
        t
    };
    let id = Uuid::new_v4();
    let wrong: Vec<Option<String>> = vec![
        None,
        Some(bearer("wrong")),
        Some(bearer(&same_length_wrong)),
        Some(bearer(&TOKEN[..TOKEN.len() - 1])),
        Some(bearer(&format!("{TOKEN}x"))),
        Some(bearer("")),
        Some("Bearer".to_owned()),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Token {TOKEN}")),
        Some(TOKEN.to_owned()),
        Some(format!("Bearer{TOKEN}")),
    ];
    for auth in &wrong {
        for (method, path) in [
            (Method::GET, "/api/agents".to_owned()),
            (Method::POST, "/api/agents".to_owned()),
            (Method::GET, format!("/api/agents/{id}")),
            (Method::GET, format!("/api/agents/{id}/messages?since=0")),
            (Method::DELETE, format!("/api/agents/{id}?purge=true")),
            (Method::GET, "/api/no-such-endpoint".to_owned()),
            (Method::OPTIONS, "/api/agents".to_owned()),
        ] {
            let r = call(&app, method.clone(), &path, auth.as_deref()).await;
            assert_eq!(r.status(), 401, "{method} {path} with {auth:?}");
            assert_unauthorized(r).await;
        }
    }
    // The token in the query string of a REST call is not accepted (URLs end up in logs and histories).
    let r = call(
        &app,
        Method::GET,
        &format!("/api/agents?token={TOKEN}"),
        None,
    )
    .await;
    assert_unauthorized(r).await;
    // A percent-encoded path does not slip past the guard into the API.
    for sneaky in [
        "/%61pi/agents",
        "/api/%61gents",
        "/API/agents",
        "//api/agents",
    ] {
        let r = call(&app, Method::GET, sneaky, None).await;
        let json = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").contains("json"));
        assert!(
            !(r.status() == 200 && json),
            "{sneaky} answered {}",
            r.status()
        );
    }
    // The health check stays open and says nothing else than that, which instance, its database, and
    // (several instances on PostgreSQL) whether it hears the others and holds its lease.
    let r = call(&app, Method::GET, "/api/health", None).await;
    assert_eq!(r.status(), 200);
    let health = r.json::<serde_json::Value>().await.unwrap();
    let keys: Vec<&str> = health
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: &[&str] = match agentstream_testkit::backend() {
        agentstream_testkit::Backend::Postgres => {
            &["status", "instance", "database", "listener", "lease"]
        }
        _ => &["status", "instance", "database"],
    };
    assert_eq!(keys, expected, "{health}");
    assert_eq!(
        (&health["status"], &health["database"]),
        (&json!("ok"), &json!("up"))
    );

    // Not one of those POSTs launched anything; the real token does, in any case of the scheme.
    assert_eq!(agent_count(&app, Some(&bearer(TOKEN))).await, 0);
    let r = call(
        &app,
        Method::POST,
        "/api/agents",
        Some(&format!("bearer {TOKEN}")),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(agent_count(&app, Some(&bearer(TOKEN))).await, 1);
}

#[tokio::test]
async fn websocket_without_the_token_is_refused_before_the_upgrade() {
    let app = spawn_with_token(&[]).await;
    let wrong_query = format!("?token={}", &TOKEN[1..]);
    let basic = format!("Basic {TOKEN}");
    let attempts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("", vec![]),
        ("?token=", vec![]),
        ("?token=wrong", vec![]),
        (&wrong_query, vec![]),
        ("", vec![("authorization", "Bearer wrong")]),
        ("", vec![("authorization", &basic)]),
        ("?tok=x", vec![]),
    ];
    for (query, headers) in &attempts {
        let refused = app
            .ws_with(query, headers)
            .await
            .err()
            .unwrap_or_else(|| panic!("/ws{query} with {headers:?} was upgraded"));
        refused.assert_error(401, "unauthorized");
        assert!(refused
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")));
    }
    // The token works as `?token=` (what a browser can send) and as a header; the socket then works.
    let encoded = format!("?token={}", TOKEN.replace('-', "%2D"));
    let auth = bearer(TOKEN);
    for (query, headers) in [
        (encoded.as_str(), vec![]),
        ("", vec![("authorization", auth.as_str())]),
    ] {
        let mut ws = app
            .ws_with(query, &headers)
            .await
            .expect("authorized upgrade");
        ws.subscribe(Uuid::new_v4(), None).await;
        match ws.next_event().await {
            ServerEvent::Error(e) => assert_eq!(e.code, "agent_not_found"),
            other => panic!("expected agent_not_found, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn pages_of_other_origins_cannot_drive_a_tokenless_local_server() {
    // The default: no token, loopback. What a malicious page in the user's browser would try.
    let app = TestServer::spawn(SERVER).await;
    let own = format!("http://127.0.0.1:{}", app.port);
    for origin in [
        "http://evil.example",
        "null",
        "http://127.0.0.1:1",
        "http://localhost.evil.example",
    ] {
        // Cross-site WebSocket hijacking.
        let refused = app.ws_with("", &[("origin", origin)]).await.err();
        let refused = refused.unwrap_or_else(|| panic!("/ws upgraded for Origin {origin}"));
        refused.assert_error(403, "origin_not_allowed");
        // A "simple" cross-site POST (text/plain, no preflight) must not launch anything.
        let r = app
            .client
            .post(app.url("/api/agents"))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(r#"{"type": "synthetic", "prompt": "csrf"}"#)
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
        assert_error(r, 403, "origin_not_allowed").await;
        // Reads and preflights get no CORS grant either.
        for method in [Method::GET, Method::OPTIONS] {
            let r = app
                .client
                .request(method, app.url("/api/agents"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .send()
                .await
                .unwrap();
            assert!(r.headers().get("access-control-allow-origin").is_none());
            assert_error(r, 403, "origin_not_allowed").await;
        }
    }
    // DNS rebinding: the attacker's name resolves to 127.0.0.1, so the page is "same-origin" with
    // itself; the Host header gives it away.
    let rebound = format!("evil.example:{}", app.port);
    let rebound_origin = format!("http://{rebound}");
    let r = app
        .client
        .get(app.url("/api/agents"))
        .header("host", &rebound)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "host_not_allowed").await;
    let refused = app
        .ws_with("", &[("host", &rebound), ("origin", &rebound_origin)])
        .await
        .err()
        .expect("rebound /ws upgraded");
    refused.assert_error(403, "host_not_allowed");
    // The app's own pages, localhost, and clients without Origin (curl) are served.
    assert!(app.ws_with("", &[("origin", &own)]).await.is_ok());
    let localhost = format!("localhost:{}", app.port);
    let r = app
        .client
        .get(app.url("/api/agents"))
        .header("host", &localhost)
        .header("origin", format!("http://{localhost}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        agent_count(&app, None).await,
        0,
        "a cross-site POST launched an agent"
    );
    app.launch(1, 0).await;
}

#[tokio::test]
async fn allowed_origins_get_cors_and_still_need_the_token() {
    let allowed = "https://app.example.com";
    let app = spawn_with_token(&[(
        "AGENTSTREAM__SERVER__ALLOWED_ORIGINS",
        &format!("{allowed},http://other.example:8080"),
    )])
    .await;
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/api/agents"))
        .header("origin", allowed)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], allowed);
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(
        h.get("access-control-allow-credentials").is_none(),
        "no cookies, no credentials"
    );

    let r = app
        .client
        .get(app.url("/api/agents"))
        .header("origin", allowed)
        .header("authorization", bearer(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], allowed);
    assert!(r.headers()["vary"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("origin"));
    // Without the token: 401, readable by the allowed page.
    let r = app
        .client
        .get(app.url("/api/agents"))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], allowed);
    assert_unauthorized(r).await;
    // A look-alike origin is foreign.
    for origin in [
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "https://evil.example",
    ] {
        let r = app
            .client
            .get(app.url("/api/agents"))
            .header("origin", origin)
            .header("authorization", bearer(TOKEN))
            .send()
            .await
            .unwrap();
        assert_error(r, 403, "origin_not_allowed").await;
    }
    let token_query = format!("?token={TOKEN}");
    assert!(app
        .ws_with(&token_query, &[("origin", allowed)])
        .await
        .is_ok());
    app.ws_with("", &[("origin", allowed)])
        .await
        .err()
        .expect("allowed origin without token upgraded")
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn refuses_to_start_on_a_public_address_without_a_token() {
    let dir = TestDir::new();
    let failed = TestServer::builder()
        .dir(&dir)
        .host("0.0.0.0")
        .try_spawn(SERVER)
        .await
        .err()
        .expect("the server listened on 0.0.0.0 without a token");
    assert!(failed.code().is_some_and(|c| c != 0), "{failed:?}");
    assert!(
        failed.log().contains("refusing to listen on 0.0.0.0"),
        "{failed}"
    );
    assert!(
        failed.log().contains("AGENTSTREAM__AUTH__TOKEN"),
        "{failed}"
    );
    assert!(
        backend() != Backend::Sqlite || !dir.path().join("agent.db").exists(),
        "the database was opened anyway"
    );

    // Other refusals of bad security settings, even on loopback.
    let file = dir.path().join("token");
    std::fs::write(&file, TOKEN).unwrap();
    let file = file.to_str().unwrap();
    for (env, says) in [
        (
            vec![("AGENTSTREAM__AUTH__TOKEN", "short-token")],
            "too weak",
        ),
        (
            vec![("AGENTSTREAM__AUTH__TOKEN", "a token with spaces in it")],
            "printable ASCII",
        ),
        (
            vec![
                ("AGENTSTREAM__AUTH__TOKEN", TOKEN),
                ("AGENTSTREAM__AUTH__TOKEN_FILE", file),
            ],
            "not both",
        ),
        (
            vec![("AGENTSTREAM__AUTH__TOKEN_FILE", "/no/such/token/file")],
            "cannot read",
        ),
        (
            vec![("AGENTSTREAM__SERVER__ALLOWED_ORIGINS", "*")],
            "allowed_origins",
        ),
    ] {
        let failed = TestServer::builder()
            .dir(&dir)
            .envs(&env)
            .try_spawn(SERVER)
            .await
            .err()
            .unwrap_or_else(|| panic!("started with {env:?}"));
        assert!(failed.code().is_some_and(|c| c != 0));
        assert!(failed.log().contains(says), "{env:?}: {failed}");
        assert!(
            !failed.log().contains("short-token"),
            "the token was printed"
        );
    }
}

#[tokio::test]
async fn starts_on_a_public_address_with_a_token_or_the_explicit_override() {
    let dir = TestDir::new();
    let app = TestServer::builder()
        .dir(&dir)
        .host("0.0.0.0")
        .env("AGENTSTREAM__AUTH__TOKEN", TOKEN)
        .try_spawn(SERVER)
        .await
        .expect("a token allows 0.0.0.0");
    let url = format!("http://127.0.0.1:{}/api/agents", app.port);
    let r = app.client.get(&url).send().await.unwrap();
    assert_unauthorized(r).await;
    let r = app
        .client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(app);

    for (flags, env) in [
        (vec!["--allow-public-without-token"], vec![]),
        (
            vec![],
            vec![("AGENTSTREAM__SERVER__ALLOW_PUBLIC_WITHOUT_TOKEN", "true")],
        ),
    ] {
        let dir = TestDir::new();
        let app = TestServer::builder()
            .dir(&dir)
            .host("0.0.0.0")
            .args(&flags)
            .envs(&env)
            .try_spawn(SERVER)
            .await
            .unwrap_or_else(|f| panic!("on 0.0.0.0 with {flags:?} {env:?} refused: {f}"));
        assert!(
            app.log().contains("WITHOUT an API token"),
            "no warning: {}",
            app.log()
        );
        let url = format!("http://127.0.0.1:{}/api/agents", app.port);
        assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn a_token_file_and_an_all_digit_token_are_taken_as_they_are() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("\n  {TOKEN}  \n")).unwrap();
    let app = TestServer::builder()
        .env("AGENTSTREAM__AUTH__TOKEN_FILE", file.to_str().unwrap())
        .spawn(SERVER)
        .await;
    assert_eq!(agent_count(&app, Some(&bearer(TOKEN))).await, 0);
    assert_unauthorized(call(&app, Method::GET, "/api/agents", None).await).await;

    // All digits: must not be read as a (rounded) number.
    let digits = "123456789012345678901234567890";
    let app = TestServer::builder()
        .env("AGENTSTREAM__AUTH__TOKEN", digits)
        .spawn(SERVER)
        .await;
    assert_eq!(agent_count(&app, Some(&bearer(digits))).await, 0);
    let rounded = "123456789012345680000000000000";
    assert_unauthorized(call(&app, Method::GET, "/api/agents", Some(&bearer(rounded))).await).await;
}

#[tokio::test]
async fn websocket_connections_are_limited_and_freed() {
    let app = TestServer::builder()
        .env("AGENTSTREAM__WEBSOCKET__MAX_CONNECTIONS", "3")
        .spawn(SERVER)
        .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.ws_with("", &[]).await.expect("within the limit"));
    }
    for _ in 0..5 {
        let refused = app
            .ws_with("", &[])
            .await
            .err()
            .expect("a 4th socket was opened");
        refused.assert_error(429, "too_many_connections");
        assert!(refused.header("retry-after").is_some());
    }
    // A closed socket frees its place (refused attempts took none).
    let mut closed = open.pop().unwrap();
    closed.stream.close(None).await.unwrap();
    drop(closed);
    drop(open.pop());
    let reopened = tokio::time::timeout(TIMEOUT, async {
        let mut got = Vec::new();
        while got.len() < 2 {
            match app.ws_with("", &[]).await {
                Ok(ws) => got.push(ws),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        got
    })
    .await
    .expect("places were not given back");
    assert_eq!(reopened.len(), 2);
    assert!(app.ws_with("", &[]).await.is_err());
}

#[tokio::test]
async fn subscriptions_per_connection_are_limited() {
    let app = TestServer::builder()
        .env(
            "AGENTSTREAM__WEBSOCKET__MAX_SUBSCRIPTIONS_PER_CONNECTION",
            "2",
        )
        .spawn(SERVER)
        .await;
    let agents = [
        app.launch(1, 0).await,
        app.launch(1, 0).await,
        app.launch(1, 0).await,
    ];
    // Ended before anyone subscribes: what a subscription brings is its reply (and, at most, the
    // `agent:complete` its room got meanwhile, which the waits below skip).
    for a in &agents {
        app.wait_finished(a.id).await;
    }
    let mut ws = app.ws().await;
    // Unknown agents take no place.
    for _ in 0..3 {
        ws.subscribe(Uuid::new_v4(), None).await;
        loop {
            match ws.next_event().await {
                ServerEvent::Error(e) => {
                    assert_eq!(e.code, "agent_not_found");
                    break;
                }
                ServerEvent::Subscribed(s) => panic!("subscribed to {s:?}"),
                _ => {}
            }
        }
    }
    for a in &agents[..2] {
        ws.subscribe(a.id, None).await;
        let subscribed = loop {
            match ws.next_event().await {
                ServerEvent::Subscribed(s) => break s,
                ServerEvent::Error(e) => panic!("{e:?}"),
                _ => {}
            }
        };
        assert_eq!(subscribed.agent_id, a.id);
    }
    ws.subscribe(agents[2].id, None).await;
    let error = loop {
        match ws.next_event().await {
            ServerEvent::Error(e) => break e,
            ServerEvent::Subscribed(s) => panic!("a 3rd subscription was accepted: {s:?}"),
            _ => {}
        }
    };
    assert_eq!(error.code, "too_many_subscriptions");
    assert_eq!(error.agent_id, Some(agents[2].id));
    // Subscribing again to one it has is no new place; leaving one frees a place; the socket stayed open.
    ws.subscribe(agents[0].id, Some(0)).await;
    let again = loop {
        match ws.next_event().await {
            ServerEvent::Subscribed(s) => break s,
            ServerEvent::Error(e) => panic!("{e:?}"),
            _ => {}
        }
    };
    assert_eq!(again.agent_id, agents[0].id);
    ws.unsubscribe(agents[1].id).await;
    ws.subscribe(agents[2].id, None).await;
    let subscribed = loop {
        match ws.next_event().await {
            ServerEvent::Subscribed(s) => break s,
            ServerEvent::Error(e) => panic!("{e:?}"),
            _ => {}
        }
    };
    assert_eq!(subscribed.agent_id, agents[2].id);
}

#[tokio::test]
async fn launches_per_minute_are_limited_with_retry_after() {
    let app = TestServer::builder()
        .env("AGENTSTREAM__AGENTS__LAUNCHES_PER_MINUTE", "3")
        .spawn(SERVER)
        .await;
    // Refused requests do not use the budget.
    for _ in 0..5 {
        let r = app
            .post_agent(
                &json!({"type": "synthetic", "prompt": "x", "configuration": {"tokens": 0}}),
            )
            .await;
        assert_error(r, 400, "invalid_configuration").await;
    }
    for _ in 0..3 {
        app.launch(1, 0).await;
    }
    for _ in 0..3 {
        let r = app
            .post_agent(&json!({"type": "synthetic", "prompt": "flood"}))
            .await;
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=20).contains(&retry), "Retry-After {retry}");
        assert_error(r, 429, "too_many_launches").await;
    }
    // Reads are not limited.
    assert_eq!(agent_count(&app, None).await, 3);
}

#[tokio::test]
async fn security_headers_on_the_app_and_the_api() {
    let app = spawn_with_token(&[]).await;
    // The static app is public (it must load to ask for the token), with its protective headers.
    let page = app.client.get(app.url("/")).send().await.unwrap();
    let h = page.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // The API's answers, refusals included.
    for auth in [None, Some(bearer(TOKEN))] {
        let r = call(&app, Method::GET, "/api/agents", auth.as_deref()).await;
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{auth:?}");
    }
    let r = call(&app, Method::GET, "/api/health", None).await;
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn watch_sends_the_token() {
    let app = spawn_with_token(&[]).await;
    let r = call(&app, Method::POST, "/api/agents", Some(&bearer(TOKEN))).await;
    let agent: serde_json::Value = r.json().await.unwrap();
    let id = agent["id"].as_str().unwrap().to_owned();
    let watch = |token: Option<&str>| {
        let mut cmd = tokio::process::Command::new(SERVER);
        cmd.args(["watch", &id, "--url", &app.address])
            .env_remove("AGENTSTREAM__AUTH__TOKEN");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        cmd.output()
    };
    let out = watch(None).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("API token"));
    let out = watch(Some(TOKEN)).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn with_the_token_a_client_does_everything_it_could_without_one() {
    let app = spawn_with_token(&[]).await.with_token(TOKEN);
    let agent = app.launch(20, 0).await;
    let done = app.wait_finished(agent.id).await;
    assert_eq!(done.status, agentstream_wire::AgentStatus::Completed);
    assert_eq!(app.messages(agent.id, Some(20)).await.len(), 3);
    let listed: Vec<agentstream_wire::Agent> = app.get_json("/api/agents").await;
    assert_eq!(listed.len(), 1);
    let purge = app.delete_agent(agent.id, true).await;
    assert_eq!(purge.status(), 204);
}
