//! What every browser test needs: the prerequisites check (SKIPPED or required), the real server serving
//! the built app, an optional [`ChaosProxy`] in front of it, a fresh headless Chromium driven through
//! chromedriver, a screenshot at the end, and no browser process left behind — pass or fail.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use agentstream_testkit::{process, say, skip_or_fail, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::chaos::ChaosProxy;
use crate::SERVER;

/// Debian's Chromium (a wrapper script that runs /usr/lib/chromium/chromium).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package chromium-driver), the same version as Chromium.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Any single wait on the page, unless a test says otherwise.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Browser tests run one at a time: each starts a server and a Chromium, and on a 2-core machine
/// parallel ones would only make the timings (and the timeouts) meaningless.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .canonicalize()
        .expect("workspace folder")
}

/// The built web app the tests run against: `frontend-yew/dist`, or `AGENTSTREAM_BROWSER_DIST` (another
/// build of it, e.g. while developing the tests).
pub fn dist() -> PathBuf {
    std::env::var_os("AGENTSTREAM_BROWSER_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("frontend-yew").join("dist"))
}

/// Whether Chromium, chromedriver and the built app are there. When one is missing: a loud SKIPPED line
/// (the test then passes), or a failure when `AGENTSTREAM_REQUIRE_BROWSER=1` (CI).
fn prerequisites(test: &str) -> bool {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("{CHROMIUM} (apt-get install chromium)"));
    }
    if !Path::new(CHROMEDRIVER).is_file() {
        missing.push(format!("{CHROMEDRIVER} (apt-get install chromium-driver)"));
    }
    let index = dist().join("index.html");
    if !index.is_file() {
        missing.push(format!("{} (./scripts/build-web)", index.display()));
    }
    if missing.is_empty() {
        return true;
    }
    skip_or_fail(
        &format!("browser test {test}"),
        &format!("missing {}", missing.join(", ")),
        "AGENTSTREAM_REQUIRE_BROWSER",
    );
    false
}

/// What a browser test body works with.
pub struct Session {
    /// The real server, serving `frontend-yew/dist`.
    pub app: TestServer,
    /// The proxy the browser goes through, when the test asked for one.
    pub proxy: Option<ChaosProxy>,
    /// The browser.
    pub browser: Browser,
    /// `http://127.0.0.1:<port>` the browser loads the app from (the proxy's or the server's).
    pub base: String,
}

impl Session {
    /// The absolute URL of an app path, as the browser sees it.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Loads an app path and waits until the app is up (its connection indicator is there).
    pub async fn open(&self, path: &str) {
        self.browser.open(&self.url(path)).await;
    }

    /// A second browser on the same server (another client): its own Chromium and profile. The test
    /// must [`Browser::shutdown`] it (dropping it kills it too).
    pub async fn second_browser(&self) -> Browser {
        Browser::start().await
    }

    /// Fills the launch form for a synthetic agent and submits it; returns the new agent's id once the
    /// app shows its view.
    pub async fn launch_synthetic(&self, prompt: &str, tokens: u64, interval_ms: u64) -> Uuid {
        self.launch_synthetic_with(prompt, tokens, interval_ms, false)
            .await
    }

    /// [`Session::launch_synthetic`], with the form's "ask permission" box ticked when `ask_permission`
    /// (each turn first asks to run a tool).
    pub async fn launch_synthetic_with(
        &self,
        prompt: &str,
        tokens: u64,
        interval_ms: u64,
        ask_permission: bool,
    ) -> Uuid {
        let b = &self.browser;
        b.wait_for(Locator::Css("[data-testid=launch-form]")).await;
        b.wait_for(Locator::Css("select[data-testid=launch-type]"))
            .await
            .select_by_value("synthetic")
            .await
            .expect("select synthetic");
        b.fill("textarea[data-testid=launch-prompt]", prompt).await;
        b.fill("input[data-testid=launch-tokens]", &tokens.to_string())
            .await;
        b.fill(
            "input[data-testid=launch-interval-ms]",
            &interval_ms.to_string(),
        )
        .await;
        if ask_permission {
            let checked = b
                .js("return document.querySelector('input[data-testid=launch-ask-permission]').checked;")
                .await;
            if checked != Value::Bool(true) {
                b.click("input[data-testid=launch-ask-permission]").await;
            }
        }
        b.click("button[data-testid=launch-submit]").await;
        self.wait_agent_view().await
    }

