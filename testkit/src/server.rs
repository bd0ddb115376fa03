//! Starting the real binary: a child process on 127.0.0.1 port 0 (the kernel picks a free port, so tests
//! run in parallel without clashing), its database and log in a folder of its own, and its address read
//! from the `… listening on <url>` line it prints on stdout once it accepts connections.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::database::{create_database, TestDir};
use crate::TIMEOUT;

/// Where the server's log (its stderr) goes.
#[derive(Clone, Debug)]
enum Log {
    /// `<dir>/<command>.log`, at `TEST_LOG` (default `info`): tests read it ([`TestServer::log`]) and
    /// show it when they fail.
    File,
    /// This process's stderr, at this level (`RUST_LOG` still wins): the benchmark's warnings are seen
    /// as they happen, and no file grows during a long run.
    Stderr(String),
}

/// Where a server keeps its log and data (from a [`TestDir`]).
#[derive(Clone, Debug)]
struct Place {
    path: PathBuf,
    database_url: String,
    postgres: Option<String>,
}

/// How to start a server; from [`TestServer::builder`]. By default: `serve` on 127.0.0.1, a fresh
/// temporary folder, only the compiled-in settings, the log in a file.
#[derive(Clone, Debug)]
pub struct Builder {
    command: String,
    host: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<Place>,
    log: Log,
    without_web_app: bool,
    fake_cli: Option<String>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            command: "serve".into(),
            host: "127.0.0.1".into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            log: Log::File,
            without_web_app: false,
            fake_cli: None,
        }
    }
}

impl Builder {
    /// The subcommand: `serve` (the default) or `proxy` (the Claude proxy contract).
    pub fn command(mut self, command: &str) -> Builder {
        self.command = command.into();
        self
    }

    /// `--host` (default 127.0.0.1). A test of the exposure rules listens on 0.0.0.0; the address it is
    /// reached at stays 127.0.0.1.
    pub fn host(mut self, host: &str) -> Builder {
        self.host = host.into();
        self
    }

    /// More command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Builder {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// An environment variable of the server: an `AGENTSTREAM__SECTION__KEY` setting, or one that the
    /// processes it starts inherit (the Claude CLI's). Later values of the same name win.
    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Builder {
        self.env.push((key.into(), value.as_ref().into()));
        self
    }

    /// [`Builder::env`] for each pair, in order.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Builder {
        self.env
            .extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// `claude-code` agents stream through the Claude proxy at `url` (transport `proxy`).
    pub fn claude_proxy(self, url: &str) -> Builder {
        self.env("AGENTSTREAM__CLAUDE__TRANSPORT", "proxy")
            .env("AGENTSTREAM__CLAUDE__PROXY_URL", url)
    }

    /// The Claude CLI is a shell script that runs `body` once it has read the prompt (see
    /// [`crate::fake_cli`]), written into the server's folder.
    pub fn fake_cli(mut self, body: &str) -> Builder {
        self.fake_cli = Some(body.into());
        self
    }

    /// The log (and a SQLite database) go into `dir`, whose database the server uses, and which the
    /// caller keeps: to restart a server on the same data, or to reach its files from the test. Without
    /// it, a [`TestDir`] that lives as long as the server.
    pub fn dir(mut self, dir: &TestDir) -> Builder {
        self.dir = Some(Place {
            path: dir.path().to_path_buf(),
            database_url: dir.database_url(),
            postgres: dir.postgres_name().map(str::to_owned),
        });
        self
    }

    /// The log goes to this process's stderr at `level` instead of a file.
    pub fn log_to_stderr(mut self, level: &str) -> Builder {
        self.log = Log::Stderr(level.into());
        self
    }

    /// `server.static_dir` is a folder that does not exist, so that what is measured never depends on
    /// a web app build lying in the working directory.
    pub fn without_web_app(mut self) -> Builder {
        self.without_web_app = true;
        self
    }

