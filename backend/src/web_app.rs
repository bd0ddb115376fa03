//! Serves the built web app (`scripts/build-web`'s `dist/`, setting `server.static_dir`) at `/`, behind the API and the
//! WebSocket: files as they are, any other GET path → `index.html` (the app routes `/agents/<id>` itself),
//! long-lived caching only for the build's content-hashed assets, and a strict Content-Security-Policy. The
//! folder is looked at on every request, so building the app while the server runs is enough; when it
//! has no `index.html`, a small page says how to build it.

use std::path::{Component, Path, PathBuf};

use actix_files::NamedFile;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use base64::Engine;
use sha2::{Digest, Sha256};

/// `Cache-Control` of a built asset whose name carries its content hash: it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of everything else (index.html above all): always revalidate, so that a new build is
/// picked up at once.
const REVALIDATE: &str = "no-cache";

/// The web app's folder, shared by the handler.
#[derive(Clone, Debug)]
pub struct WebApp {
    root: PathBuf,
}

impl WebApp {
    /// The app in `dir`; a relative `dir` is taken from the working directory now, so that the logs and
    /// the "not built" page name the real place.
    pub fn new(dir: &Path) -> WebApp {
        let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        WebApp { root }
    }

    /// The folder served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the folder holds a built app (an `index.html`).
    pub fn is_built(&self) -> bool {
        self.root.join("index.html").is_file()
    }
}

/// What a request path resolves to in the folder.
enum Target {
    /// A regular file, served as it is.
    File(PathBuf),
    /// No such file: the app's `index.html` (SPA fallback).
    Index,
}

/// The fallback of the whole server: every request no API route or `/ws` took. GET and HEAD of a path
/// outside `/api` and `/ws` get the web app; anything else gets the API's JSON `not_found`, as before the
/// app was served.
pub async fn serve(req: HttpRequest, app: web::Data<WebApp>) -> HttpResponse {
    let path = req.path();
    let reserved = ["/api", "/ws"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if reserved || !(req.method() == Method::GET || req.method() == Method::HEAD) {
        return crate::api::not_found(req.clone()).await.respond_to(&req);
    }
    let app = app.into_inner();
    let rel = request_path(path);
    let root = app.root.clone();
    let resolved = web::block(move || resolve(&root, rel.as_deref())).await;
    let mut response = match resolved {
        Ok(Target::File(file)) => serve_file(&req, file).await,
        Ok(Target::Index) | Err(_) => serve_index(&req, &app).await,
    };
    add_security_headers(&mut response, None);
    response
}

/// The request path as a relative path inside the folder, or `None` when it cannot be one (a `..`, an
/// encoded `/`, a NUL, invalid UTF-8): such a path never touches the disk and gets `index.html`.
fn request_path(path: &str) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .ok()?;
        if decoded == "."
            || decoded == ".."
            || decoded.contains(['/', '\\', '\0'])
            || decoded.starts_with('.')
        {
            return None;
        }
        rel.push(decoded.as_ref());
    }
    // Belt and braces: only plain names may reach `join`.
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(rel)
}

/// A regular file at `rel` under `root`, else the index (also for `/`, `/index.html` — which needs its
/// own CSP — and folders).
fn resolve(root: &Path, rel: Option<&Path>) -> Target {
    match rel {
        Some(rel) if !rel.as_os_str().is_empty() && rel != Path::new("index.html") => {
            let file = root.join(rel);
            if file.is_file() {
                Target::File(file)
            } else {
                Target::Index
            }
        }
        _ => Target::Index,
    }
}