    /// Waits until the page shows an agent's view at `/agents/<id>`; returns the id.
    pub async fn wait_agent_view(&self) -> Uuid {
        let page = self
            .browser
            .wait_page("the agent view after the launch", PAGE_TIMEOUT, |p| {
                p.view_agent.is_some()
            })
            .await;
        let id = page.view_agent.expect("agent view id");
        let id: Uuid = id
            .parse()
            .unwrap_or_else(|_| panic!("data-agent-id of the agent view is not a UUID: {id:?}"));
        let path = self.browser.path().await;
        assert_eq!(
            path,
            format!("/agents/{id}"),
            "the URL of the agent view (expected /agents/<uuid>)"
        );
        id
    }
}

/// Runs a browser test: checks the prerequisites (SKIPPED or failure), starts the server on the built
/// app (behind a [`ChaosProxy`] when `through_proxy`), a Chromium, then `body`; whatever `body` does,
/// takes a screenshot into `target/browser-screenshots/<test>.png`, shows the browser's console on
/// failure, and stops every browser process.
pub async fn browser_test(test: &str, through_proxy: bool, body: impl AsyncFnOnce(&Session)) {
    browser_test_with(test, through_proxy, &[], body).await
}

/// [`browser_test`] with more `AGENTSTREAM__…` settings for the server.
pub async fn browser_test_with(
    test: &str,
    through_proxy: bool,
    env: &[(&str, &str)],
    body: impl AsyncFnOnce(&Session),
) {
    if !prerequisites(test) {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let dist = dist();
    let mut app = TestServer::builder()
        .env(
            "AGENTSTREAM__SERVER__STATIC_DIR",
            dist.to_str().expect("utf-8 path"),
        )
        .envs(env)
        .spawn(SERVER)
        .await;
    // The test's own REST calls carry the server's token, when it has one.
    if let Some((_, token)) = env.iter().find(|(k, _)| *k == "AGENTSTREAM__AUTH__TOKEN") {
        app = app.with_token(token);
    }
    let proxy = if through_proxy {
        Some(ChaosProxy::start(app.port).await)
    } else {
        None
    };
    let base = match &proxy {
        Some(p) => format!("http://127.0.0.1:{}", p.port()),
        None => format!("http://127.0.0.1:{}", app.port),
    };
    let browser = Browser::start().await;
    let session = Session {
        app,
        proxy,
        browser,
        base,
    };
    let outcome = AssertUnwindSafe(async {
        body(&session).await;
        // The server's Content-Security-Policy must let the app work as it is: no violation reported.
        let violations = session.browser.csp_violations();
        assert!(
            violations.is_empty(),
            "the page broke the server's Content-Security-Policy:\n{}",
            violations.join("\n")
        );
    })
    .catch_unwind()
    .await;
    session.browser.screenshot(test).await;
    let Session { app, browser, .. } = session;
    if outcome.is_err() {
        say(&format!(
            "--- browser log of {test} (console, CSP, errors) ---\n{}\n--- server log of {test} (end) ---\n{}",
            browser.console_log(),
            tail(&app.log(), 40)
        ));
    }
    browser.shutdown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What the page shows, read in one WebDriver round trip (the DOM contract's attributes).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// `location.pathname`.
    pub path: String,
    /// `[data-testid=connection]`'s `data-state`.
    pub connection: Option<String>,
    /// `[data-testid=agent-view]`'s `data-agent-id`.
    pub view_agent: Option<String>,
    /// `[data-testid=agent-status-badge]`'s text, trimmed.
    pub badge: Option<String>,
    /// `[data-testid=transcript]`'s `data-message-count`.
    pub message_count: Option<String>,
    /// `[data-testid=transcript]`'s `data-last-sequence`.
    pub last_sequence: Option<String>,
    /// The total length (UTF-16 units) of every `[data-testid=assistant-text]`.
    pub text_length: usize,
    /// `[data-testid=result]`'s text.
    pub result: Option<String>,
    /// `[data-testid=error-banner]`'s text.
    pub error_banner: Option<String>,
    /// The agent list's items.
    pub items: Vec<Item>,
    /// The text of every `[data-testid=user-turn-text]` (the user's follow-ups), in order, exactly.
    pub user_turns: Vec<String>,
    /// The permission cards, in order.
    pub cards: Vec<Card>,
    /// `[data-testid=composer]`'s `data-state` (`ready` or `disabled`).
    pub composer: Option<String>,
    /// `[data-testid=composer-error]`'s text.
    pub composer_error: Option<String>,
}

impl Page {
    /// `data-last-sequence` as a number (0 when absent or not a number).
    pub fn last(&self) -> i64 {
        self.last_sequence
            .as_deref()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `data-message-count` as a number (0 when absent or not a number).
    pub fn count(&self) -> i64 {
        self.message_count
            .as_deref()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The list item of an agent.
    pub fn item(&self, id: Uuid) -> Option<&Item> {
        let id = id.to_string();
        self.items.iter().find(|i| i.id.as_deref() == Some(&id))
    }
}

/// One `[data-testid=agent-item]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Item {
    /// Its `data-agent-id`.
    pub id: Option<String>,
    /// Its `[data-testid=agent-status]`'s text, trimmed.
    pub status: Option<String>,
}

/// One `[data-testid=permission-card]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    /// Its `data-request-id`.
    pub request_id: Option<String>,
    /// Its `data-state`: `waiting` (answerable), `allowed`, `denied`, `ended`.
    pub state: Option<String>,
    /// `[data-testid=permission-tool]`'s text.
    pub tool: Option<String>,
    /// `[data-testid=permission-input]`'s text.
    pub input: Option<String>,
    /// `[data-testid=permission-decision]`'s text, trimmed.
    pub decision: Option<String>,
    /// Whether its Allow button is there.
    pub can_allow: bool,
    /// `[data-testid=permission-error]`'s text.
    pub error: Option<String>,
}

/// The script behind [`Browser::page`].
const PAGE_SCRIPT: &str = r#"
const q = (s) => document.querySelector(s);
const attr = (s, a) => { const e = q(s); return e ? e.getAttribute(a) : null; };
const text = (s) => { const e = q(s); return e ? e.textContent.trim() : null; };
let textLength = 0;
for (const e of document.querySelectorAll('[data-testid=assistant-text]')) textLength += e.textContent.length;
return {
  path: location.pathname,
  connection: attr('[data-testid=connection]', 'data-state'),
  viewAgent: attr('[data-testid=agent-view]', 'data-agent-id'),
  badge: text('[data-testid=agent-status-badge]'),
  messageCount: attr('[data-testid=transcript]', 'data-message-count'),
  lastSequence: attr('[data-testid=transcript]', 'data-last-sequence'),
  textLength,
  result: (() => { const e = q('[data-testid=result]'); return e ? e.textContent : null; })(),
  errorBanner: text('[data-testid=error-banner]'),
  items: [...document.querySelectorAll('[data-testid=agent-item]')].map((e) => {
    const s = e.querySelector('[data-testid=agent-status]');
    return { id: e.getAttribute('data-agent-id'), status: s ? s.textContent.trim() : null };
  }),
  userTurns: [...document.querySelectorAll('[data-testid=user-turn-text]')].map((e) => e.textContent),
  cards: [...document.querySelectorAll('[data-testid=permission-card]')].map((e) => {
    const t = (s) => { const x = e.querySelector(`[data-testid=${s}]`); return x ? x.textContent.trim() : null; };
    return { requestId: e.getAttribute('data-request-id'), state: e.getAttribute('data-state'),
             tool: t('permission-tool'), input: t('permission-input'), decision: t('permission-decision'),
             canAllow: e.querySelector('[data-testid=permission-allow]') !== null, error: t('permission-error') };
  }),
  composer: attr('[data-testid=composer]', 'data-state'),
  composerError: text('[data-testid=composer-error]'),
};
"#;

/// A headless Chromium, driven by its own chromedriver on a free port, with a fresh profile.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// chromedriver, leader of its own process group (Chromium runs under it).
    driver: Child,
    /// chromedriver's pid = its process group.
    driver_pid: i32,
    /// The profile folder (also how leftover Chromium processes are recognized), and the logs.
    profile: TempDir,
    /// Set once everything is stopped.
    stopped: bool,
}

impl Browser {
    /// Starts chromedriver and a session with Chromium headless.
    pub async fn start() -> Browser {
        let profile = TempDir::new().expect("profile dir");
        let mut last_error = String::new();
        // The free port is found by binding and releasing it; another process may take it meanwhile.
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(profile.path().join("chromedriver.log"))
                .expect("chromedriver log");
            let mut command = Command::new(CHROMEDRIVER);
            command
                .arg(format!("--port={port}"))
                // Chromium's own stderr (console messages, CSP violations) into the log too.
                .arg("--enable-chrome-logs")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("log handle")))
                .stderr(Stdio::from(log))
                .process_group(0)
                .kill_on_drop(true);
            let driver = command.spawn().expect("spawn chromedriver");
            let driver_pid = driver.id().map_or(0, |p| p as i32);
            match connect(port, profile.path()).await {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        driver_pid,
                        profile,
                        stopped: false,
                    }
                }
                Err(e) => {
                    last_error = e;
                    kill_group(driver_pid);
                    let _ = kill_profile_processes(profile.path());
                }
            }
        }
        panic!("could not start chromedriver and Chromium: {last_error}");
    }

    /// Loads `url` and waits until the app is up (its connection indicator is there).
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("load {url}: {e}"));
        self.wait_for(Locator::Css("[data-testid=connection]"))
            .await;
    }

    /// Types `text` into the composer (`\n`: Shift+Enter, a new line) and sends it with Enter.
    pub async fn send_follow_up(&self, text: &str) {
        let field = self
            .wait_for(Locator::Css("textarea[data-testid=composer-input]"))
            .await;
        self.wait_until("the composer to be ready", PAGE_TIMEOUT, || async {
            (self.page().await.composer.as_deref() == Some("ready")).then_some(())
        })
        .await;
        // WebDriver keys: Shift held through the next key, then released by the null key.
        const SHIFT: char = '\u{E008}';
        const ENTER: char = '\u{E007}';
        const RELEASE: char = '\u{E000}';
        let mut keys = String::new();
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                keys.extend([SHIFT, ENTER, RELEASE]);
            }
            keys.push_str(line);
        }
        keys.push(ENTER);
        field
            .send_keys(&keys)
            .await
            .unwrap_or_else(|e| panic!("type into the composer: {e}"));
    }

    /// Reads the page's state (see [`Page`]).
    pub async fn page(&self) -> Page {
        let value = self
            .client
            .execute(PAGE_SCRIPT, vec![])
            .await
            .expect("read the page");
        serde_json::from_value(value).expect("page state")
    }

    /// Polls the page until `ready` holds; fails after `timeout` showing the last state seen.
    pub async fn wait_page(
        &self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&Page) -> bool,
    ) -> Page {
        let deadline = Instant::now() + timeout;
        loop {
            let page = self.page().await;
            if ready(&page) {
                return page;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; the page shows {}",
                    describe(&page)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls `check` until it gives a value; fails after `timeout`.
    pub async fn wait_until<T, F>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> F,
    ) -> T
    where
        F: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; the page shows {}",
                    describe(&self.page().await)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for an element of the DOM contract.
    pub async fn wait_for(&self, locator: Locator<'_>) -> fantoccini::elements::Element {
        let selector = format!("{locator:?}");
        match self
            .client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .every(Duration::from_millis(25))
            .for_element(locator)
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no {selector} on the page after {PAGE_TIMEOUT:?} ({e}); the page shows {}",
                describe(&self.page().await)
            ),
        }
    }

    /// Replaces the value of a form field, typing like a user (so that the app's input handlers run).
    pub async fn fill(&self, selector: &str, value: &str) {
        let field = self.wait_for(Locator::Css(selector)).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {selector}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    /// Clicks an element of the DOM contract.
    pub async fn click(&self, selector: &str) {
        self.wait_for(Locator::Css(selector))
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Runs a script in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed ({e}): {script}"))
    }

    /// The text of every `[data-testid=assistant-text]`, joined (exactly, no trimming).
    pub async fn assistant_text(&self) -> String {
        let value = self
            .js(
                "return [...document.querySelectorAll('[data-testid=assistant-text]')]\
                 .map((e) => e.textContent).join('');",
            )
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// `location.pathname`.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_owned()
    }

    /// Records every value `[data-testid=connection]`'s `data-state` takes from now on into
    /// `window.__connectionStates` (a poll could miss a short `reconnecting`).
    pub async fn record_connection_states(&self) {
        self.js(
            r#"
            window.__connectionStates = [];
            const read = () => {
              const e = document.querySelector('[data-testid=connection]');
              const s = e ? e.getAttribute('data-state') : null;
              const all = window.__connectionStates;
              if (all[all.length - 1] !== s) all.push(s);
            };
            read();
            new MutationObserver(read).observe(document.documentElement,
              { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
            "#,
        )
        .await;
    }

    /// The `data-state` values recorded since [`Browser::record_connection_states`].
    pub async fn connection_states(&self) -> Vec<Option<String>> {
        serde_json::from_value(self.js("return window.__connectionStates || [];").await)
            .expect("connection states")
    }

    /// Saves a screenshot into `target/browser-screenshots/<test>.png` (best effort).
    pub async fn screenshot(&self, test: &str) {
        let dir = workspace().join("target").join("browser-screenshots");
        match self.client.screenshot().await {
            Ok(png) => {
                let path = dir.join(format!("{test}.png"));
                if std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(&path, png))
                    .is_err()
                {
                    say(&format!("could not save {}", path.display()));
                }
            }
            Err(e) => say(&format!("no screenshot of {test}: {e}")),
        }
    }

    /// The browser's console messages and errors (from chromedriver's log), for a failure report.
    pub fn console_log(&self) -> String {
        let log = std::fs::read_to_string(self.profile.path().join("chromedriver.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| {
                (l.contains("CONSOLE")
                    || l.contains("Content Security Policy")
                    || l.contains(":ERROR:")
                    || l.contains("Uncaught"))
                    // A container has no D-Bus; Chromium says so at every start.
                    && !l.contains("dbus")
            })
            .collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The Content-Security-Policy violations Chromium reported so far.
    pub fn csp_violations(&self) -> Vec<String> {
        std::fs::read_to_string(self.profile.path().join("chromedriver.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Content Security Policy"))
            .map(str::to_owned)
            .collect()
    }

    /// Ends the session (chromedriver closes Chromium), then kills chromedriver's process group and
    /// any process still using this profile.
    pub async fn shutdown(mut self) {
        let client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        kill_group(self.driver_pid);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.driver.wait()).await;
        // Chromium's helpers may take a moment to die after their parent; make sure none is left.
        let deadline = Instant::now() + Duration::from_secs(5);
        while kill_profile_processes(self.profile.path()) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = kill_profile_processes(self.profile.path());
        assert_eq!(left, 0, "{left} Chromium processes outlived the test");
        self.stopped = true;
    }
}

impl Drop for Browser {
    /// The safety net when [`Browser::shutdown`] was not reached: nothing of this browser survives.
    fn drop(&mut self) {
        if !self.stopped {
            kill_group(self.driver_pid);
            let _ = kill_profile_processes(self.profile.path());
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Waits for chromedriver on `port`, then opens a session with Chromium headless on a fresh profile.
async fn connect(port: u16, profile: &Path) -> Result<Client, String> {
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = http
            .get(format!("{url}/status"))
            .send()
            .await
            .ok()
            .map(|r| r.status().is_success());
        if ready == Some(true) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("chromedriver did not answer on {url}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let user_data = profile.join("chromium");
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", user_data.display()),
                "--window-size=1280,900",
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object")
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&url)
        .await
        .map_err(|e| format!("new WebDriver session: {e}"))
}

/// SIGKILLs a process group (chromedriver and what runs in its group).
fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: killpg only sends a signal; the group is the one chromedriver leads.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// SIGKILLs every process whose command line names this profile folder (Chromium and its helpers, in
/// case one left chromedriver's process group); returns how many there were.
fn kill_profile_processes(profile: &Path) -> usize {
    let marker = profile.display().to_string();
    let ours: Vec<i32> = process::pids()
        .into_iter()
        .filter(|&pid| process::cmdline(pid).contains(&marker))
        .collect();
    for &pid in &ours {
        // SAFETY: kill only sends a signal, to a process started by this test.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    ours.len()
}

/// A short description of the page for failure messages.
pub fn describe(page: &Page) -> String {
    format!(
        "path {:?}, connection {:?}, agent view {:?}, badge {:?}, data-message-count {:?}, \
         data-last-sequence {:?}, assistant text length {}, result {}, error banner {:?}, list {:?}, \
         user turns {:?}, permission cards {:?}, composer {:?}, composer error {:?}",
        page.path,
        page.connection,
        page.view_agent,
        page.badge,
        page.message_count,
        page.last_sequence,
        page.text_length,
        match &page.result {
            Some(r) => format!("present ({} chars)", r.len()),
            None => "absent".to_owned(),
        },
        page.error_banner,
        page.items
            .iter()
            .map(|i| format!("{}={}", i.id.as_deref().unwrap_or("?"), i.status.as_deref().unwrap_or("?")))
            .collect::<Vec<_>>(),
        page.user_turns,
        page.cards,
        page.composer,
        page.composer_error,
    )
}
