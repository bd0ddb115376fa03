//! The actor of one live agent: owns its runs (`initializing` → `running` → `completed` | `failed` |
//! `terminated` | `interrupted`), starts each run's runner, parses each line its reader feeds it, has
//! the persistence actor store it, and ends each run exactly once, whatever ends it first. A run that
//! ends with follow-ups waiting ([`super::conversation`]) is followed by the next run of the same
//! session; with none, the actor stops (a follow-up starts a new actor, which continues the session).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use agentstream_wire::{AgentStatus, CompletionResult, ErrorCode, ErrorInfo};
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

use super::conversation::{Conversation, ConversationError};
use super::window::Window;
use super::{AgentStopped, Orchestrator};
use crate::clock;
use crate::configuration::Settings;
use crate::metrics::{self, Metrics};
use crate::parser::{self, ClaudeLines, LineParser, RunOutcome};
use crate::persistence::{AppendMessages, Persistence, SetSession, SetStatus, StoreError, Stored};
use crate::runners::reader::{LineReader, StopReading};
use crate::runners::{
    Continuation, Feed, FeedRefused, RunnerControl, RunnerEvent, RunnerExit, RunnerSpec, Started,
};
use crate::store;
use crate::telemetry::agent_span;

/// Stops the agent's run: its runner and process tree stop, what it printed so far is stored, and its
/// status becomes the one given — `terminated` for a DELETE, `interrupted` when the server shuts down.
/// Replied once that status is stored (or at once when the agent had already ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRun(pub AgentStatus);

/// Where the agent's run is. Each phase holds what only it has, so that nothing can disagree.
pub(super) enum Phase {
    /// A follow-up came for an agent that was not running: its stored row is being read to continue it.
    Loading,
    /// Between runs: a follow-up is being stored, and will start the next run.
    Idle,
    /// Its runner is being started.
    Starting,
    /// Its runner runs; its reader feeds the actor once `running` is stored.
    Running(Runner),
    /// Its runner has ended; the run ends once every message in flight is stored (its number known).
    Draining(Runner, RunnerExit),
    /// The run is ending, or has ended: the runner is being stopped and the final status stored; nothing
    /// more is taken. `runner_starting`: the runner was still being started, so the actor stops only
    /// once what it started is stopped too.
    Ending { runner_starting: bool },
}

/// A started runner: what stops it, and the actor reading its events.
pub(super) struct Runner {
    control: Option<Box<dyn RunnerControl>>,
    reader: Option<Addr<LineReader>>,
}

impl Runner {
    /// Stops the reader at once; the future stops the runner (its process tree, its proxy run).
    fn stop(self) -> impl Future<Output = ()> {
        if let Some(reader) = self.reader {
            reader.do_send(StopReading);
        }
        stop_control(self.control)
    }
}

/// Stops a runner's control, if there is one.
async fn stop_control(control: Option<Box<dyn RunnerControl>>) {
    if let Some(mut control) = control {
        control.stop().await;
    }
}

/// The agent's actor.
pub struct AgentActor {
    pub(super) id: Uuid,
    /// The run to start first (a launch's); later runs continue the session ([`Continuation`]).
    spec: Option<RunnerSpec>,
    /// How a later run continues the agent's session: known at once for a launch, read from the
    /// agent's row for an agent continued after its actor stopped.
    continuation: Option<Continuation>,
    pub(super) phase: Phase,
    /// The parser of the current run's lines (its type's; a new one for each run).
    parser: Box<dyn LineParser>,
    pub(super) conversation: Conversation,
    pub(super) persistence: Addr<Persistence>,
    orchestrator: Addr<Orchestrator>,
    pub(super) db: DatabaseConnection,
    settings: Arc<Settings>,
    /// When the runner started (the run's duration is measured from it).
    started: Instant,
    /// What the last turn's `result` said: decides how the run ends.
    pub(super) outcome: Option<RunOutcome>,
    /// The number of the last message stored.
    pub(super) last_sequence: i64,
    /// The messages on their way to the database, and the reader's credit.
    window: Window,
    /// Told when the actor stops (the DELETEs waiting for it).
    waiters: Vec<oneshot::Sender<()>>,
    /// Counts how its runs end.
    metrics: Metrics,
}

/// What an agent's actor is given.
pub struct AgentContext {
    pub persistence: Addr<Persistence>,
    pub orchestrator: Addr<Orchestrator>,
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
}

