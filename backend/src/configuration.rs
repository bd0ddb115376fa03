//! Layered settings: the compiled-in `config/base.toml`, then `config/base.toml` and
//! `config/<environment>.toml` from the settings folder, then `AGENTSTREAM__SECTION__KEY` environment
//! variables, then command-line overrides. Later layers win.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The defaults, compiled in so that the binary runs from any folder.
const BASE_TOML: &str = include_str!("../../config/base.toml");

/// Everything the service can be told.
#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub agents: AgentSettings,
    pub synthetic: SyntheticSettings,
    pub websocket: WebSocketSettings,
    pub log: LogSettings,
    pub runners: RunnerSettings,
    pub claude: ClaudeSettings,
    pub gemini: GeminiSettings,
    pub codex: CodexSettings,
    pub proxy: ProxySettings,
    pub auth: AuthSettings,
    #[serde(default)]
    pub instance: InstanceSettings,
    /// `GET /metrics`'s own token, in the API token's form (see `security`). Both empty: it takes the
    /// API token, if any.
    pub metrics: AuthSettings,
    pub webhooks: WebhookSettings,
    #[serde(default)]
    pub search: SearchSettings,
}

/// Webhook consumers (`webhooks/`).
#[derive(Clone, Debug, Deserialize)]
pub struct WebhookSettings {
    /// Hosts a consumer's URL may name; empty: any.
    pub allowed_hosts: Vec<String>,
    pub max_consumers: u64,
    pub max_agent_ids: usize,
    /// One delivery's time limit.
    pub timeout_ms: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Settings {
    /// The compiled-in defaults alone, for unit tests.
    #[cfg(test)]
    pub fn test_defaults() -> Settings {
        Settings::load(Some(Path::new("/nonexistent")), &[]).expect("the compiled-in settings load")
    }
}

/// The full-text index behind `GET /api/agents?q=` (docs/search.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct SearchSettings {
    /// How often the indexer looks for stored messages to index: the index lags behind the store by
    /// about this plus the time of one pass.
    pub interval_ms: u64,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings { interval_ms: 500 }
    }
}

impl SearchSettings {
    /// [`Self::interval_ms`], at least 10 ms.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(10))
    }
}

/// This server among others on one database.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct InstanceSettings {
    /// Its id: given, or made at start-up (`Settings::load`).
    pub id: String,
    /// How long its lease on its agents lasts without a heartbeat (PostgreSQL): past it, another
    /// instance takes them over.
    pub lease_ms: u64,
    /// Where the other instances reach it to forward commands for its agents; empty: its own
    /// `http://host:port` (127.0.0.1 when it listens on every address).
    pub url: String,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            id: String::new(),
            lease_ms: 10_000,
            url: String::new(),
        }
    }
}

impl InstanceSettings {
    /// [`Self::lease_ms`].
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_ms)
    }
}

/// The shortest lease: heartbeats and takeovers run several times per lease.
const MIN_LEASE_MS: u64 = 1_000;

/// Longest instance id.
const MAX_INSTANCE_ID: usize = 64;

/// A token (see `security`): the API's (`auth`), or `/metrics`' own (`metrics`). Both empty: none.
#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    pub token: String,
    pub token_file: PathBuf,
}

/// Written by hand so that the token never reaches a log or an error message.
impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("token", &if self.token.is_empty() { "" } else { "<set>" })
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// Limits on what runners read.
#[derive(Clone, Debug, Deserialize)]
pub struct RunnerSettings {
    pub max_line_bytes: usize,
}

/// How `claude-code` agents run.
#[derive(Clone, Debug, Deserialize)]
pub struct ClaudeSettings {
    pub transport: agentstream_wire::ClaudeTransport,
    pub cli_path: PathBuf,
    pub extra_args: Vec<String>,
    pub proxy_url: String,
    /// A proxy run fails when the proxy sends nothing for this long.
    pub proxy_read_timeout_ms: u64,
    pub stop_grace_ms: u64,
}

impl ClaudeSettings {
    /// How long each signal of a stop is given.
    pub fn stop_grace(&self) -> Duration {
        Duration::from_millis(self.stop_grace_ms)
    }
}

/// How `gemini-cli` agents run.
#[derive(Clone, Debug, Deserialize)]
pub struct GeminiSettings {
    pub cli_path: PathBuf,
    pub extra_args: Vec<String>,
    pub stop_grace_ms: u64,
    /// A run that prints nothing for this long is stopped (0: never).
    pub idle_timeout_ms: u64,
}

