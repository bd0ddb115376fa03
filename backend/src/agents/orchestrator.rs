//! The orchestrator actor: creates agents, starts an [`AgentActor`] for each, enforces the limit of
//! running agents, and deletes them (stopping their run, removing them when asked).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::http::StatusCode;
use agentstream_wire::{Agent, AgentStatus, AgentType, ErrorCode};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::agent::{AgentActor, StopRun};

use crate::clock;
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::persistence::{InsertAgent, Persistence, SetStatus, StoreDeletion, StoreError};
use crate::runners::RunnerSpec;
use crate::store;

/// Creates an agent and starts it. Replies with the stored agent (status `initializing`).
#[derive(Message)]
#[rtype(result = "Result<Agent, ApiError>")]
pub struct Launch {
    pub agent_type: AgentType,
    pub prompt: String,
    /// Kept on the agent's row.
    pub configuration: serde_json::Value,
    pub spec: RunnerSpec,
}

/// DELETE: stops the agent's run if it runs (status `terminated`), and with `purge` removes it and its
/// messages; `agent:deleted` follows.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct DeleteAgent {
    pub agent_id: Uuid,
    pub purge: bool,
}

/// An agent's actor has stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentStopped(pub Uuid);

/// The server is shutting down: refuse new launches, stop every running agent (status `interrupted`,
/// everything it printed stored). Replied once they all have stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// How many agents run now.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct RunningCount;

/// The orchestrator actor.
pub struct Orchestrator {
    settings: Arc<Settings>,
    db: DatabaseConnection,
    persistence: Addr<Persistence>,
    running: HashMap<Uuid, Addr<AgentActor>>,
    /// Launches whose row is being stored: they count against the limit already.
    launching: usize,
    /// Shutting down: no agent starts any more.
    closing: bool,
}

impl Orchestrator {
    /// An orchestrator that stores (and so announces) through `persistence`.
    pub fn new(
        settings: Arc<Settings>,
        db: DatabaseConnection,
        persistence: Addr<Persistence>,
    ) -> Self {
        Orchestrator {
            settings,
            db,
            persistence,
            running: HashMap::new(),
            launching: 0,
            closing: false,
        }
    }
}

impl Actor for Orchestrator {
    type Context = Context<Self>;
}

impl Handler<Launch> for Orchestrator {
    type Result = ResponseActFuture<Self, Result<Agent, ApiError>>;

    fn handle(&mut self, msg: Launch, _: &mut Context<Self>) -> Self::Result {
        if self.closing {
            return Box::pin(fut::ready(Err(ApiError::unavailable())));
        }
        let max = self.settings.agents.max_running;
        if self.running.len() + self.launching >= max {
            return Box::pin(fut::ready(Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyAgents,
                format!("{max} agents are running, the most this server allows; try again when one ends"),
            ))));
        }
        self.launching += 1;
        let id = Uuid::now_v7();
        let model = entity::agent::Model {
            id: id.to_string(),
            agent_type: msg.agent_type.as_str().to_owned(),
            status: AgentStatus::Initializing.as_str().to_owned(),
            prompt: msg.prompt,
            configuration: msg.configuration.to_string(),
            created_at: clock::now(),
            started_at: None,
            completed_at: None,
            error_code: None,
            error_message: None,
            session_id: None,
            model: None,
        };
        let spec = msg.spec;
        Box::pin(
            self.persistence
                .send(InsertAgent(model))
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.launching -= 1;
                    let agent = match res {
                        Ok(Ok(agent)) => agent,
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "cannot store a new agent");
                            return Err(ApiError::new(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                ErrorCode::StorageError,
                                "the agent could not be stored",
                            ));
                        }
                        Err(_) => return Err(ApiError::unavailable()),
                    };
                    if act.closing {
                        // Stored as the shutdown began: it never runs, and says so.
                        act.persistence
                            .do_send(SetStatus::new(id, AgentStatus::Interrupted));
                        return Ok(agent);
                    }
                    let actor = AgentActor::new(
                        id,
                        spec,
                        act.persistence.clone(),
                        ctx.address(),
                        act.settings.runners.max_line_bytes,
                    )
                    .start();
                    act.running.insert(id, actor);
                    tracing::info!(agent = %id, r#type = %agent.agent_type, "agent launched");
                    Ok(agent)
                }),
        )
    }
}

impl Handler<DeleteAgent> for Orchestrator {
    type Result = ResponseFuture<Result<(), ApiError>>;

    fn handle(&mut self, msg: DeleteAgent, _: &mut Context<Self>) -> Self::Result {
        let actor = self.running.get(&msg.agent_id).cloned();
        let db = self.db.clone();
        let persistence = self.persistence.clone();
        Box::pin(async move {
            let id = msg.agent_id;
            if store::find_agent(&db, id).await?.is_none() {
                return Err(ApiError::agent_not_found(id));
            }
            if let Some(actor) = actor {
                // A stopped actor (the agent just ended) answers with a mailbox error: nothing to stop.
                let _ = actor.send(StopRun(AgentStatus::Terminated)).await;
            }
            let deletion = StoreDeletion {
                agent_id: id,
                purge: msg.purge,
            };
            match persistence.send(deletion).await? {
                Ok(()) | Err(StoreError::AgentGone) => Ok(()),
                Err(e) => {
                    tracing::error!(agent = %id, error = %e, "cannot delete");
                    Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ErrorCode::StorageError,
                        "the agent was terminated but could not be removed",
                    ))
                }
            }
        })
    }
}

impl Handler<AgentStopped> for Orchestrator {
    type Result = ();
    fn handle(&mut self, msg: AgentStopped, _: &mut Context<Self>) {
        self.running.remove(&msg.0);
    }
}

impl Handler<Shutdown> for Orchestrator {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.closing = true;
        let agents: Vec<Addr<AgentActor>> = self.running.values().cloned().collect();
        if !agents.is_empty() {
            tracing::info!(count = agents.len(), "interrupting the running agents");
        }
        Box::pin(async move {
            futures_util::future::join_all(
                agents
                    .iter()
                    .map(|a| a.send(StopRun(AgentStatus::Interrupted))),
            )
            .await;
        })
    }
}

impl Handler<RunningCount> for Orchestrator {
    type Result = usize;
    fn handle(&mut self, _: RunningCount, _: &mut Context<Self>) -> usize {
        self.running.len()
    }
}