impl AgentActor {
    /// The actor of a newly stored agent, which runs `spec` once started.
    pub fn launch(
        id: Uuid,
        spec: RunnerSpec,
        continuation: Continuation,
        cx: AgentContext,
    ) -> Self {
        let mut actor = Self::new(id, Phase::Starting, cx);
        actor.spec = Some(spec);
        actor.continuation = Some(continuation);
        // The launch prompt's turn.
        actor.conversation.turns_open = 1;
        actor
    }

    /// The actor of a stored agent that is not running, to continue it (a follow-up came).
    pub fn continuing(id: Uuid, cx: AgentContext) -> Self {
        Self::new(id, Phase::Loading, cx)
    }

    fn new(id: Uuid, phase: Phase, cx: AgentContext) -> Self {
        AgentActor {
            id,
            spec: None,
            continuation: None,
            phase,
            parser: Box::new(ClaudeLines),
            conversation: Conversation::default(),
            persistence: cx.persistence,
            orchestrator: cx.orchestrator,
            db: cx.db,
            settings: cx.settings,
            started: Instant::now(),
            outcome: None,
            last_sequence: 0,
            window: Window::default(),
            waiters: Vec::new(),
            metrics: cx.metrics,
        }
    }

    /// Enters [`Phase::Ending`], giving back the runner to stop; `None` if the run was ending already.
    fn begin_ending(&mut self) -> Option<Option<Runner>> {
        let runner_starting = matches!(self.phase, Phase::Starting);
        match std::mem::replace(&mut self.phase, Phase::Ending { runner_starting }) {
            Phase::Ending { runner_starting } => {
                self.phase = Phase::Ending { runner_starting };
                None
            }
            Phase::Starting | Phase::Loading | Phase::Idle => Some(None),
            Phase::Running(runner) | Phase::Draining(runner, _) => Some(Some(runner)),
        }
    }

    /// Stops the actor, unless its runner is still being started (`runner_ready` stops it then).
    fn stop_unless_starting(&self, ctx: &mut Context<Self>) {
        if !matches!(
            self.phase,
            Phase::Ending {
                runner_starting: true
            }
        ) {
            ctx.stop();
        }
    }

    /// Ends the run once: stops the runner, stores the final status (broadcasting `agent:status`, and
    /// for a run that ended by itself `agent:error` when it failed and `agent:complete`), then stops.
    fn finish(&mut self, status: AgentStatus, error: Option<ErrorInfo>, ctx: &mut Context<Self>) {
        let Some(runner) = self.begin_ending() else {
            return;
        };
        self.count_exit(metrics::exit_reason(status, error.as_ref()));
        let complete = matches!(status, AgentStatus::Completed | AgentStatus::Failed).then(|| {
            CompletionResult {
                status,
                duration_ms: self.started.elapsed().as_millis() as i64,
                last_sequence: self.last_sequence,
                total_cost_usd: self.outcome.as_ref().and_then(|o| o.total_cost_usd),
                num_turns: self.outcome.as_ref().and_then(|o| o.num_turns),
                usage: self.outcome.as_ref().and_then(|o| o.usage.clone()),
            }
        });
        let change = SetStatus {
            completed_at: Some(clock::now()),
            error,
            complete,
            ..SetStatus::new(self.id, status)
        };
        let persistence = self.persistence.clone();
        let id = self.id;
        let stopped = runner.map(Runner::stop);
        ctx.wait(
            async move {
                if let Some(stopped) = stopped {
                    stopped.await;
                }
                store_final_status(&persistence, change).await
            }
            .instrument(agent_span(id))
            .into_actor(self)
            .map(move |res, act, ctx| {
                match res {
                    Ok(Ok(())) => tracing::info!(agent_id = %id, %status, "agent ended"),
                    Ok(Err(e)) if e.disowns() => {
                        act.conversation.stopping = true;
                        act.conversation.refuse_all(e.into());
                    }
                    Ok(Err(e)) => {
                        tracing::error!(agent_id = %id, error = %e, "cannot store the final status")
                    }
                    Err(_) => tracing::error!(agent_id = %id, "persistence actor gone"),
                }
                act.after_run(ctx);
            }),
        );
    }

    /// A run has ended: the next one starts when follow-ups wait for it (or are being stored);
    /// otherwise the actor stops.
    fn after_run(&mut self, ctx: &mut Context<Self>) {
        let c = &self.conversation;
        let more = !c.waiting.is_empty() || c.storing || !c.inbox.is_empty();
        let starting = matches!(
            self.phase,
            Phase::Ending {
                runner_starting: true
            }
        );
        if c.stopping || !more || starting {
            return self.stop_unless_starting(ctx);
        }
        self.phase = Phase::Idle;
        if !self.conversation.waiting.is_empty() {
            self.start_next_run(ctx);
        }
    }