/// How `codex` agents run.
#[derive(Clone, Debug, Deserialize)]
pub struct CodexSettings {
    pub cli_path: PathBuf,
    pub extra_args: Vec<String>,
    pub stop_grace_ms: u64,
    /// A run that prints nothing for this long (not waiting for a permission answer) is stopped
    /// (0: never).
    pub idle_timeout_ms: u64,
}

/// `agentstream proxy`'s listening address.
#[derive(Clone, Debug, Deserialize)]
pub struct ProxySettings {
    pub host: String,
    pub port: u16,
}

/// Where and how the HTTP server listens.
#[derive(Clone, Debug, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub max_body_bytes: usize,
    /// The built web app's folder (`scripts/build-web`'s `dist/`), served at `/`.
    pub static_dir: PathBuf,
    /// Listen on a non-loopback address even without a token (the user says the network is trusted).
    pub allow_public_without_token: bool,
    /// Other origins whose pages may use the API and the WebSocket.
    pub allowed_origins: Vec<String>,
}

/// Which database, and how hard to try to keep what is written.
#[derive(Clone, Debug, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub busy_timeout_ms: u64,
    pub synchronous: SyncMode,
    /// The largest the SQLite file may grow (0: no limit); beyond it writes fail as on a full disk.
    pub max_size_bytes: u64,
    /// How often the WAL is checkpointed in the background (0: by SQLite, inside the writer's commits).
    pub checkpoint_interval_ms: u64,
    /// The page cache of the writer's own connection (SQLite; 0: SQLite's default of 2 MB).
    pub writer_cache_bytes: u64,
}

/// SQLite's `synchronous` pragma, as a durability choice.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Survives a crash of the process; the last commits may be lost on power failure.
    Normal,
    /// Every commit is on disk before it is acknowledged.
    Full,
}

/// Limits on agents.
#[derive(Clone, Debug, Deserialize)]
pub struct AgentSettings {
    pub max_running: usize,
    pub max_prompt_bytes: usize,
    /// Launches accepted per minute; 0: no limit.
    pub launches_per_minute: u32,
    /// At start-up, continue the agents the previous process left running (they are `interrupted`),
    /// telling each that its turn was cut off.
    #[serde(default)]
    pub resume_interrupted: bool,
}

/// Defaults and bounds of the `synthetic` agent's configuration.
#[derive(Clone, Debug, Deserialize)]
pub struct SyntheticSettings {
    pub default_tokens: u64,
    pub default_interval_ms: u64,
    pub max_tokens: u64,
    pub max_interval_ms: u64,
}

/// WebSocket heartbeat and limits.
#[derive(Clone, Debug, Deserialize)]
pub struct WebSocketSettings {
    pub heartbeat_interval_secs: u64,
    pub client_timeout_secs: u64,
    pub max_frame_bytes: usize,
    /// A session's outbound backlog (bytes not yet written to its socket) beyond which it is closed
    /// with code 4008 (slow consumer).
    pub max_queued_bytes: usize,
    /// Open WebSockets at once; 0: no limit.
    pub max_connections: usize,
    /// Agents one connection may be subscribed to at once; 0: no limit.
    pub max_subscriptions_per_connection: usize,
}