    /// Starts `binary`; panics (with its log) if it does not listen.
    pub async fn spawn(self, binary: impl AsRef<Path>) -> TestServer {
        self.try_spawn(binary)
            .await
            .unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// Starts `binary` and waits until it listens; `Err` if it cannot be run, does not listen within
    /// [`TIMEOUT`], or exits first (a configuration it refuses: the error has its exit code and log).
    pub async fn try_spawn(self, binary: impl AsRef<Path>) -> Result<TestServer, StartFailure> {
        let binary = binary.as_ref();
        let io = |what: String| move |e: std::io::Error| StartFailure::Io(format!("{what}: {e}"));
        let (place, tmp) = match self.dir {
            Some(place) => (place, None),
            None => {
                let tmp = TestDir::new();
                let place = Place {
                    path: tmp.path().to_path_buf(),
                    database_url: tmp.database_url(),
                    postgres: tmp.postgres_name().map(str::to_owned),
                };
                (place, Some(tmp))
            }
        };
        if let Some(name) = &place.postgres {
            create_database(name).await.map_err(StartFailure::Io)?;
        }
        let dir = place.path;
        let log_name = format!("{}.log", self.command);
        let mut cmd = Command::new(binary);
        cmd.arg(&self.command)
            .args(["--port", "0", "--host", &self.host])
            .args(&self.args)
            .arg("--database-url")
            .arg(&place.database_url)
            // A folder with no settings files: only the compiled-in defaults and `env` apply.
            .arg("--config-dir")
            .arg(dir.join("no-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        match &self.log {
            Log::File => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(&log_name))
                    .map_err(io(format!("log file {log_name}")))?;
                cmd.env(
                    "RUST_LOG",
                    std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()),
                )
                .env("NO_COLOR", "1")
                .stderr(Stdio::from(log));
            }
            Log::Stderr(level) => {
                cmd.arg("--log-level").arg(level).stderr(Stdio::inherit());
            }
        }
        // Webhooks a test registers may only reach this machine's loopback (a test may widen it).
        cmd.env("AGENTSTREAM__WEBHOOKS__ALLOWED_HOSTS", "127.0.0.1");
        if self.without_web_app {
            cmd.env("AGENTSTREAM__SERVER__STATIC_DIR", dir.join("no-web"));
        }
        if place.postgres.is_some() {
            // One instance id per folder, so that a server restarted on the same folder is the same
            // instance (it knows its agents at once), and a short lease so that the others take a
            // killed one's agents over in seconds.
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let id: String = name
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            cmd.env("AGENTSTREAM__INSTANCE__ID", format!("t-{id}"))
                .env("AGENTSTREAM__INSTANCE__LEASE_MS", TEST_LEASE_MS.to_string());
        }
        if let Some(body) = &self.fake_cli {
            let script =
                crate::write_fake_cli(&dir, body).map_err(io("the fake Claude CLI".into()))?;
            cmd.env("AGENTSTREAM__CLAUDE__CLI_PATH", script);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .spawn()
            .map_err(io(format!("cannot run {}", binary.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                // `agentstream listening on …` or `agentstream proxy listening on …`.
                if let Some((_, url)) = line.split_once(" listening on ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await
        .map_err(|_| StartFailure::Timeout)?;
        let Some(address) = address else {
            let code = child.wait().await.ok().and_then(|s| s.code());
            let log = std::fs::read_to_string(dir.join(&log_name)).unwrap_or_default();
            return Err(StartFailure::Exited { code, log });
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| StartFailure::Io(format!("no port in {address:?}")))?;
        Ok(TestServer {
            address,
            port,
            client: http_client(reqwest::header::HeaderMap::new()),
            child,
            dir,
            log_name,
            _tmp: tmp,
        })
    }
}

/// The lease of test servers on PostgreSQL (`instance.lease_ms`).
pub const TEST_LEASE_MS: u64 = 2_000;

/// A server that did not start.
#[derive(Debug)]
pub enum StartFailure {
    /// It could not be run at all (the binary, its folder, its log file), or said something unexpected.
    Io(String),
    /// It did not say it was listening within [`TIMEOUT`].
    Timeout,
    /// It exited before listening: a configuration it refuses.
    Exited {
        code: Option<i32>,
        /// What it wrote to stderr (empty when its log went to this process's stderr).
        log: String,
    },
}

impl StartFailure {
    /// The exit code, when it exited by itself.
    pub fn code(&self) -> Option<i32> {
        match self {
            StartFailure::Exited { code, .. } => *code,
            _ => None,
        }
    }

    /// Its log, when it exited by itself.
    pub fn log(&self) -> &str {
        match self {
            StartFailure::Exited { log, .. } => log,
            _ => "",
        }
    }
}

impl fmt::Display for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartFailure::Io(what) => write!(f, "the server could not be started: {what}"),
            StartFailure::Timeout => write!(f, "the server did not listen within {TIMEOUT:?}"),
            StartFailure::Exited { code, log } => {
                write!(
                    f,
                    "the server exited before listening ({code:?}); its log:\n{log}"
                )
            }
        }
    }
}

impl std::error::Error for StartFailure {}

/// A running server, killed when dropped; its REST calls are in `client.rs`, its WebSockets in `ws.rs`.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`, as it printed it.
    pub address: String,
    pub port: u16,
    /// The client REST calls go through ([`TestServer::with_token`] gives it a token).
    pub client: reqwest::Client,
    child: Child,
    dir: PathBuf,
    log_name: String,
    /// Keeps the folder (log, database) alive; `None` when the caller owns it. Declared last: dropped
    /// after the child is killed (a PostgreSQL database is dropped with it).
    _tmp: Option<TestDir>,
}