    /// Starts a run that continues the session with the first waiting follow-up (the others are
    /// written to it once it runs, or wait for the run after).
    pub(super) fn start_next_run(&mut self, ctx: &mut Context<Self>) {
        let Some(first) = self.conversation.waiting.pop_front() else {
            return;
        };
        let spec = match &self.continuation {
            Some(continuation) => continuation.spec(&first, &self.settings),
            None => Err(ErrorInfo::new(
                ErrorCode::NoSession,
                "the agent cannot be continued: nothing is known of its session",
            )),
        };
        self.outcome = None;
        self.conversation.turns_open = 1;
        self.conversation.input_closed = false;
        self.conversation.interrupting = false;
        self.conversation.last_turn_interrupted = false;
        self.phase = Phase::Starting;
        match spec {
            Ok(spec) => self.start_runner(spec, ctx),
            Err(error) => {
                tracing::warn!(agent_id = %self.id, error = %error.message, "cannot continue the agent");
                self.phase = Phase::Running(Runner {
                    control: None,
                    reader: None,
                });
                self.finish(AgentStatus::Failed, Some(error), ctx);
            }
        }
    }

    /// A client allowed `tool` for the rest of the session: later runs start with it allowed.
    pub(super) fn allow_always(&mut self, tool: &str) {
        if let Some(continuation) = &mut self.continuation {
            if !continuation.always_allowed.iter().any(|t| t == tool) {
                continuation.always_allowed.push(tool.to_owned());
            }
        }
    }

    /// Starts `spec`; [`Self::runner_ready`] follows.
    fn start_runner(&mut self, spec: RunnerSpec, ctx: &mut Context<Self>) {
        if let Some(continuation) = &self.continuation {
            self.parser = crate::runners::kind::kind(continuation.agent_type).parser();
        }
        // The runner's tasks start inside the agent's span, and stay in it.
        ctx.spawn(
            spec.start()
                .instrument(agent_span(self.id))
                .into_actor(self)
                .map(|result, act, ctx| act.runner_ready(result, ctx)),
        );
    }

    /// The agent is not this instance's to write any more (its row was purged, or another instance
    /// took it over): stop everything without writing; what waits is refused with `why`.
    pub(super) fn abandon(&mut self, why: ConversationError, ctx: &mut Context<Self>) {
        self.conversation.stopping = true;
        self.conversation.refuse_all(why);
        let Some(runner) = self.begin_ending() else {
            return;
        };
        self.count_exit("abandoned");
        let stopped = runner.map(Runner::stop);
        ctx.wait(
            async move {
                if let Some(stopped) = stopped {
                    stopped.await;
                }
            }
            .instrument(agent_span(self.id))
            .into_actor(self)
            .map(|(), act, ctx| act.stop_unless_starting(ctx)),
        );
    }

    /// The final status of a run whose runner ended by itself (with `exit_error` when it failed):
    /// its last turn's.
    fn ended(&self, exit_error: Option<ErrorInfo>) -> (AgentStatus, Option<ErrorInfo>) {
        if self.conversation.interrupting || self.conversation.last_turn_interrupted {
            return (AgentStatus::Interrupted, None);
        }
        match (&self.outcome, exit_error) {
            (Some(outcome), _) => match outcome.error() {
                Some(error) => (AgentStatus::Failed, Some(error)),
                None => (AgentStatus::Completed, None),
            },
            (None, Some(error)) => (AgentStatus::Failed, Some(error)),
            (None, None) => (
                AgentStatus::Failed,
                Some(ErrorInfo::new(
                    ErrorCode::NoResult,
                    "the agent ended without reporting a result",
                )),
            ),
        }
    }

    /// Counts the end of a run, under its agent type.
    fn count_exit(&self, reason: &str) {
        let agent_type = self
            .continuation
            .as_ref()
            .map_or("unknown", |c| c.agent_type.as_str());
        self.metrics.runner_exited(agent_type, reason);
    }

    /// The runner's control, while it runs.
    pub(super) fn control(&mut self) -> Option<&mut Box<dyn RunnerControl>> {
        match &mut self.phase {
            Phase::Running(runner) | Phase::Draining(runner, _) => runner.control.as_mut(),
            _ => None,
        }
    }
}

