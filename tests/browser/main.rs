//! Browser tests: the built web app (`frontend-yew/dist`, served by the real server) in headless Chromium
//! (Debian's `chromium` + `chromium-driver`, driven over WebDriver by fantoccini), against synthetic
//! agents — launching from the form, live streaming, reconnecting after every connection is cut,
//! terminating, another client's launch and purge, the time to render 20,000 tokens, and conversations
//! (follow-ups from the composer, live in a second browser, permission cards, interrupt and continue),
//! and, on PostgreSQL, the app of one instance showing the agents another instance runs; the Webhooks
//! view.
//!
//! The app is reached only through its DOM contract (`data-testid` attributes, see `harness.rs`). Without
//! Chromium, chromedriver or the built app, each test prints a loud SKIPPED line and passes, unless
//! `AGENTSTREAM_REQUIRE_BROWSER=1` (set by `.ci/run`). Screenshots go to `target/browser-screenshots/`. The
//! server is started by the workspace's test harness (`agentstream-testkit`), as in the API tests.

mod agent_types;
mod agents;
mod chaos;
mod conversation;
mod event_source;
mod export;
mod harness;
mod instances;
mod performance;
mod reconnect;
mod search;
mod usage;
mod webhooks;

/// The server binary cargo built for these tests, handed to the testkit (see `tests/api/main.rs`).
const SERVER: &str = env!("CARGO_BIN_EXE_agentstream");
