//! The orchestrator actor: creates agents, starts an [`AgentActor`] for each, enforces the limit of
//! live agents, routes what clients send to an agent (follow-ups, interrupts, permission answers) to
//! its actor — starting one to continue an agent that is not running — and deletes agents (stopping
//! their run, removing them when asked).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::http::StatusCode;
use agentstream_wire::{Agent, AgentStatus, AgentType, ErrorCode, PermissionAnswer, StoredMessage};
use futures_util::future::LocalBoxFuture;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::agent::{AgentActor, AgentContext, Disown, StopRun};
use super::conversation::{AnswerPermission, ConversationError, Interrupt, SendInput};

use crate::clock;
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::persistence::{InsertAgent, Persistence, SetStatus, StoreDeletion, StoreError};
use crate::runners::{Continuation, RunnerSpec};
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

/// A follow-up to an agent (`POST /api/agents/{id}/messages`): replied once it is stored.
#[derive(Message)]
#[rtype(result = "Result<StoredMessage, ApiError>")]
pub struct SendFollowUp {
    pub agent_id: Uuid,
    pub content: String,
    /// Who wrote it when not a client (see [`SendInput::origin`]).
    pub origin: Option<&'static str>,
}

/// `POST /api/agents/{id}/interrupt`.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct InterruptAgent {
    pub agent_id: Uuid,
}

/// `POST /api/agents/{id}/permissions/{requestId}`: `Err` with `permission_not_found` also when the
/// agent is not live (the caller looks at its history to tell 404 from 409).
#[derive(Message)]
#[rtype(result = "Result<StoredMessage, ApiError>")]
pub struct AnswerAgentPermission {
    pub agent_id: Uuid,
    pub request_id: String,
    pub answer: PermissionAnswer,
}

/// An agent's actor has stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentStopped {
    pub agent_id: Uuid,
    /// Which actor: a newer one may already be continuing the agent.
    pub actor: Addr<AgentActor>,
}

/// The server is shutting down: refuse new launches, stop every running agent (status `interrupted`,
/// everything it printed stored). Replied once they all have stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// This instance's lease was taken over (it was frozen or cut off past it): every agent it runs is
/// another instance's now, and stops without writing. Replied once they all have stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DisownAll;

/// How many agents run now.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct RunningCount;

/// The orchestrator actor.
pub struct Orchestrator {
    settings: Arc<Settings>,
    db: DatabaseConnection,
    persistence: Addr<Persistence>,
    /// Handed to each agent's actor.
    metrics: Metrics,
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
        metrics: Metrics,
    ) -> Self {
        Orchestrator {
            settings,
            db,
            persistence,
            metrics,
            running: HashMap::new(),
            launching: 0,
            closing: false,
        }
    }
}

impl Orchestrator {
    /// What an agent's actor is given.
    fn agent_context(&self, ctx: &Context<Self>) -> AgentContext {
        AgentContext {
            persistence: self.persistence.clone(),
            orchestrator: ctx.address(),
            db: self.db.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Refused when as many agents are live as the settings allow.
    fn check_limit(&self) -> Result<(), ApiError> {
        let max = self.settings.agents.max_running;
        if self.running.len() + self.launching >= max {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyAgents,
                format!("{max} agents are running, the most this server allows; try again when one ends"),
            ));
        }
        Ok(())
    }

    /// The live actor of an agent, or a new one to continue it. Registered at once, so that every
    /// later request about the agent goes to the same actor: one run at a time, never two processes.
    fn actor_for(
        &mut self,
        agent_id: Uuid,
        ctx: &Context<Self>,
    ) -> Result<Addr<AgentActor>, ApiError> {
        if let Some(actor) = self.running.get(&agent_id) {
            return Ok(actor.clone());
        }
        if self.closing {
            return Err(ApiError::unavailable());
        }
        self.check_limit()?;
        let actor = AgentActor::continuing(agent_id, self.agent_context(ctx)).start();
        self.running.insert(agent_id, actor.clone());
        Ok(actor)
    }