/// Stores an agent's final status, retrying a failing database for a while (a lock held elsewhere, a
/// full disk being cleared): a status left `running` would misreport the agent until the next restart.
async fn store_final_status(
    persistence: &Addr<Persistence>,
    change: SetStatus,
) -> Result<Result<(), StoreError>, MailboxError> {
    let mut wait = std::time::Duration::from_millis(100);
    let mut attempts = 1;
    loop {
        match persistence.send(change.clone()).await {
            Ok(Err(StoreError::Database(e))) if attempts < FINAL_STATUS_ATTEMPTS => {
                tracing::warn!(agent_id = %change.agent_id, error = %e, "final status not stored yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
                attempts += 1;
            }
            other => return other,
        }
    }
}

/// How many times a final status is tried (about half a minute in all).
const FINAL_STATUS_ATTEMPTS: u32 = 10;

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(spec) = self.spec.take() {
            return self.start_runner(spec, ctx);
        }
        // Continuing a stored agent: what its next run needs is on its row. Requests that come
        // meanwhile wait in the inbox, and are refused with the reason if it cannot be continued.
        let db = self.db.clone();
        let id = self.id;
        ctx.spawn(
            async move {
                let agent = store::find_agent(&db, id).await?;
                let allowed = store::always_allowed_tools(&db, id).await?;
                Ok::<_, sea_orm::DbErr>(agent.map(|a| (a, allowed)))
            }
            .into_actor(self)
            .map(|found, act, ctx| {
                let refused = match found {
                    Ok(Some((agent, allowed))) => match Continuation::of(&agent) {
                        Ok(mut continuation) => {
                            continuation.always_allowed = allowed;
                            act.last_sequence = 0;
                            act.continuation = Some(continuation);
                            act.phase = Phase::Idle;
                            act.pump_inbox(ctx);
                            return;
                        }
                        Err(refused) => refused.into(),
                    },
                    Ok(None) => ConversationError::AgentGone,
                    Err(e) => ConversationError::Storage(e.to_string()),
                };
                act.conversation.stopping = true;
                act.conversation.refuse_all(refused);
                ctx.stop();
            }),
        );
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.orchestrator.do_send(AgentStopped {
            agent_id: self.id,
            actor: ctx.address(),
        });
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(());
        }
    }
}

impl AgentActor {
    /// The runner could be started, or not.
    fn runner_ready(&mut self, result: Result<Started, ErrorInfo>, ctx: &mut Context<Self>) {
        if let Phase::Ending { runner_starting } = &mut self.phase {
            // Stopped while the runner was starting: stop what it started, then stop.
            *runner_starting = false;
            let control = result.ok().and_then(|s| s.control);
            ctx.wait(
                stop_control(control)
                    .instrument(agent_span(self.id))
                    .into_actor(self)
                    .map(|(), _, ctx| ctx.stop()),
            );
            return;
        }
        let started = match result {
            Ok(started) => started,
            Err(error) => {
                self.phase = Phase::Running(Runner {
                    control: None,
                    reader: None,
                });
                return self.finish(AgentStatus::Failed, Some(error), ctx);
            }
        };
        self.phase = Phase::Running(Runner {
            control: started.control,
            reader: None,
        });
        if self.conversation.interrupting {
            // Interrupted while it was starting: nothing ran yet; the session is kept.
            return self.finish(AgentStatus::Interrupted, None, ctx);
        }
        self.deliver_waiting();
        self.started = Instant::now();
        let events = started.events;
        let running = SetStatus {
            started_at: Some(clock::now()),
            reopen: true,
            ..SetStatus::new(self.id, AgentStatus::Running)
        };
        ctx.wait(self.persistence.send(running).into_actor(self).map(
            move |res, act, ctx| match res {
                Ok(Ok(())) => {
                    if let Phase::Running(runner) = &mut act.phase {
                        let reader = LineReader::new(ctx.address().recipient(), events).start();
                        runner.reader = Some(reader);
                    }
                }
                Ok(Err(e)) if e.disowns() => act.abandon(e.into(), ctx),
                _ => act.finish(
                    AgentStatus::Failed,
                    Some(ErrorInfo::new(
                        ErrorCode::StorageError,
                        "the agent's status could not be stored",
                    )),
                    ctx,
                ),
            },
        ));
    }

    /// Ends the run once the runner has exited and nothing is in flight.
    fn end_if_drained(&mut self, ctx: &mut Context<Self>) {
        if !self.window.is_empty() {
            return;
        }
        let Phase::Draining(_, exit) = &mut self.phase else {
            return;
        };
        let exit_error = exit.error.take();
        let (status, error) = self.ended(exit_error);
        self.finish(status, error, ctx);
    }
}

impl Handler<Feed> for AgentActor {
    type Result = ResponseActFuture<Self, Result<(), FeedRefused>>;

