//! The web app served at `/` (setting `server.static_dir`): files with their content types and cache
//! policy, the SPA fallback to `index.html`, the security headers, the API's JSON 404 kept under `/api`
//! and `/ws`, and the "not built" page when there is no app — against a fake build output in a temp dir.

use std::path::Path;

use agentstream_testkit::{assert_error, TestServer};
use reqwest::header::HeaderMap;
use tempfile::TempDir;

use crate::SERVER;

/// The inline loader script of the fake index.html, as the build writes one.
const LOADER: &str = "\nimport init from '/agentstream-web-1a2b3c4d5e6f7a8b.js';\nawait init();\n";
/// A content-hashed wasm file's name.
const WASM: &str = "agentstream-web-1a2b3c4d5e6f7a8b_bg.wasm";
/// A content-hashed script's name.
const JS: &str = "agentstream-web-1a2b3c4d5e6f7a8b.js";
/// A content-hashed stylesheet's name.
const CSS: &str = "style-9f8e7d6c5b4a3921.css";

/// A temp folder laid out like the build's dist/.
fn fake_dist() -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    write_index(dir.path());
    std::fs::write(dir.path().join(WASM), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join(JS), "export default function init() {}\n").unwrap();
    std::fs::write(dir.path().join(CSS), "body { margin: 0 }\n").unwrap();
    std::fs::write(dir.path().join("robots.txt"), "User-agent: *\n").unwrap();
    dir
}

/// Writes the fake index.html (a stylesheet and the inline loader) into `dir`.
fn write_index(dir: &Path) {
    std::fs::write(
        dir.join("index.html"),
        format!(
            "<!doctype html><html><head><title>fake app</title>\
             <link rel=\"stylesheet\" href=\"/{CSS}\"></head><body>\
             <script type=\"module\">{LOADER}</script></body></html>"
        ),
    )
    .unwrap();
}

/// A server whose `server.static_dir` is `dir`.
async fn spawn_serving(dir: &Path) -> TestServer {
    let dir = dir.to_str().expect("utf-8 temp path");
    TestServer::builder()
        .env("AGENTSTREAM__SERVER__STATIC_DIR", dir)
        .spawn(SERVER)
        .await
}

/// A header that must be there, as text.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        .to_str()
        .expect("ascii header")
}

/// The headers every web-app response carries, with a CSP of `'self'` plus what wasm needs.
fn assert_security_headers(headers: &HeaderMap) {
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "referrer-policy"), "no-referrer");
    let csp = header(headers, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "{directive:?} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
}

/// GET a path of the server.
async fn get(app: &TestServer, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

#[tokio::test]
async fn index_is_served_at_the_root_never_cached_with_its_loader_allowed_by_hash() {
    let dist = fake_dist();
    let app = spawn_serving(dist.path()).await;
    let r = get(&app, "/").await;
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    assert_security_headers(&headers);
    // The inline loader is admitted by its hash, nothing else inline is.
    use base64::Engine;
    use sha2::Digest;
    let hash =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(LOADER.as_bytes()));
    let csp = header(&headers, "content-security-policy");
    assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
    let body = r.text().await.unwrap();
    assert_eq!(
        body,
        std::fs::read_to_string(dist.path().join("index.html")).unwrap()
    );

    // Revalidation: the same ETag gives 304 without a body.
    let etag = header(&headers, "etag").to_owned();
    let r = app
        .client
        .get(app.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(header(r.headers(), "cache-control"), "no-cache");
    // `/index.html` itself is the same page with the same policy.
    let r = get(&app, "/index.html").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "cache-control"), "no-cache");
    assert_eq!(header(r.headers(), "etag"), etag);
}

#[tokio::test]
async fn app_routes_and_unknown_paths_fall_back_to_index() {
    let dist = fake_dist();
    let app = spawn_serving(dist.path()).await;
    let index = std::fs::read_to_string(dist.path().join("index.html")).unwrap();
    for path in [
        "/agents/0195c2f0-7e1a-7c3e-9d4b-2a1f0e9c8b7a",
        "/agents",
        "/some/deep/route?x=1",
        "/apis",
        "/wsx",
    ] {
        let r = get(&app, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(r.headers(), "cache-control"), "no-cache", "{path}");
        assert_security_headers(r.headers());
        assert_eq!(r.text().await.unwrap(), index, "{path}");
    }
}