impl TestServer {
    /// How to start one (settings, folder, subcommand…).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `binary serve` on a fresh database with the compiled-in settings; panics if it does not listen.
    pub async fn spawn(binary: impl AsRef<Path>) -> TestServer {
        Builder::default().spawn(binary).await
    }

    /// Makes `self.client` send `Authorization: Bearer <token>` (for a server with an API token).
    pub fn with_token(mut self, token: &str) -> TestServer {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header value"),
        );
        self.client = http_client(headers);
        self
    }

    /// The absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The folder of its database (`agent.db`) and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log so far (empty when it goes to stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(&self.log_name)).unwrap_or_default()
    }

    /// A folder for another instance on this server's database (on PostgreSQL), for a server started
    /// without a [`Builder::dir`].
    pub fn another_instance_dir(&self) -> TestDir {
        self._tmp
            .as_ref()
            .expect("a server that owns its folder")
            .same_database()
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<i32> {
        self.child.id().map(|id| id as i32)
    }

    /// Sends the server the signal `name` (`STOP`, `CONT`, `TERM`…).
    pub fn signal(&self, name: &str) {
        let pid = self.pid().expect("the server runs");
        let status = std::process::Command::new("kill")
            .args(["-s", name, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -s {name} {pid}");
    }

    /// SIGKILLs the server and waits for it to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Waits for the server to exit by itself.
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.wait().await.expect("wait for the server")
    }

    /// CPU time the server has used (user + system), in seconds; 0 once it is gone.
    pub fn cpu_seconds(&self) -> f64 {
        self.pid().map_or(0.0, crate::process::cpu_seconds)
    }

    /// The server's resident memory now, in bytes; 0 once it is gone.
    pub fn rss(&self) -> u64 {
        self.pid()
            .and_then(|pid| crate::process::status_bytes(pid, "VmRSS"))
            .unwrap_or(0)
    }

    /// The server's peak resident memory so far (VmHWM), in bytes. Panics when it cannot be read: a test
    /// asserting a bound on it must not pass on a missing figure.
    pub fn peak_rss(&self) -> u64 {
        self.pid()
            .and_then(|pid| crate::process::status_bytes(pid, "VmHWM"))
            .expect("VmHWM of the server")
    }
}

/// The client of a test server. It drops pooled connections well before the server's keep-alive
/// (actix: 5 s) would: a request sent on a connection the server is closing that very moment fails
/// with `IncompleteMessage`, which a loaded machine made happen now and then.
fn http_client(headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("http client")
}