/// A file of the folder, with its content type, ETag and Last-Modified (conditional and range requests
/// are answered by actix-files), and the cache policy its name calls for.
async fn serve_file(req: &HttpRequest, file: PathBuf) -> HttpResponse {
    let immutable = is_hashed_asset(&file);
    let opened = web::block(move || NamedFile::open(file)).await;
    let named = match opened {
        Ok(Ok(named)) => named,
        // Vanished or unreadable between the check and the open: as if it were not there.
        _ => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    let mut response = named
        .disable_content_disposition()
        .use_etag(true)
        .use_last_modified(true)
        .into_response(req);
    let cache = if immutable { IMMUTABLE } else { REVALIDATE };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// `index.html`, never cached without revalidation, with a CSP that admits exactly its inline scripts
/// (the app's loader is one) by their hashes; or the "not built" page when there is none.
async fn serve_index(req: &HttpRequest, app: &WebApp) -> HttpResponse {
    let index = app.root.join("index.html");
    let body = match web::block(move || std::fs::read(index)).await {
        Ok(Ok(body)) => body,
        _ => return not_built(app.root()),
    };
    let etag = format!(
        "\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&Sha256::digest(&body)[..18])
    );
    let csp = content_security_policy(&inline_script_hashes(&body));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut builder = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    builder
        .insert_header((header::CACHE_CONTROL, REVALIDATE))
        .insert_header((header::ETAG, etag));
    let mut response = if fresh {
        builder.finish()
    } else {
        builder.content_type("text/html; charset=utf-8").body(body)
    };
    add_security_headers(&mut response, Some(&csp));
    response
}

/// 503 and a small page: the folder has no `index.html` yet.
fn not_built(root: &Path) -> HttpResponse {
    let dir = html_escape(&root.display().to_string());
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>agentstream: web app not \
         built</title></head>\n<body><h1>The agentstream web app is not built</h1>\n<p>There is no \
         <code>index.html</code> in <code>{dir}</code> (setting <code>server.static_dir</code>).</p>\n\
         <p>Build it with <code>./scripts/run</code> (it builds the app when needed, then starts the \
         server) or <code>./scripts/build-web</code>, then reload this page.</p>\n<p>The API under \
         <code>/api</code> and the WebSocket at <code>/ws</code> work regardless.</p></body></html>\n"
    );
    let body = if root.join(BUILDING_MARKER).is_file() {
        building(&dir)
    } else {
        body
    };
    let mut response = HttpResponse::ServiceUnavailable()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(body);
    add_security_headers(&mut response, None);
    response
}

/// The file in the folder that says a build is in progress (the builder, `cargo run -p xtask --
/// build-web`, keeps it there while it works; names starting with `.` are never served).
const BUILDING_MARKER: &str = ".building";

/// The "not built" page while a build is in progress: it says so and reloads itself every 3 seconds
/// (a meta refresh, no script), so that the app appears as soon as its `index.html` is there.
fn building(dir: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" \
         content=\"3\"><title>agentstream: building the web app</title></head>\n<body><h1>Building the \
         agentstream web app\u{2026}</h1>\n<p>It is being built into <code>{dir}</code>; this page \
         reloads itself every 3 seconds until the app is there.</p>\n<p>The API under <code>/api</code> \
         and the WebSocket at <code>/ws</code> already work.</p></body></html>\n"
    )
}

