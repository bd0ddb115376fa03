//! `GET /api/openapi.json` and `/api/docs`: the document is OpenAPI 3.1 whose references all resolve;
//! it describes exactly the routes the server registers (read from the code that registers them) and
//! the server answers every one it describes; real answers — REST bodies and errors, the WebSocket's
//! frames both ways — validate against its schemas; and the API page loads only from this server.
//! (The fuzzing of every operation against the document is `scripts/api-fuzz`, schemathesis.)

use std::collections::BTreeSet;
use std::time::Duration;

use agentstream_testkit::{Incoming, TestServer, TIMEOUT};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::SERVER;

/// The document, as the server serves it.
async fn document(app: &TestServer) -> Value {
    let response = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("GET /api/openapi.json");
    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "application/json");
    response.json().await.expect("JSON")
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A path with its parameters' names dropped (`/api/agents/{}`): actix names `{request_id}` what the
/// document calls `{requestId}`.
fn shape(path: &str) -> String {
    agentstream::openapi::route_shape(path)
}

/// Every (method, path shape) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.insert((method.to_ascii_uppercase(), shape(path)));
            }
        }
    }
    ops
}

/// Every (method, path shape) the server registers, read from the code that registers the routes
/// (every file of `backend/src/`, so that a new module's routes count too): each `web::resource("…")`
/// and the `.route(web::<method>()…)` lines that follow it. Paths inside the `/api` scope are relative
/// to it.
fn registered() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    let mut folders = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("a source folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let full = |path: &str| {
        let absolute = ["/api", "/ws", "/metrics"]
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")));
        if absolute {
            path.to_owned()
        } else {
            format!("/api{path}")
        }
    };
    let mut routes = BTreeSet::new();
    // `agentstream proxy` is a server of its own (the Claude proxy's contract), not this API.
    files.retain(|f| !f.ends_with("commands/proxy.rs"));
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file");
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.split("web::resource(\"").nth(1) {
                current = Some(full(rest.split('"').next().expect("a path")));
            }
            if let (Some(path), Some(rest)) = (&current, line.split(".route(web::").nth(1)) {
                let method = rest.split("()").next().expect("a method");
                routes.insert((method.to_ascii_uppercase(), shape(path)));
            }
            // The other form: `.route("/path", web::get().to(…))`.
            if let Some(rest) = line.split(".route(\"").nth(1) {
                let path = rest.split('"').next().expect("a path");
                if let Some(method) = rest
                    .split("web::")
                    .nth(1)
                    .and_then(|m| m.split("()").next())
                {
                    routes.insert((method.to_ascii_uppercase(), shape(&full(path))));
                }
            }
        }
    }
    assert!(routes.len() >= 15, "the route reader found only {routes:?}");
    routes
}

/// `pointer` in the document, following a `$ref` at its end.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} does not resolve"))
        }
        None => value,
    }
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Validates `instance` against `schema`, a schema of the document (its `$ref`s resolved in it).
fn assert_valid(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let mut root = schema.clone();
    if let Some(object) = root.as_object_mut() {
        object.insert("components".to_owned(), doc["components"].clone());
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: does not match the document: {errors:?}\n{instance:#}"
    );
}

/// The JSON schema the document gives the answer `status` of `method path`.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let operation = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let response = operation["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {path}: {status} is not documented"));
    let response = resolve(doc, response);
    response
        .pointer("/content/application~1json/schema")
        .unwrap_or_else(|| panic!("{method} {path} {status}: no JSON schema"))
}

/// Sends a request and checks its answer against the document: a status it lists, the content type
/// it gives, a body matching its schema. The body.
async fn call(
    app: &TestServer,
    doc: &Value,
    method: Method,
    (template, url): (&str, &str),
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method.clone(), app.url(url));
    if let Some(body) = &body {
        request = request.json(body);
    }
    let response = request.send().await.expect("a response");
    let status = response.status().as_u16();
    let kind = content_type(&response);
    let text = response.text().await.expect("a body");
    if status == 204 {
        assert!(text.is_empty());
        assert!(
            doc["paths"][template][method.as_str().to_ascii_lowercase()]["responses"]["204"]
                .is_object()
        );
        return (status, Value::Null);
    }
    assert!(
        kind.starts_with("application/json"),
        "{method} {url}: {kind}"
    );
    let value: Value = serde_json::from_str(&text).expect("JSON");
    let schema = response_schema(doc, method.as_str(), template, status);
    assert_valid(doc, schema, &value, &format!("{method} {url} → {status}"));
    (status, value)
}