    fn handle(&mut self, msg: Feed, ctx: &mut Context<Self>) -> Self::Result {
        if !matches!(self.phase, Phase::Running(_)) {
            return Box::pin(fut::ready(Err(FeedRefused)));
        }
        let mut messages = Vec::with_capacity(msg.0.len());
        for event in msg.0 {
            let parsed = match event {
                RunnerEvent::Line(line) => self.parser.parse_line(&line),
                RunnerEvent::Bytes(bytes) => self.parser.parse_bytes(&bytes),
                RunnerEvent::Oversized { len, head } => Some(parser::oversized_line(
                    len,
                    &head,
                    self.settings.runners.max_line_bytes,
                )),
                RunnerEvent::Exited(exit) => {
                    // The end is decided once every message in flight is stored (its number is known).
                    let placeholder = Phase::Ending {
                        runner_starting: false,
                    };
                    if let Phase::Running(runner) = std::mem::replace(&mut self.phase, placeholder)
                    {
                        self.phase = Phase::Draining(runner, exit);
                    }
                    break;
                }
            };
            let Some(parsed) = parsed else {
                continue;
            };
            if let Some(outcome) = &parsed.outcome {
                self.turn_ended(outcome);
            }
            self.permission_asked(&parsed);
            if let Some(session) = &parsed.session {
                if let Some(continuation) = &mut self.continuation {
                    continuation.session_id = Some(session.session_id.clone());
                }
                self.persistence.do_send(SetSession {
                    agent_id: self.id,
                    session: session.clone(),
                });
            }
            messages.push(parsed);
        }
        if !messages.is_empty() {
            // Sent now, in order (the persistence actor writes in arrival order); acknowledged later,
            // in batches (`Stored`).
            if !self.persistence.connected() {
                self.finish(
                    AgentStatus::Failed,
                    Some(ErrorInfo::new(
                        ErrorCode::StorageError,
                        "the persistence actor is gone",
                    )),
                    ctx,
                );
                return Box::pin(fut::ready(Err(FeedRefused)));
            }
            for message in &messages {
                self.window.sent(message.raw.len() + message.content.len());
            }
            self.persistence.do_send(AppendMessages {
                agent_id: self.id,
                messages,
                ack: ctx.address().recipient(),
            });
            // After the request, in the same order: shown once the request is.
            if !self.conversation.permissions.is_empty() && !self.conversation.awaiting {
                self.conversation.awaiting = true;
                self.persistence
                    .do_send(SetStatus::new(self.id, AgentStatus::AwaitingPermission));
            }
        }
        if matches!(self.phase, Phase::Draining(..)) {
            self.end_if_drained(ctx);
            return Box::pin(fut::ready(Ok(())));
        }
        if self.window.is_open() {
            return Box::pin(fut::ready(Ok(())));
        }
        // The window is full: the reader waits until a message is stored.
        let granted = self.window.wait_for_credit();
        Box::pin(
            async move { granted.await.map_err(|_| FeedRefused) }
                .into_actor(self)
                .map(|res, act, _| match act.phase {
                    Phase::Running(_) => res,
                    _ => Err(FeedRefused),
                }),
        )
    }
}

impl Handler<Stored> for AgentActor {
    type Result = ();
    fn handle(&mut self, msg: Stored, ctx: &mut Context<Self>) {
        for outcome in msg.0 {
            self.window.answered();
            match outcome {
                Ok(sequence_number) => self.last_sequence = self.last_sequence.max(sequence_number),
                Err(e) if e.disowns() => self.abandon(e.into(), ctx),
                Err(e) => {
                    tracing::error!(agent_id = %self.id, error = %e, "cannot store a message");
                    self.finish(
                        AgentStatus::Failed,
                        Some(ErrorInfo::new(
                            ErrorCode::StorageError,
                            format!("a message could not be stored: {e}"),
                        )),
                        ctx,
                    );
                }
            }
        }
        self.window.grant_if_open();
        self.end_if_drained(ctx);
    }
}

impl Handler<StopRun> for AgentActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: StopRun, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.conversation.stopping = true;
        self.conversation.refuse_all(ConversationError::Stopping);
        self.conversation.waiting.clear();
        if matches!(self.phase, Phase::Loading | Phase::Idle) {
            // No run to end (the last one ended with its own status). A follow-up being stored stops
            // the actor once it is.
            if !self.conversation.storing {
                ctx.stop();
            }
        } else {
            self.finish(msg.0, None, ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Another instance took the agent over (this instance's lease had run out): its run stops without
/// writing anything more. Replied once the actor has stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disown;

impl Handler<Disown> for AgentActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Disown, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        if matches!(self.phase, Phase::Loading | Phase::Idle) {
            self.conversation.stopping = true;
            self.conversation.refuse_all(ConversationError::TakenOver);
            ctx.stop();
        } else {
            self.abandon(ConversationError::TakenOver, ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