/// A short plain-text answer.
fn plain(status: StatusCode, text: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

/// Headers every web-app response carries: no MIME sniffing, no referrer (a `?token=` never leaks), no
/// framing (clickjacking; `frame-ancestors 'none'` for browsers that read only X-Frame-Options), no
/// window or resource shared with another origin, and a CSP (the given one, or the strict default when
/// a response has no inline script of its own). Headers already set are kept.
fn add_security_headers(response: &mut HttpResponse, csp: Option<&str>) {
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: HeaderValue| {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    };
    set(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    set(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    set(
        header::CROSS_ORIGIN_OPENER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    set(
        header::CROSS_ORIGIN_RESOURCE_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let csp = csp.map_or_else(|| content_security_policy(&[]), str::to_owned);
    if let Ok(value) = HeaderValue::from_str(&csp) {
        set(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The policy: only this origin, plus what a wasm-bindgen app needs (`'wasm-unsafe-eval'` to compile its
/// module) and the hashes of the page's inline scripts. `connect-src 'self'` covers `fetch` and the
/// same-origin `ws:`/`wss:` WebSocket (CSP Level 3).
fn content_security_policy(script_hashes: &[String]) -> String {
    let mut script_src = String::from("'self' 'wasm-unsafe-eval'");
    for hash in script_hashes {
        script_src.push_str(&format!(" 'sha256-{hash}'"));
    }
    format!(
        "default-src 'self'; script-src {script_src}; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The base64 SHA-256 of the text of each inline `<script>` (one without `src`) of an HTML page, as a
/// CSP hash source wants it.
fn inline_script_hashes(html: &[u8]) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut hashes = Vec::new();
    let mut at = 0;
    while let Some(open) = find(&lower[at..], b"<script").map(|i| at + i) {
        let Some(tag_end) = find(&lower[open..], b">").map(|i| open + i) else {
            break;
        };
        let Some(close) = find(&lower[tag_end..], b"</script").map(|i| tag_end + i) else {
            break;
        };
        let tag = &lower[open..tag_end];
        let has_src = tag
            .windows(4)
            .enumerate()
            .any(|(i, w)| w == b"src=" && i > 0 && tag[i - 1].is_ascii_whitespace());
        if !has_src {
            let text = &html[tag_end + 1..close];
            hashes.push(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text)));
        }
        at = close;
    }
    hashes
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether a file name carries the build's content hash (`name-<hex>.js`, `name-<hex>_bg.wasm`,
/// `style-<hex>.css`), so that its content can never change under that name.
fn is_hashed_asset(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    if !matches!(ext, "js" | "mjs" | "wasm" | "css") {
        return false;
    }
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    match stem.rsplit_once('-') {
        Some((base, hash)) => {
            !base.is_empty()
                && (8..=16).contains(&hash.len())
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Escapes text for HTML.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_assets_are_recognized() {
        for name in [
            "agentstream-web-1a2b3c4d5e6f7a8b.js",
            "agentstream-web-1a2b3c4d5e6f7a8b_bg.wasm",
            "style-9f8e7d6c5b4a.css",
        ] {
            assert!(is_hashed_asset(Path::new(name)), "{name}");
        }
        for name in [
            "index.html",
            "style.css",
            "agentstream-web.js",
            "app-notahash.js",
            "-1a2b3c4d.js",
            "logo-1a2b3c4d.png",
        ] {
            assert!(!is_hashed_asset(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn request_paths_stay_inside_the_folder() {
        assert_eq!(request_path("/"), Some(PathBuf::new()));
        assert_eq!(request_path("/a/b.js"), Some(PathBuf::from("a/b.js")));
        assert_eq!(request_path("/a%20b.js"), Some(PathBuf::from("a b.js")));
        for bad in [
            "/../etc/passwd",
            "/a/%2e%2e/b",
            "/a%2fb",
            "/.git/config",
            "/%00",
            "/%ff",
        ] {
            assert_eq!(request_path(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_not_built_page_says_when_a_build_is_in_progress() {
        async fn page(dir: &Path) -> String {
            let body = actix_web::body::to_bytes(not_built(dir).into_body()).await;
            String::from_utf8(body.expect("body").to_vec()).expect("utf-8")
        }
        let dir = tempfile::TempDir::new().expect("temp dir");
        let idle = page(dir.path()).await;
        assert!(
            idle.contains("not built") && !idle.contains("refresh"),
            "{idle}"
        );
        std::fs::write(dir.path().join(BUILDING_MARKER), "1\n").expect("marker");
        let building = page(dir.path()).await;
        assert!(building.contains("Building") && building.contains("http-equiv=\"refresh\""));
    }

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_are_not() {
        let html = b"<html><head><script src=\"/a.js\"></script>\
            <SCRIPT type=\"module\">import init from '/x.js';</SCRIPT></head></html>";
        let expected = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(b"import init from '/x.js';"));
        assert_eq!(inline_script_hashes(html), vec![expected]);
        assert!(content_security_policy(&inline_script_hashes(html)).contains("'sha256-"));
    }
}
