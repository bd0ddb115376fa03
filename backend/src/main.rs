//! The `agentstream` command.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use agentstream::configuration::Settings;
use agentstream::startup::Application;
use agentstream::telemetry;

/// mimalloc instead of glibc's malloc: the hot path allocates small, short-lived buffers per token, which
/// glibc spends a quarter of the CPU on (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_arena_eager_commit` (the same index in its v2 and v3 headers).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits arena memory as it is used rather than up front: with eager commit, 10,000 idle WebSockets
/// cost 19.3 KB each instead of 11.5 KB (the `connections` benchmark), for no measurable speed. The
/// option is read when the first arena is reserved, at the first allocation — before `main` — so it is
/// set from the ELF initializers, which run before Rust's runtime allocates anything.
extern "C" fn tune_allocator() {
    // SAFETY: sets a plain integer option of the allocator; valid at any time, before or after any
    // allocation, and only read by later arena reservations.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

/// Runs headless AI coding agents, stores every streamed message with a per-agent sequence number, and
/// pushes it live over WebSocket (UI and API on one port).
///
/// Settings come from config/base.toml, config/<AGENTSTREAM_ENVIRONMENT>.toml (local or production) and
/// AGENTSTREAM__SECTION__KEY environment variables (e.g. AGENTSTREAM__SERVER__PORT=8080); the flags
/// below win over all of them.
#[derive(Debug, Parser)]
#[command(name = "agentstream", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Folder of the settings files.
    #[arg(
        long,
        global = true,
        env = "AGENTSTREAM_CONFIG_DIR",
        default_value = "config"
    )]
    config_dir: PathBuf,

    /// Address to listen on (settings: server.host; default 127.0.0.1).
    #[arg(long, global = true)]
    host: Option<String>,

    /// Port to listen on; 0 picks a free one (settings: server.port; default 3000).
    #[arg(long, global = true)]
    port: Option<u16>,

    /// Database URL, e.g. sqlite://data/agent.db (settings: database.url).
    #[arg(long, global = true)]
    database_url: Option<String>,

    /// Log filter, e.g. info or agentstream=debug (settings: log.level; RUST_LOG wins).
    #[arg(long, global = true)]
    log_level: Option<String>,

    /// Listen on a non-loopback --host even without an API token (settings:
    /// server.allow_public_without_token). Anyone who reaches the port can then run agents here.
    #[arg(long, global = true)]
    allow_public_without_token: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API, the WebSocket and the web app (the default).
    Serve,
    /// Serve the Claude proxy contract (POST /agent/stream, /agent/start, /agent/stop/{id}, GET /health)
    /// by spawning the Claude CLI; --host/--port set where it listens (default 127.0.0.1:8000).
    Proxy,
    /// Print the API's OpenAPI 3.1 document (what `GET /api/openapi.json` serves), to generate a
    /// client without a running server.
    Openapi,
    /// Print an agent's messages as they stream (history first), until it ends.
    Watch {
        /// The agent's id.
        agent_id: uuid::Uuid,
        /// Show only messages after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: i64,
        /// The server.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        /// Print each frame as a JSON line (the WebSocket's frames, the same with --sse).
        #[arg(long)]
        json: bool,
        /// Follow the agent over Server-Sent Events (GET /api/agents/{id}/events) instead of the
        /// WebSocket, reconnecting by itself (with Last-Event-ID) when the stream breaks; the same output.
        #[arg(long)]
        sse: bool,
        /// The server's API token, when it has one.
        #[arg(long, env = "AGENTSTREAM__AUTH__TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Send a follow-up to an agent (it continues the session when its turn has ended), then watch
    /// the answer unless --no-watch.
    Send {
        /// The agent's id.
        agent_id: uuid::Uuid,
        /// What to say.
        content: String,
        /// Return once the message is stored.
        #[arg(long)]
        no_watch: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Interrupt an agent's current turn (its session is kept for the next follow-up).
    Interrupt {
        /// The agent's id.
        agent_id: uuid::Uuid,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Answer an agent's permission request (`watch` shows their ids).
    Answer {
        /// The agent's id.
        agent_id: uuid::Uuid,
        /// The request's id.
        request_id: String,
        /// allow or deny.
        decision: agentstream_wire::PermissionDecision,
        /// Why (told to the agent on deny).
        #[arg(long)]
        message: Option<String>,
        /// Allow every later call of this tool for the rest of the session.
        #[arg(long)]
        always: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Where the server is.
#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// The server.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// The server's API token, when it has one.
    #[arg(long, env = "AGENTSTREAM__AUTH__TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ServerArgs {
    fn token(&self) -> Option<&str> {
        self.token.as_deref().filter(|t| !t.is_empty())
    }
}

impl Cli {
    fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut o = Vec::new();
        let proxy = matches!(self.command, Some(Command::Proxy));
        if let Some(h) = &self.host {
            o.push((if proxy { "proxy.host" } else { "server.host" }, h.clone()));
        }
        if let Some(p) = self.port {
            o.push((
                if proxy { "proxy.port" } else { "server.port" },
                p.to_string(),
            ));
        }
        if let Some(u) = &self.database_url {
            o.push(("database.url", u.clone()));
        }
        if let Some(l) = &self.log_level {
            o.push(("log.level", l.clone()));
        }
        if self.allow_public_without_token {
            o.push(("server.allow_public_without_token", "true".to_owned()));
        }
        o
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Watch {
        agent_id,
        since,
        url,
        json,
        sse,
        token,
    }) = &cli.command
    {
        let token = token.as_deref().filter(|t| !t.is_empty());
        let over = if *sse { Over::Sse } else { Over::WebSocket };
        return watch(url, *agent_id, *since, *json, token, over);
    }
    if let Some(Command::Openapi) = &cli.command {
        println!("{}", agentstream::openapi::json());
        return ExitCode::SUCCESS;
    }
    if let Some(command) = &cli.command {
        if let Some(code) = talk(command) {
            return code;
        }
    }
    let settings = match Settings::load(Some(&cli.config_dir), &cli.overrides()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agentstream: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log.level, settings.log.format);
    match cli.command {
        Some(Command::Proxy) => proxy(settings),
        _ => serve(settings),
    }
}

fn proxy(settings: Settings) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async move {
        let server = agentstream::commands::proxy::ProxyServer::build(settings)?;
        println!("agentstream proxy listening on {}", server.url());
        let _ = std::io::stdout().flush();
        tracing::info!(url = %server.url(), "proxy listening");
        server.run_until_stopped().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentstream proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `watch` follows the agent over.
enum Over {
    WebSocket,
    Sse,
}

fn watch(
    url: &str,
    agent: uuid::Uuid,
    since: i64,
    json: bool,
    token: Option<&str>,
    over: Over,
) -> ExitCode {
    use agentstream::commands::{watch, watch_sse};
    let result = actix_web::rt::System::new().block_on(async {
        match over {
            Over::WebSocket => watch::watch(url, agent, since, json, token).await,
            Over::Sse => watch_sse::watch(url, agent, since, json, token).await,
        }
    });
    match result {
        Ok(agentstream_wire::AgentStatus::Completed) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("agentstream watch: {e}");
            ExitCode::from(2)
        }
    }
}

/// `send`, `interrupt` and `answer`; `None` for the other commands.
fn talk(command: &Command) -> Option<ExitCode> {
    use agentstream::commands::talk;
    let run = |name: &str,
               f: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), talk::TalkError>>>,
    >| {
        match actix_web::rt::System::new().block_on(f) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("agentstream {name}: {e}");
                ExitCode::from(2)
            }
        }
    };
    Some(match command {
        Command::Send {
            agent_id,
            content,
            no_watch,
            server,
        } => {
            let stored = actix_web::rt::System::new().block_on(talk::send(
                &server.url,
                *agent_id,
                content,
                !*no_watch,
                server.token(),
            ));
            match stored {
                Ok(m) if *no_watch => {
                    println!("stored as message {}", m.sequence_number);
                    ExitCode::SUCCESS
                }
                Ok(m) => watch(
                    &server.url,
                    *agent_id,
                    m.sequence_number - 1,
                    false,
                    server.token(),
                    Over::WebSocket,
                ),
                Err(e) => {
                    eprintln!("agentstream send: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Interrupt { agent_id, server } => run(
            "interrupt",
            Box::pin(talk::interrupt(&server.url, *agent_id, server.token())),
        ),
        Command::Answer {
            agent_id,
            request_id,
            decision,
            message,
            always,
            server,
        } => {
            let answer = agentstream_wire::PermissionAnswer {
                decision: *decision,
                message: message.clone(),
                updated_input: None,
                always: always.then_some(true),
            };
            run(
                "answer",
                Box::pin(async move {
                    let n =
                        talk::answer(&server.url, *agent_id, request_id, &answer, server.token())
                            .await?;
                    println!("answered; stored as message {n}");
                    Ok(())
                }),
            )
        }
        _ => return None,
    })
}

fn serve(settings: Settings) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        // Machine-readable for scripts and tests that start us on port 0.
        println!("agentstream listening on {}", app.url());
        let _ = std::io::stdout().flush();
        tracing::info!(url = %app.url(), instance = %app.instance(), "listening");
        app.run_until_stopped().await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("agentstream: {e}");
            ExitCode::FAILURE
        }
    }
}