    /// Forgets `actor` if it is still registered for the agent (it stopped).
    fn forget(&mut self, agent_id: Uuid, actor: &Addr<AgentActor>) {
        if self.running.get(&agent_id) == Some(actor) {
            self.running.remove(&agent_id);
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
        if let Err(e) = self.check_limit() {
            return Box::pin(fut::ready(Err(e)));
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
            owner: Some(self.settings.instance.id.clone()),
            usage_input_tokens: 0,
            usage_output_tokens: 0,
            usage_cache_read_tokens: 0,
            usage_cache_write_tokens: 0,
            usage_cost_nanos: None,
            usage_turns: 0,
            usage_duration_ms: 0,
            usage_session: None,
        };
        let spec = msg.spec;
        let continuation = Continuation {
            agent_type: msg.agent_type,
            configuration: msg.configuration.clone(),
            session_id: None,
            always_allowed: Vec::new(),
        };
        Box::pin(
            self.persistence
                .send(InsertAgent(model))
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.launching -= 1;
                    let agent = match res {
                        Ok(Ok(agent)) => agent,
                        Ok(Err(e)) => {
                            tracing::error!(agent_id = %id, error = %e, "cannot store a new agent");
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
                    let actor =
                        AgentActor::launch(id, spec, continuation, act.agent_context(ctx)).start();
                    act.running.insert(id, actor);
                    tracing::info!(agent_id = %id, r#type = %agent.agent_type, "agent launched");
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
                Err(StoreError::LeaseLost) => Err(ConversationError::TakenOver.into_api(id)),
                Err(e) => {
                    tracing::error!(agent_id = %id, error = %e, "cannot delete");
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
        self.forget(msg.agent_id, &msg.actor);
    }
}

impl Handler<SendFollowUp> for Orchestrator {
    type Result = ResponseActFuture<Self, Result<StoredMessage, ApiError>>;

    fn handle(&mut self, msg: SendFollowUp, ctx: &mut Context<Self>) -> Self::Result {
        let id = msg.agent_id;
        let actor = match self.actor_for(id, ctx) {
            Ok(actor) => actor,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let input = move || SendInput {
            content: msg.content.clone(),
            origin: msg.origin,
        };
        let first = actor.send(input());
        Box::pin(fut::wrap_future::<_, Self>(first).then(
            move |sent, act, ctx| -> fut::future::FutureWrap<LocalBoxFuture<'static, _>, Self> {
                let reply: LocalBoxFuture<'static, _> = match sent {
                    Ok(reply) => Box::pin(async move { reply.map_err(|e| e.into_api(id)) }),
                    // The actor stopped meanwhile (its run had just ended): a new one continues.
                    Err(_) => {
                        act.forget(id, &actor);
                        match act.actor_for(id, ctx) {
                            Ok(next) => {
                                let sent = next.send(input());
                                Box::pin(async move { sent.await?.map_err(|e| e.into_api(id)) })
                            }
                            Err(e) => Box::pin(async move { Err(e) }),
                        }
                    }
                };
                fut::wrap_future(reply)
            },
        ))
    }
}

impl Handler<InterruptAgent> for Orchestrator {
    type Result = ResponseFuture<Result<(), ApiError>>;

    fn handle(&mut self, msg: InterruptAgent, _: &mut Context<Self>) -> Self::Result {
        let id = msg.agent_id;
        let actor = self.running.get(&id).cloned();
        Box::pin(async move {
            let refused = match actor {
                Some(actor) => match actor.send(Interrupt).await {
                    Ok(result) => return result.map_err(|e| e.into_api(id)),
                    Err(_) => ConversationError::NotRunning,
                },
                None => ConversationError::NotRunning,
            };
            Err(refused.into_api(id))
        })
    }
}

impl Handler<AnswerAgentPermission> for Orchestrator {
    type Result = ResponseFuture<Result<StoredMessage, ApiError>>;

    fn handle(&mut self, msg: AnswerAgentPermission, _: &mut Context<Self>) -> Self::Result {
        let id = msg.agent_id;
        let actor = self.running.get(&id).cloned();
        Box::pin(async move {
            let request_id = msg.request_id.clone();
            let refused = match actor {
                Some(actor) => {
                    let answer = AnswerPermission {
                        request_id: msg.request_id,
                        answer: msg.answer,
                    };
                    match actor.send(answer).await {
                        Ok(result) => return result.map_err(|e| e.into_api(id)),
                        Err(_) => ConversationError::PermissionNotFound(request_id),
                    }
                }
                None => ConversationError::PermissionNotFound(request_id),
            };
            Err(refused.into_api(id))
        })
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

impl Handler<DisownAll> for Orchestrator {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: DisownAll, _: &mut Context<Self>) -> Self::Result {
        let agents: Vec<Addr<AgentActor>> = self.running.drain().map(|(_, a)| a).collect();
        if !agents.is_empty() {
            tracing::warn!(
                count = agents.len(),
                "this instance's lease was taken over: its agents stop without writing"
            );
        }
        Box::pin(async move {
            futures_util::future::join_all(agents.iter().map(|a| a.send(Disown))).await;
        })
    }
}

impl Handler<RunningCount> for Orchestrator {
    type Result = usize;
    fn handle(&mut self, _: RunningCount, _: &mut Context<Self>) -> usize {
        self.running.len()
    }
}