/// [`call`] of a GET.
async fn get(app: &TestServer, doc: &Value, template: &str, url: &str) -> (u16, Value) {
    call(app, doc, Method::GET, (template, url), None).await
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_describes_exactly_the_routes_the_server_serves() {
    let app = TestServer::spawn(SERVER).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    // Read as OpenAPI 3.1 by an independent model of it: a field of the wrong shape fails here.
    let spec = oas3::from_json(doc.to_string()).expect("an OpenAPI 3.1 document");
    assert_eq!(spec.openapi, "3.1.0");

    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(refs.len() > 50, "{}", refs.len());
    for r in &refs {
        resolve(&doc, &json!({ "$ref": r }));
    }

    // Exactly what the code registers, both ways.
    let described = documented(&doc);
    let registered = registered();
    let undocumented: Vec<_> = registered.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "routes with no #[utoipa::path] in ApiDoc's paths (backend/src/openapi/mod.rs): {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "described, never registered: {unserved:?}"
    );

    // Each operation: a unique id, a success answer, the error form for its errors, and on every
    // guarded one the token's 401 and 403.
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("an item") {
            let id = op["operationId"].as_str().expect("an operationId");
            assert!(ids.insert(id.to_owned()), "{id} twice");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('2') || s.as_str() == "101"),
                "{method} {path}: no success"
            );
            for (status, response) in responses {
                // The health check's 503 is its own body (`unavailable`, which part is down).
                if (status.starts_with('4') || status.starts_with('5')) && path != "/api/health" {
                    let schema = resolve(&doc, response)
                        .pointer("/content/application~1json/schema/$ref")
                        .and_then(Value::as_str);
                    assert_eq!(
                        schema,
                        Some("#/components/schemas/ErrorBody"),
                        "{method} {path} {status}"
                    );
                }
            }
            let open = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if !open {
                assert!(responses.contains_key("401"), "{method} {path}: no 401");
                assert!(responses.contains_key("403"), "{method} {path}: no 403");
            }
        }
    }

    // The error codes are the strings the server sends, not the Rust names.
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    assert!(codes
        .as_array()
        .expect("codes")
        .contains(&json!("agent_not_found")));
    assert_eq!(
        doc["components"]["schemas"]["AgentStatus"]["enum"],
        json!([
            "initializing",
            "running",
            "completed",
            "failed",
            "terminated",
            "interrupted",
            "awaiting_permission"
        ])
    );
    // The WebSocket's frames, both ways, and the security schemes.
    for name in ["ClientFrame", "ServerEvent", "ErrorBody"] {
        assert!(doc["components"]["schemas"][name].is_object(), "{name}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["tokenQuery"]["in"],
        "query"
    );
    // The stateful links schemathesis follows.
    let link = &doc["paths"]["/api/agents"]["post"]["responses"]["201"]["links"]["GetAgent"];
    assert_eq!(link["operationId"], "getAgent");
    assert_eq!(link["parameters"]["id"], "$response.body#/id");

    // The server answers every operation described (an unknown agent's 404 is an answer; the
    // generic `not_found` and 405 are not).
    let id = Uuid::new_v4();
    for (method, path) in &described {
        let url = if path == "/api/docs/{}" {
            "/api/docs/docs.js".to_owned()
        } else {
            path.replacen("{}", &id.to_string(), 1)
                .replacen("{}", "req_1", 1)
        };
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = app.client.request(method.clone(), app.url(&url));
        if method == Method::POST {
            request = request.json(&json!({}));
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        assert_ne!(status, 405, "{method} {url}");
        if status == 404 {
            let body: Value = response.json().await.expect("the error form");
            assert_ne!(body["error"]["code"], "not_found", "{method} {url}");
        }
    }

    // A method a path does not take: 405 with the methods it does (RFC 9110), from the document.
    let response = app
        .client
        .patch(app.url(&format!("/api/agents/{id}")))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, DELETE");
}

#[tokio::test]
async fn real_answers_and_websocket_frames_match_the_documents_schemas() {
    let app = TestServer::spawn(SERVER).await;
    let doc = document(&app).await;
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });

    // A WebSocket watches the agent: every frame must be a ServerEvent. The agent first asks to run a
    // tool and waits, so that its lifecycle events come live, after the subscription.
    let mut ws = app.ws().await;
    let (status, agent) = call(
        &app,
        &doc,
        Method::POST,
        ("/api/agents", "/api/agents"),
        Some(json!({"type": "synthetic", "prompt": "hi",
                    "configuration": {"tokens": 20, "intervalMs": 1, "askPermission": true}})),
    )
    .await;
    assert_eq!(status, 201);
    let id = agent["id"].as_str().expect("an id").to_owned();
    let subscribe = json!({"event": "subscribe", "data": {"agentId": id, "since": 0}});
    assert_valid(&doc, &schema("ClientFrame"), &subscribe, "subscribe");
    assert_valid(
        &doc,
        &schema("ClientFrame"),
        &json!({"event": "unsubscribe", "data": {"agentId": id}}),
        "unsubscribe",
    );
    ws.send_text(&subscribe.to_string()).await;
    let uuid: Uuid = id.parse().expect("a UUID");
    let asked = app.wait_permission_request(uuid, 0).await;
    let (status, answer) = call(
        &app,
        &doc,
        Method::POST,
        (
            "/api/agents/{id}/permissions/{requestId}",
            &format!(
                "/api/agents/{id}/permissions/{}",
                agentstream_testkit::request_id(&asked)
            ),
        ),
        Some(json!({"decision": "allow"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["metadata"]["eventType"], "permission_response");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut events = BTreeSet::new();
    loop {
        match ws.next_incoming(deadline).await.expect("the socket") {
            Some(Incoming::Text(text)) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON");
                assert_valid(&doc, &schema("ServerEvent"), &frame, "a server frame");
                let name = frame["event"].as_str().expect("a name").to_owned();
                events.insert(name.clone());
                if name == "agent:complete" {
                    break;
                }
            }
            other => panic!("no agent:complete: {other:?}"),
        }
    }
    for name in [
        "subscribed",
        "agent:message",
        "agent:status",
        "agent:complete",
    ] {
        assert!(events.contains(name), "{name} in {events:?}");
    }
    // A frame the server refuses: its `error` event too.
    ws.send_text("{\"event\": \"dance\", \"data\": {}}").await;
    match ws
        .next_incoming(tokio::time::Instant::now() + TIMEOUT)
        .await
    {
        Ok(Some(Incoming::Text(text))) => {
            let frame: Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(frame["event"], "error");
            assert_valid(&doc, &schema("ServerEvent"), &frame, "an error frame");
        }
        other => panic!("no error frame: {other:?}"),
    }

    let agent_path = format!("/api/agents/{id}");
    let messages_path = format!("/api/agents/{id}/messages");
    let one = |t: &'static str, u: &str| (t, u.to_owned());
    for (template, url) in [
        one("/api/agents", "/api/agents"),
        one("/api/agent-types", "/api/agent-types"),
        one("/api/health", "/api/health"),
        one("/api/agents/{id}", &agent_path),
        one("/api/agents/{id}/messages", &messages_path),
        one(
            "/api/agents/{id}/messages",
            &format!("{messages_path}?since=5&limit=3"),
        ),
    ] {
        let (status, _) = get(&app, &doc, template, &url).await;
        assert_eq!(status, 200, "{url}");
    }
    // A conversation: a follow-up (202; its turn asks again and waits), an interrupt of that turn (202;
    // 409 had it ended), a permission never asked (404).
    let (status, message) = call(
        &app,
        &doc,
        Method::POST,
        ("/api/agents/{id}/messages", &messages_path),
        Some(json!({"content": "again"})),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(message["metadata"]["eventType"], "user_input");
    let (status, _) = call(
        &app,
        &doc,
        Method::POST,
        (
            "/api/agents/{id}/interrupt",
            &format!("{agent_path}/interrupt"),
        ),
        None,
    )
    .await;
    assert!(status == 202 || status == 409, "{status}");
    let (status, _) = call(
        &app,
        &doc,
        Method::POST,
        (
            "/api/agents/{id}/permissions/{requestId}",
            &format!("{agent_path}/permissions/nope"),
        ),
        Some(json!({"decision": "allow"})),
    )
    .await;
    assert_eq!(status, 404);
    // Errors: the error form, a code the document lists.
    for (method, template, url, body, expected) in [
        (
            Method::GET,
            "/api/agents/{id}",
            "/api/agents/x".to_owned(),
            None,
            400,
        ),
        (
            Method::GET,
            "/api/agents/{id}",
            format!("/api/agents/{}", Uuid::nil()),
            None,
            404,
        ),
        (
            Method::GET,
            "/api/agents/{id}/messages",
            format!("{messages_path}?since=-1"),
            None,
            400,
        ),
        (
            Method::POST,
            "/api/agents",
            "/api/agents".to_owned(),
            Some(json!({"type": "nope", "prompt": ""})),
            400,
        ),
        (
            Method::POST,
            "/api/agents",
            "/api/agents".to_owned(),
            Some(json!({"type": "gemini-cli", "prompt": "x"})),
            501,
        ),
        (
            Method::DELETE,
            "/api/agents/{id}",
            format!("{agent_path}?purge=maybe"),
            None,
            400,
        ),
    ] {
        let (status, _) = call(&app, &doc, method.clone(), (template, &url), body).await;
        assert_eq!(status, expected, "{method} {url}");
    }
    // The export: each format's content type, as the document lists them.
    for (format, kind) in [
        ("markdown", "text/markdown"),
        ("jsonl", "application/x-ndjson"),
    ] {
        let response = app
            .client
            .get(app.url(&format!("{agent_path}/export?format={format}")))
            .send()
            .await
            .expect("export");
        assert_eq!(response.status(), 200);
        assert!(content_type(&response).starts_with(kind));
        let content =
            &doc["paths"]["/api/agents/{id}/export"]["get"]["responses"]["200"]["content"];
        assert!(content[kind].is_object(), "{kind} not in {content}");
    }
    // Delete: 204; the agent answers 200 after it (kept), 404 after a purge.
    let (status, _) = call(
        &app,
        &doc,
        Method::DELETE,
        ("/api/agents/{id}", &agent_path),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &app,
        &doc,
        Method::DELETE,
        ("/api/agents/{id}", &format!("{agent_path}?purge=true")),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = get(&app, &doc, "/api/agents/{id}", &agent_path).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_server_with_a_token_answers_the_documents_401_and_still_serves_the_document() {
    let token = "openapi-test-token-0123456789";
    let app = TestServer::builder()
        .env("AGENTSTREAM__AUTH__TOKEN", token)
        .spawn(SERVER)
        .await;
    // Open: the document and the page.
    let doc = document(&app).await;
    let (status, _) = get(&app, &doc, "/api/agents", "/api/agents").await;
    assert_eq!(status, 401);
    let app = app.with_token(token);
    let (status, _) = get(&app, &doc, "/api/agents", "/api/agents").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_api_page_and_its_files_come_from_this_server_only() {
    let app = TestServer::spawn(SERVER).await;
    let response = app
        .client
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("GET /api/docs");
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("text/html"));
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("text")
        .to_owned();
    // Nothing but this server: no other host may be loaded from, whatever the page's scripts try.
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    for directive in [
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("http"), "{csp}");
    let html = response.text().await.expect("the page");
    // Every file the page names is a path of this server, and is there.
    let mut files = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for rest in html.split(attribute).skip(1) {
            let target = rest.split('"').next().expect("a value");
            assert!(
                (target.starts_with('/') && !target.starts_with("//"))
                    || target.starts_with("data:"),
                "{target} is not on this server"
            );
            if target.starts_with("/api/docs/") {
                files.push(target.to_owned());
            }
        }
    }
    assert_eq!(files.len(), 4, "{files:?}");
    for file in files {
        let response = app.client.get(app.url(&file)).send().await.expect("a file");
        assert_eq!(response.status(), 200, "{file}");
        let kind = content_type(&response);
        let expected = if file.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(kind.starts_with(expected), "{file}: {kind}");
        let body = response.text().await.expect("text");
        assert!(body.len() > 100, "{file}");
        if file.ends_with("docs.js") {
            // The page's own script: this server's document, no online validator, the app's token.
            assert!(body.contains("url: \"/api/openapi.json\""));
            assert!(body.contains("validatorUrl: null"));
            assert!(body.contains("agentstream.token"));
            assert!(!body.contains("http"), "docs.js names a URL");
        }
    }
    let response = app
        .client
        .get(app.url("/api/docs/nope.js"))
        .send()
        .await
        .expect("a file");
    agentstream_testkit::assert_error(response, 404, "not_found").await;
    // The document is fetched by the page from the same origin.
    tokio::time::timeout(Duration::from_secs(5), document(&app))
        .await
        .expect("in time");
}

#[tokio::test]
async fn the_openapi_command_prints_the_document_the_server_serves() {
    let app = TestServer::spawn(SERVER).await;
    let served = document(&app).await;
    let out = tokio::process::Command::new(SERVER)
        .arg("openapi")
        .output()
        .await
        .expect("agentstream openapi");
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(printed, served);
}
