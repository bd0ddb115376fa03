//! The real agent CLIs the end-to-end tests run (installed into `.tools/` by `scripts/install-tools`),
//! and what each needs to talk to the in-repo fake of its model API instead of the vendor's.

use std::path::{Path, PathBuf};

use serde_json::json;
use tempfile::TempDir;

/// An installed CLI: `AGENTSTREAM_TEST_<NAME>` when set, else `.tools/<name>/node_modules/.bin/<name>`;
/// `None`, after a loud SKIPPED line (or a failure when `AGENTSTREAM_REQUIRE_<NAME>=1`), when missing.
pub fn installed(name: &str, version: &str, package: &str, test: &str) -> Option<PathBuf> {
    let upper = name.to_ascii_uppercase();
    if let Ok(path) = std::env::var(format!("AGENTSTREAM_TEST_{upper}")) {
        return Some(PathBuf::from(path));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools")
        .join(name)
        .join("node_modules/.bin")
        .join(name);
    if local.exists() {
        return Some(local);
    }
    let hint = format!(
        "the {name} CLI is not installed: run `scripts/install-tools {name}` (npm {package}@{version})"
    );
    crate::skip_or_fail(test, &hint, &format!("AGENTSTREAM_REQUIRE_{upper}"));
    None
}

/// The Gemini CLI the tests are written against.
pub const GEMINI_VERSION: &str = "0.61.0";

/// The installed Gemini CLI (see [`installed`]).
pub fn gemini_cli() -> Option<PathBuf> {
    installed(
        "gemini",
        GEMINI_VERSION,
        "@google/gemini-cli",
        "gemini-cli end-to-end test",
    )
}

/// A HOME for the Gemini CLI: its `.gemini/settings.json` picks API-key auth (the base URL alone
/// makes the CLI pick an auth type it then rejects), turns telemetry and updates off, and lets the
/// CLI try each request once (a failing API fails the run at once, not after a minute of backoff).
pub struct GeminiHome {
    dir: TempDir,
}

impl GeminiHome {
    pub fn new() -> std::io::Result<Self> {
        let dir = TempDir::new()?;
        std::fs::create_dir_all(dir.path().join(".gemini"))?;
        let settings = json!({
            "general": {"disableAutoUpdate": true, "disableUpdateNag": true, "maxAttempts": 1},
            "privacy": {"usageStatisticsEnabled": false},
            "telemetry": {"enabled": false},
            "security": {"auth": {"selectedType": "gemini-api-key"}},
        });
        std::fs::write(
            dir.path().join(".gemini/settings.json"),
            settings.to_string(),
        )?;
        Ok(GeminiHome { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The server's environment for `gemini-cli` agents: `cli` against the fake API at `api_url`.
    pub fn server_env(&self, cli: &Path, api_url: &str) -> Vec<(String, String)> {
        [
            ("HOME", self.path().display().to_string()),
            ("GOOGLE_GEMINI_BASE_URL", api_url.to_owned()),
            ("GEMINI_API_KEY", "test-key".to_owned()),
            ("AGENTSTREAM__GEMINI__CLI_PATH", cli.display().to_string()),
            ("AGENTSTREAM__GEMINI__STOP_GRACE_MS", "2000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// The Codex CLI the tests are written against.
pub const CODEX_VERSION: &str = "0.169.0";

/// The installed Codex CLI (see [`installed`]).
pub fn codex_cli() -> Option<PathBuf> {
    installed(
        "codex",
        CODEX_VERSION,
        "@openai/codex",
        "codex end-to-end test",
    )
}

/// A CODEX_HOME for the Codex CLI whose `config.toml` makes the fake at `api_url` its model
/// provider (`OPENAI_BASE_URL` alone is not enough), never retries (a failing API fails the run at
/// once), and keeps the CLI from calling out (analytics, the plugins' git fetch, endless reconnects).
pub struct CodexHome {
    dir: TempDir,
}

impl CodexHome {
    pub fn new(api_url: &str) -> std::io::Result<Self> {
        let dir = TempDir::new()?;
        let codex = dir.path().join(".codex");
        std::fs::create_dir_all(&codex)?;
        let config = format!(
            r#"model = "gpt-5.5"
model_provider = "fake"

[model_providers.fake]
name = "fake"
base_url = "{api_url}/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[features]
plugins = false
unbounded_connection_retries = false
"#
        );
        std::fs::write(codex.join("config.toml"), config)?;
        Ok(CodexHome { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The server's environment for `codex` agents: `cli`, configured by this home.
    pub fn server_env(&self, cli: &Path) -> Vec<(String, String)> {
        [
            ("HOME", self.path().display().to_string()),
            (
                "CODEX_HOME",
                self.path().join(".codex").display().to_string(),
            ),
            ("OPENAI_API_KEY", "sk-test".to_owned()),
            ("AGENTSTREAM__CODEX__CLI_PATH", cli.display().to_string()),
            ("AGENTSTREAM__CODEX__STOP_GRACE_MS", "2000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}