#[tokio::test]
async fn hashed_assets_are_immutable_with_their_content_types() {
    let dist = fake_dist();
    let app = spawn_serving(dist.path()).await;
    for (name, content_type) in [
        (WASM, "application/wasm"),
        (JS, "text/javascript"),
        (CSS, "text/css"),
    ] {
        let r = get(&app, &format!("/{name}")).await;
        assert_eq!(r.status(), 200, "{name}");
        let headers = r.headers().clone();
        assert!(
            header(&headers, "content-type").starts_with(content_type),
            "{name}: {:?}",
            headers.get("content-type")
        );
        assert_eq!(
            header(&headers, "cache-control"),
            "public, max-age=31536000, immutable",
            "{name}"
        );
        assert_security_headers(&headers);
        assert!(headers.get("etag").is_some(), "{name} has no ETag");
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            std::fs::read(dist.path().join(name)).unwrap(),
            "{name}"
        );
    }
    // A file without a hash in its name is revalidated.
    let r = get(&app, "/robots.txt").await;
    assert_eq!(r.status(), 200);
    assert!(header(r.headers(), "content-type").starts_with("text/plain"));
    assert_eq!(header(r.headers(), "cache-control"), "no-cache");
}

#[tokio::test]
async fn api_and_ws_paths_keep_their_json_404_and_other_methods_are_not_served() {
    let dist = fake_dist();
    let app = spawn_serving(dist.path()).await;
    for path in ["/api/nope", "/api/agents/x/y/z", "/api", "/ws/nope"] {
        assert_error(get(&app, path).await, 404, "not_found").await;
    }
    let r = app.client.post(app.url("/")).send().await.unwrap();
    assert_error(r, 404, "not_found").await;
    let r = app
        .client
        .delete(app.url("/agents/whatever"))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    // The API itself is untouched.
    app.assert_healthy().await;
}

#[tokio::test]
async fn paths_never_leave_the_folder() {
    let outer = TempDir::new().unwrap();
    let dist = outer.path().join("dist");
    std::fs::create_dir(&dist).unwrap();
    write_index(&dist);
    std::fs::write(outer.path().join("secret.txt"), "do not serve").unwrap();
    std::fs::write(dist.join(".hidden"), "do not serve").unwrap();
    let app = spawn_serving(&dist).await;
    for path in [
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/x/%2e%2e/%2e%2e/secret.txt",
        "/.hidden",
    ] {
        let r = get(&app, path).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(!body.contains("do not serve"), "{path} leaked: {status}");
    }
}

#[tokio::test]
async fn without_a_built_app_the_root_says_how_to_build_it_and_the_api_works() {
    let tmp = TempDir::new().unwrap();
    let missing = tmp.path().join("no-dist-here");
    let app = spawn_serving(&missing).await;
    for path in ["/", "/agents/0195c2f0-7e1a-7c3e-9d4b-2a1f0e9c8b7a"] {
        let r = get(&app, path).await;
        assert_eq!(r.status(), 503, "{path}");
        assert!(header(r.headers(), "content-type").starts_with("text/html"));
        assert_security_headers(r.headers());
        let body = r.text().await.unwrap();
        assert!(body.contains("not built"), "{body}");
        assert!(body.contains("./scripts/run"), "{body}");
        assert!(body.contains("no-dist-here"), "{body}");
    }
    app.assert_healthy().await;
    let agent = app.launch(3, 0).await;
    app.wait_finished(agent.id).await;
    assert_error(get(&app, "/api/nope").await, 404, "not_found").await;

    // Building the app while the server runs is enough: no restart.
    std::fs::create_dir(&missing).unwrap();
    write_index(&missing);
    let r = get(&app, "/").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("fake app"));
}