impl WebSocketSettings {
    /// How often a ping is sent.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_interval_secs.max(1))
    }

    /// How long a client may stay silent before it is dropped.
    pub fn client_timeout(&self) -> Duration {
        Duration::from_secs(self.client_timeout_secs.max(1))
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one readable line per event.
    #[default]
    Text,
    /// For log pipelines: one JSON object per line, with the fields of the spans it is in.
    Json,
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings: {0}")]
    Invalid(#[from] config::ConfigError),
    #[error("AGENTSTREAM_ENVIRONMENT must be \"local\" or \"production\", not {0:?}")]
    UnknownEnvironment(String),
    #[error("instance.id must be 1 to 64 letters, digits, '.', '_' or '-', not {0:?}")]
    InstanceId(String),
    #[error("instance.lease_ms must be at least {MIN_LEASE_MS}, not {0}")]
    Lease(u64),
}

impl Settings {
    /// Loads every layer. `dir` is the settings folder (`config/` when `None`); a missing folder or file
    /// is not an error, since the compiled-in defaults are complete. `overrides` are `("server.port",
    /// "0")` pairs applied last (the command line's flags).
    pub fn load(
        dir: Option<&Path>,
        overrides: &[(&str, String)],
    ) -> Result<Settings, SettingsError> {
        let dir: PathBuf = dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("config"));
        let environment =
            std::env::var("AGENTSTREAM_ENVIRONMENT").unwrap_or_else(|_| "local".to_owned());
        if !matches!(environment.as_str(), "local" | "production") {
            return Err(SettingsError::UnknownEnvironment(environment));
        }
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(BASE_TOML, config::FileFormat::Toml))
            .add_source(config::File::from(dir.join("base.toml")).required(false))
            .add_source(config::File::from(dir.join(format!("{environment}.toml"))).required(false))
            .add_source(
                config::Environment::with_prefix("AGENTSTREAM")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("server.allowed_origins")
                    .with_list_parse_key("webhooks.allowed_hosts"),
            );
        // The token as it is: `try_parsing` would turn an all-digit one into a number (and a long one
        // into a rounded float).
        if let Ok(token) = std::env::var("AGENTSTREAM__AUTH__TOKEN") {
            builder = builder.set_override("auth.token", token)?;
        }
        if let Ok(token) = std::env::var("AGENTSTREAM__METRICS__TOKEN") {
            builder = builder.set_override("metrics.token", token)?;
        }
        for (key, value) in overrides {
            builder = builder.set_override(*key, value.as_str())?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        let id = &mut settings.instance.id;
        if id.is_empty() {
            // Unique among the instances of one database, and short enough to read in a log.
            *id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        } else if id.len() > MAX_INSTANCE_ID
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(SettingsError::InstanceId(id.clone()));
        }
        if settings.instance.lease_ms < MIN_LEASE_MS {
            return Err(SettingsError::Lease(settings.instance.lease_ms));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_defaults_are_complete() {
        let dir = tempfile_dir();
        let s = Settings::load(Some(&dir), &[]).unwrap();
        assert_eq!(s.server.host, "127.0.0.1");
        assert_eq!(s.server.port, 3000);
        assert_eq!(s.database.synchronous, SyncMode::Normal);
        assert_eq!(s.server.static_dir, PathBuf::from("frontend-yew/dist"));
    }

    #[test]
    fn an_instance_id_is_made_unless_given_and_checked_when_given() {
        let dir = tempfile_dir();
        let a = Settings::load(Some(&dir), &[]).unwrap().instance.id;
        let b = Settings::load(Some(&dir), &[]).unwrap().instance.id;
        assert_eq!(a.len(), 12);
        assert_ne!(a, b);
        let given = [("instance.id", "eu-1.a_b".to_owned())];
        assert_eq!(
            Settings::load(Some(&dir), &given).unwrap().instance.id,
            "eu-1.a_b"
        );
        for bad in ["a b", "x/y", &"z".repeat(65)] {
            let r = Settings::load(Some(&dir), &[("instance.id", bad.to_owned())]);
            assert!(matches!(r, Err(SettingsError::InstanceId(_))), "{bad}");
        }
    }

    #[test]
    fn overrides_win() {
        let dir = tempfile_dir();
        let s = Settings::load(Some(&dir), &[("server.port", "0".into())]).unwrap();
        assert_eq!(s.server.port, 0);
    }

    #[test]
    fn security_defaults_are_closed() {
        let s = Settings::load(Some(&tempfile_dir()), &[]).unwrap();
        assert!(s.auth.token.is_empty());
        assert!(!s.server.allow_public_without_token);
        assert!(s.server.allowed_origins.is_empty());
        assert!(s.websocket.max_connections > 0);
        assert!(s.websocket.max_subscriptions_per_connection > 0);
        assert!(s.agents.launches_per_minute > 0);
    }

    #[test]
    fn the_token_is_never_shown() {
        let s = Settings::load(
            Some(&tempfile_dir()),
            &[("auth.token", "very-secret-token-value".into())],
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
        let s = Settings::load(
            Some(&tempfile_dir()),
            &[("metrics.token", "very-secret-scrape-token".into())],
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
    }

    #[test]
    fn logs_are_text_unless_json_is_asked_for() {
        let dir = tempfile_dir();
        assert_eq!(
            Settings::load(Some(&dir), &[]).unwrap().log.format,
            LogFormat::Text
        );
        let json = [("log.format", "json".to_owned())];
        assert_eq!(
            Settings::load(Some(&dir), &json).unwrap().log.format,
            LogFormat::Json
        );
        assert!(Settings::load(Some(&dir), &[("log.format", "xml".to_owned())]).is_err());
    }

    fn tempfile_dir() -> PathBuf {
        std::env::temp_dir().join("agentstream-no-such-settings-folder")
    }
}
