//! Builds the application: opens the database, starts the actors (registry, persistence, orchestrator),
//! recovers what a previous process left running, and binds the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpServer};

use crate::agents::{Orchestrator, Shutdown};
use crate::api::{self, AppState};
use crate::configuration::Settings;
use crate::db::{self, DbOpenError};
use crate::gateway::registry::CloseAll;
use crate::gateway::{self, GatewayState, RoomRegistry};
use crate::instances::keeper::Keeper;
use crate::instances::lease::{self, Fence, LeaseError};
use crate::instances::route::Peers;
use crate::limits::{ConnectionLimit, LaunchRate};
use crate::metrics::{self, Metrics};
use crate::persistence::{InterruptUnfinished, Persistence, StoreError};
use crate::security::{self, Policy, SecurityError};
use crate::web_app::{self, WebApp};
use crate::write_turns::WriteTurns;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Security(#[from] SecurityError),
    #[error(transparent)]
    Database(#[from] DbOpenError),
    #[error("cannot mark interrupted agents: {0}")]
    Recovery(#[from] StoreError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("the actor system is not running")]
    Actors,
    #[error("cannot set up the metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What an agent continued after a restart is told.
const RESTART_PROMPT: &str =
    "Your previous turn was cut off: the server running you was restarted. \
Continue where you left off.";

/// Continues each agent a restart cut off (`agents.resume_interrupted`), one follow-up each.
pub(crate) fn resume_interrupted(
    orchestrator: &actix::Addr<Orchestrator>,
    agents: Vec<uuid::Uuid>,
) {
    for agent_id in agents {
        let resumed = orchestrator.send(crate::agents::SendFollowUp {
            agent_id,
            content: RESTART_PROMPT.to_owned(),
            origin: Some("restart"),
        });
        actix::spawn(async move {
            match resumed.await {
                Ok(Ok(_)) => tracing::info!(%agent_id, "resumed after the restart"),
                Ok(Err(e)) => {
                    tracing::warn!(%agent_id, error = %e.message, "cannot resume after the restart")
                }
                Err(_) => {
                    tracing::warn!(%agent_id, "cannot resume: the server is stopping")
                }
            }
        });
    }
}

/// A built application, listening but not yet serving.
pub struct Application {
    host: String,
    port: u16,
    instance: String,
    /// On PostgreSQL, the tasks that listen to the other instances and keep the lease: how to stop
    /// them, and the lease to release once this instance's agents are stored as interrupted.
    coordination: Option<Coordination>,
    server: Server,
    orchestrator: Addr<Orchestrator>,
    registry: Addr<RoomRegistry>,
}

impl Application {
    /// Builds everything from `settings`. Must run inside an actix system.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let settings = Arc::new(settings);
        // Before anything else: an unsafe exposure must not touch the database or the port.
        let policy = web::Data::new(Policy::from_settings(&settings)?);
        if policy.requires_token() {
            tracing::info!("the API and the WebSocket need the API token");
        }
        let db = db::connect(&settings.database).await?;
        let writer = db::connect_writer(&settings.database).await?;
        db::spawn_checkpointer(
            db.clone(),
            std::time::Duration::from_millis(settings.database.checkpoint_interval_ms),
        );
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                address: address.clone(),
                source,
            })?
            .port();
        let postgres = settings.database.url.starts_with("postgres");
        let own_url = own_url(&settings, port);
        let fence = if postgres {
            let id = &settings.instance.id;
            let epoch = lease::claim(&db, id, &own_url, settings.instance.lease()).await?;
            tracing::info!(instance = %id, epoch, url = %own_url, "lease claimed");
            Some(Fence::new(id, epoch))
        } else {
            None
        };

        let metrics = Metrics::new()?;
        let wake = crate::webhooks::Wake::default();
        let registry = RoomRegistry::new(settings.websocket.max_queued_bytes, metrics.clone())
            .with_wake(wake.clone())
            .start();
        let mailbox = settings
            .agents
            .max_running
            .saturating_mul(crate::agents::window::IN_FLIGHT_WINDOW)
            .saturating_add(1024);
        let turns =
            WriteTurns::for_backend(sea_orm::ConnectionTrait::get_database_backend(&writer));
        let persistence = Persistence::new(
            writer,
            registry.clone(),
            mailbox,
            fence.clone(),
            metrics.clone(),
            turns.clone(),
        )
        .start();
        let interrupted = persistence
            .send(InterruptUnfinished {
                owner: fence.as_ref().map(|f| f.instance().to_owned()),
            })
            .await
            .map_err(|_| StartupError::Actors)??;
        if !interrupted.is_empty() {
            tracing::warn!(
                count = interrupted.len(),
                "agents left running by a previous process are now interrupted"
            );
        }
        // After the recovery above: the indexer sees the agents a previous process left as they are now.
        if let Err(e) = crate::search::indexer::spawn(
            settings.database.clone(),
            settings.search.interval(),
            turns,
        ) {
            tracing::error!(error = %e, "cannot start the search indexer; search finds nothing new");
        }
        let orchestrator = Orchestrator::new(
            settings.clone(),
            db.clone(),
            persistence.clone(),
            metrics.clone(),
        )
        .start();
        if settings.agents.resume_interrupted {
            resume_interrupted(&orchestrator, interrupted);
        }
        let (coordination, peers) = match fence {
            Some(fence) => {
                let (coordination, peers) = Coordination::start(
                    &settings,
                    fence,
                    own_url,
                    &db,
                    &registry,
                    &persistence,
                    &orchestrator,
                );
                // Serving begins once the others are heard (a client here sees their agents live),
                // unless the listener cannot connect for a while: `/api/health` then says so.
                let heard = async {
                    while !peers.listener_up() {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                };
                if tokio::time::timeout(std::time::Duration::from_secs(5), heard)
                    .await
                    .is_err()
                {
                    tracing::warn!("not listening to the other instances yet; serving anyway");
                }
                (Some(coordination), Some(peers))
            }
            None => (None, None),
        };

        let webhooks = web::Data::new(crate::webhooks::Webhooks::start(
            db.clone(),
            &settings.webhooks,
            crate::webhooks::Rules::new(&settings, port),
            postgres.then(|| settings.instance.id.clone()),
            wake,
        ));
        let app_state = web::Data::new(AppState {
            db: db.clone(),
            orchestrator: orchestrator.clone(),
            settings: settings.clone(),
            launches: Arc::new(LaunchRate::new(settings.agents.launches_per_minute)),
            peers,
        });
        let gateway_state = web::Data::new(GatewayState {
            registry: registry.clone(),
            db,
            settings: settings.websocket.clone(),
            connections: ConnectionLimit::new(settings.websocket.max_connections),
            metrics: metrics.clone(),
        });
        let metrics = web::Data::new(metrics);
        let web_app = web::Data::new(WebApp::new(&settings.server.static_dir));
        if web_app.is_built() {
            tracing::info!(dir = %web_app.root().display(), "serving the web app");
        } else {
            tracing::warn!(
                dir = %web_app.root().display(),
                "the web app is not built (no index.html): `/` says so; ./scripts/run or \
                 ./scripts/build-web builds it"
            );
        }
        let server_settings = settings.clone();
        let server = HttpServer::new(move || {
            App::new()
                // No response is to be sniffed into another type (the web app adds more headers).
                .wrap(DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")))
                .app_data(app_state.clone())
                .app_data(gateway_state.clone())
                .app_data(web_app.clone())
                .app_data(policy.clone())
                .app_data(metrics.clone())
                .app_data(webhooks.clone())
                .configure(|cfg| api::configure(cfg, &server_settings))
                .configure(metrics::endpoint::configure)
                .service(
                    web::resource("/ws")
                        .wrap(from_fn(security::guard_ws))
                        .route(web::get().to(gateway::ws_route))
                        .default_service(web::to(api::method_not_allowed)),
                )
                // Everything else: the web app for GETs outside /api and /ws, the JSON 404 otherwise.
                .default_service(web::to(web_app::serve))
        })
        .workers(
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(4),
        )
        // Each event is a small frame: without TCP_NODELAY, Nagle holds it until the client's delayed
        // ACK (up to 40 ms on Linux), longer than everything else a token's trip takes.
        .tcp_nodelay(true)
        // After the last response of a connection, actix waits this long for the client to close
        // first (reading what it still sends, so that closing does not reset the connection under a
        // response it has not read). A WebSocket client that did the close handshake waits for the
        // server to close instead (RFC 6455): with actix's default (1 s) every proper close took a
        // second.
        .client_disconnect_timeout(std::time::Duration::from_millis(100))
        // SIGINT/SIGTERM are ours (`run_until_stopped`): agents and sockets end in order first.
        .disable_signals()
        // What is left once the sockets were told to go away gets this long to finish.
        .shutdown_timeout(2)
        .listen(listener)
        .map_err(|source| StartupError::Bind { address, source })?
        .run();

        Ok(Application {
            host: settings.server.host.clone(),
            port,
            instance: settings.instance.id.clone(),
            coordination,
            server,
            orchestrator,
            registry,
        })
    }

    /// The port it listens on (the real one when the settings said 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// This instance's id (`instance.id`).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Serves until SIGINT or SIGTERM, then shuts down in order: stop accepting connections, stop every
    /// running agent and store what it printed (status `interrupted`), close every WebSocket with 1001
    /// ("going away"), then let the last requests finish. A second signal stops at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        let signal = wait_for_signal().await?;
        tracing::info!(signal, "shutting down");
        let orderly = async {
            handle.pause().await;
            if self.orchestrator.send(Shutdown).await.is_err() {
                tracing::error!("the orchestrator is gone; agents could not be interrupted");
            }
            // Every write is done now: each agent replied once its final status was stored.
            if let Ok(sessions) = self.registry.send(CloseAll).await {
                tracing::info!(sessions, "websockets told the server is going away");
            }
            handle.stop(true).await;
        };
        tokio::select! {
            () = orderly => {}
            second = wait_for_signal() => {
                tracing::warn!(signal = second.unwrap_or("?"), "second signal: stopping now");
                handle.stop(false).await;
            }
        }
        if let Some(coordination) = self.coordination {
            coordination.stop().await;
        }
        match server.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// The first SIGINT or SIGTERM.
async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Where the other instances reach this one: `instance.url`, or its own address (loopback when it
/// listens on every address).
fn own_url(settings: &Settings, port: u16) -> String {
    if !settings.instance.url.is_empty() {
        return settings.instance.url.trim_end_matches('/').to_owned();
    }
    let host = match settings.server.host.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "::" | "[::]" => "[::1]",
        host => host,
    };
    format!("http://{host}:{port}")
}

/// The tasks of an instance among others on one PostgreSQL database.
struct Coordination {
    db: sea_orm::DatabaseConnection,
    fence: Fence,
    /// Stops both tasks; they end before the runtime does (their connections' cleanup needs it).
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Coordination {
    /// Starts the listener of the other instances and the keeper of the lease.
    fn start(
        settings: &Settings,
        fence: Fence,
        url: String,
        db: &sea_orm::DatabaseConnection,
        registry: &Addr<RoomRegistry>,
        persistence: &Addr<Persistence>,
        orchestrator: &Addr<Orchestrator>,
    ) -> (Coordination, Arc<Peers>) {
        let listener_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lease_held = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let listener = crate::instances::listener::Listener::new(
            settings.instance.id.clone(),
            settings.database.url.clone(),
            db.clone(),
            registry.clone(),
            listener_up.clone(),
        );
        let keeper = Keeper {
            db: db.clone(),
            fence: fence.clone(),
            url,
            lease: settings.instance.lease(),
            persistence: persistence.clone(),
            orchestrator: orchestrator.clone(),
            resume: settings.agents.resume_interrupted,
            held: lease_held.clone(),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let tasks = vec![
            actix::spawn({
                let stopped = until_stopped(stopped.clone());
                async move {
                    tokio::select! {
                        () = listener.run() => {}
                        () = stopped => {}
                    }
                }
            }),
            actix::spawn({
                let stopped = until_stopped(stopped);
                async move {
                    tokio::select! {
                        () = keeper.run() => {}
                        () = stopped => {}
                    }
                }
            }),
        ];
        let peers = Arc::new(Peers {
            instance: settings.instance.id.clone(),
            db: db.clone(),
            persistence: persistence.clone(),
            client: reqwest::Client::new(),
            lease: settings.instance.lease(),
            listener_up,
            lease_held,
        });
        (
            Coordination {
                db: db.clone(),
                fence,
                stop,
                tasks,
            },
            peers,
        )
    }

    /// Stops the tasks, then releases the lease (the agents are stored as interrupted by now): the
    /// other instances take this one's agents at once, and a restart with its id claims it anew.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(e) = lease::release(&self.db, &self.fence).await {
            tracing::warn!(error = %e, "cannot release the lease; it ends by itself");
        }
    }
}
