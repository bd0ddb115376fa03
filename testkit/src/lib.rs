//! The one test harness of agentstream, shared by the black-box tests (`tests/api`, `tests/browser`) and
//! the benchmark (`bench/`), so that all of them start and drive the server the same way:
//!
//! - [`TestServer`]: the real `agentstream` binary as a child process on 127.0.0.1 port 0, on a fresh
//!   SQLite file, ready once it printed its `listening on` line; built with [`TestServer::builder`].
//!   The binary is always a parameter: only the backend package's own tests can name it
//!   (`env!("CARGO_BIN_EXE_agentstream")`), and the benchmark is given one by path (`--server`).
//! - its REST calls (launch, read, wait) and [`WsClient`], a protocol client over one WebSocket;
//! - [`fake_cli`], a shell script standing in for the Claude CLI; [`agent_clis`], the real CLIs and
//!   what each needs to talk to a fake model API;
//! - [`process`]: what `/proc` says about the server and the processes it started;
//! - the assertions every test file needs ([`assert_error`], [`assert_contiguous`]).
//!
//! Two kinds of callers, two forms of each operation: tests want a failure to panic with a clear message
//! (`launch`, `ws`, `spawn`), the benchmark wants to report it and go on with the next scenario
//! (`try_launch_synthetic`, `try_ws`, `try_spawn`, returning [`Fallible`]). The panicking form is always
//! the fallible one unwrapped, so both run the same code.

pub mod agent_clis;
mod client;
mod conversation;
mod database;
pub mod process;
mod server;
pub mod sse;
mod ws;

use std::path::Path;
use std::time::Duration;

use agentstream_wire::{ErrorBody, StoredMessage};

pub use conversation::{request_id, sessions};
pub use database::{backend, on_postgres, on_sqlite, Backend, TestDir};
pub use server::{Builder, StartFailure, TestServer, TEST_LEASE_MS};
pub use ws::{Closed, Incoming, Refused, WsClient};

/// How long any single wait may take before the test fails (a server start, an event, a status).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The result of an operation whose failure the caller reports rather than panics on (the benchmark):
/// the error says what went wrong, in words.
pub type Fallible<T> = Result<T, String>;

/// Writes an executable shell script standing in for the Claude CLI into `dir`; it reads the first
/// message (the prompt, as stream-json on stdin) into `$first_message`, then runs `body`. Returns its
/// path, for `AGENTSTREAM__CLAUDE__CLI_PATH` (which [`Builder::fake_cli`] sets).
pub fn fake_cli(dir: &Path, body: &str) -> String {
    write_fake_cli(dir, body)
        .unwrap_or_else(|e| panic!("write the fake CLI into {}: {e}", dir.display()))
}

/// [`fake_cli`], failing with an error instead of a panic.
fn write_fake_cli(dir: &Path, body: &str) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-claude.sh");
    std::fs::write(&path, format!("#!/bin/sh\nread first_message\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path.display().to_string())
}

/// Asserts a response is the protocol's error form with this status and code.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> agentstream_wire::ErrorInfo {
    let got = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "status for {code}: body {text}");
    let body: ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not the error form ({e}): {text}"));
    assert_eq!(body.error.code, code, "{text}");
    assert!(!body.error.message.is_empty());
    body.error
}

/// Asserts `messages` are numbered exactly `first, first+1, …`.
pub fn assert_contiguous(messages: &[StoredMessage], first: i64) {
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m.sequence_number,
            first + i as i64,
            "hole or repeat at position {i}"
        );
    }
}

/// The contents of the messages whose `metadata.eventType` is `event_type`, joined in order; with
/// `content_delta`, the assistant's text as it streamed.
pub fn joined(messages: &[StoredMessage], event_type: &str) -> String {
    messages
        .iter()
        .filter(|m| m.metadata["eventType"] == event_type)
        .map(|m| m.content.as_str())
        .collect()
}

/// The messages whose `metadata.eventType` is `event_type`, in order.
pub fn of_event<'a>(messages: &'a [StoredMessage], event_type: &str) -> Vec<&'a StoredMessage> {
    messages
        .iter()
        .filter(|m| m.metadata["eventType"] == event_type)
        .collect()
}

/// The last `result` message.
pub fn result_of(messages: &[StoredMessage]) -> &StoredMessage {
    messages
        .iter()
        .rfind(|m| m.message_type == agentstream_wire::MessageType::Result)
        .expect("a result message")
}

/// Writes a line to the real stderr, past the test harness's capture, so that it shows even when the
/// test passes (skips, figures).
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// What a test does when something it needs is not installed (`hint` says what and how to get it): with
/// `require_var=1` in the environment (CI, which installs everything and must not skip) it fails;
/// otherwise it prints a loud SKIPPED line and returns, and the caller returns too, passing.
pub fn skip_or_fail(what: &str, hint: &str, require_var: &str) {
    if std::env::var(require_var).as_deref() == Ok("1") {
        panic!("{what} cannot run ({require_var}=1): {hint}");
    }
    say(&format!("\n*** SKIPPED ({what}): {hint} ***\n"));
}
