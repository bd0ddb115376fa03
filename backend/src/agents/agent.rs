//! The actor of one running agent: owns its run (`initializing` → `running` → `completed` | `failed` |
//! `terminated`), starts its runner, parses each line its reader feeds it, has the persistence actor
//! store it, and ends the run exactly once, whatever ends it first.

use std::future::Future;
use std::time::Instant;

use actix::prelude::*;
use agentstream_wire::{AgentStatus, CompletionResult, ErrorCode, ErrorInfo};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::window::Window;
use super::{AgentStopped, Orchestrator};
use crate::clock;
use crate::parser::{self, RunOutcome};
use crate::persistence::{AppendMessages, Persistence, SetSession, SetStatus, StoreError, Stored};
use crate::runners::reader::{LineReader, StopReading};
use crate::runners::{
    Feed, FeedRefused, RunnerControl, RunnerEvent, RunnerExit, RunnerSpec, Started,
};

/// Stops the agent's run: its runner and process tree stop, what it printed so far is stored, and its
/// status becomes the one given — `terminated` for a DELETE, `interrupted` when the server shuts down.
/// Replied once that status is stored (or at once when the agent had already ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRun(pub AgentStatus);

/// Where the agent's run is. Each phase holds what only it has, so that nothing can disagree.
enum Phase {
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
struct Runner {
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
    id: Uuid,
    spec: Option<RunnerSpec>,
    phase: Phase,
    persistence: Addr<Persistence>,
    orchestrator: Addr<Orchestrator>,
    /// When the runner started (the run's duration is measured from it).
    started: Instant,
    /// What the first `result` line said: decides how the run ends.
    outcome: Option<RunOutcome>,
    /// The number of the last message stored.
    last_sequence: i64,
    /// The messages on their way to the database, and the reader's credit.
    window: Window,
    /// Told when the actor stops (the DELETEs waiting for it).
    waiters: Vec<oneshot::Sender<()>>,
    /// For the message that reports a line cut at this length.
    max_line_bytes: usize,
}

impl AgentActor {
    /// The actor of a stored agent, which will run `spec` once started.
    pub fn new(
        id: Uuid,
        spec: RunnerSpec,
        persistence: Addr<Persistence>,
        orchestrator: Addr<Orchestrator>,
        max_line_bytes: usize,
    ) -> Self {
        AgentActor {
            id,
            spec: Some(spec),
            phase: Phase::Starting,
            persistence,
            orchestrator,
            started: Instant::now(),
            outcome: None,
            last_sequence: 0,
            window: Window::default(),
            waiters: Vec::new(),
            max_line_bytes,
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
            Phase::Starting => Some(None),
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
            .into_actor(self)
            .map(move |res, act, ctx| {
                match res {
                    Ok(Ok(())) => tracing::info!(agent = %id, %status, "agent ended"),
                    Ok(Err(StoreError::AgentGone)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(agent = %id, error = %e, "cannot store the final status")
                    }
                    Err(_) => tracing::error!(agent = %id, "persistence actor gone"),
                }
                act.stop_unless_starting(ctx);
            }),
        );
    }

    /// The agent's row is gone (purged): stop everything without writing.
    fn abandon(&mut self, ctx: &mut Context<Self>) {
        let Some(runner) = self.begin_ending() else {
            return;
        };
        let stopped = runner.map(Runner::stop);
        ctx.wait(
            async move {
                if let Some(stopped) = stopped {
                    stopped.await;
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| act.stop_unless_starting(ctx)),
        );
    }

    /// The final status of a run whose runner ended by itself (with `exit_error` when it failed).
    fn ended(&self, exit_error: Option<ErrorInfo>) -> (AgentStatus, Option<ErrorInfo>) {
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

    /// The runner's control, while it runs.
    fn control(&mut self) -> Option<&mut Box<dyn RunnerControl>> {
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
                tracing::warn!(agent = %change.agent_id, error = %e, "final status not stored yet; retrying");
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
        let Some(spec) = self.spec.take() else {
            return;
        };
        ctx.spawn(
            spec.start()
                .into_actor(self)
                .map(|result, act, ctx| act.runner_ready(result, ctx)),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.orchestrator.do_send(AgentStopped(self.id));
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
        self.started = Instant::now();
        let events = started.events;
        let running = SetStatus {
            started_at: Some(clock::now()),
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
                Ok(Err(StoreError::AgentGone)) => act.abandon(ctx),
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
                RunnerEvent::Line(line) => parser::parse_line(&line),
                RunnerEvent::Bytes(bytes) => parser::parse_bytes(&bytes),
                RunnerEvent::Oversized { len, head } => {
                    Some(parser::oversized_line(len, &head, self.max_line_bytes))
                }
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
            // The first `result` decides how the run ends: anything printed after it (even another
            // `result`) is stored, but cannot turn a completed run into a failed one or back.
            if let (Some(outcome), None) = (&parsed.outcome, &self.outcome) {
                self.outcome = Some(outcome.clone());
                // The agent said its last word: closing its input lets it exit.
                if let Some(control) = self.control() {
                    control.end_input();
                }
            }
            if let Some(session) = &parsed.session {
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
                Err(StoreError::AgentGone) => self.abandon(ctx),
                Err(e) => {
                    tracing::error!(agent = %self.id, error = %e, "cannot store a message");
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
        self.finish(msg.0, None, ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
