//! The actor of one running agent: owns its lifecycle (`initializing` → `running` → `completed` |
//! `failed` | `terminated`), starts its runner, parses each line its reader feeds it, has the persistence
//! actor store it, and ends the run exactly once, whatever ends it first.

use std::collections::VecDeque;
use std::time::Instant;

use actix::prelude::*;
use agentstream_wire::{AgentStatus, CompletionResult, ErrorInfo};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{AgentStopped, Orchestrator};
use crate::clock;
use crate::parser::{self, RunOutcome};
use crate::runners::reader::{LineReader, StopReading};
use crate::runners::{
    Feed, FeedRefused, RunnerControl, RunnerEvent, RunnerExit, RunnerSpec, Started,
};
use crate::streaming::{AppendMessages, Persistence, SetSession, SetStatus, StoreError, Stored};

/// Stops the agent: its runner and process tree stop, what it printed so far is stored, and its status
/// becomes `status` — `terminated` for a DELETE, `interrupted` when the server shuts down. Replied once
/// that status is stored (or at once when the agent had already ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Terminate(pub AgentStatus);

/// The agent's actor.
pub struct AgentActor {
    id: Uuid,
    spec: Option<RunnerSpec>,
    persistence: Addr<Persistence>,
    orchestrator: Addr<Orchestrator>,
    reader: Option<Addr<LineReader>>,
    control: Option<Box<dyn RunnerControl>>,
    started: Instant,
    outcome: Option<RunOutcome>,
    last_sequence: i64,
    /// The runner is being started: stopping must wait for it, to stop what it started.
    starting: bool,
    /// The run is ending: no more lines are taken.
    finishing: bool,
    /// Told when the actor stops (the DELETEs waiting for it).
    waiters: Vec<oneshot::Sender<()>>,
    /// For the message that reports a line cut at this length.
    max_line_bytes: usize,
    /// The size of each message handed to the persistence actor and not yet answered, oldest first.
    in_flight: VecDeque<usize>,
    /// Their sum.
    in_flight_bytes: usize,
    /// Wakes the reader when the window had been full.
    credit: Option<oneshot::Sender<()>>,
    /// The runner's end, kept until the messages in flight are stored.
    exit: Option<RunnerExit>,
}

/// Messages of one agent that may be on their way to the database at once: enough for the persistence
/// actor's batches to fill up while the previous one is written, few enough to bound memory (the reader
/// waits beyond it; one feed may pass it by up to `reader::MAX_FEED_EVENTS`).
pub const IN_FLIGHT_WINDOW: usize = 256;

/// The bytes of text (raw line + content) of one agent that may be on their way to the database at
/// once: bounds the window's memory when lines are long (a longer line still goes, alone).
pub const IN_FLIGHT_BYTES: usize = 2 * 1024 * 1024;

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
            persistence,
            orchestrator,
            reader: None,
            control: None,
            started: Instant::now(),
            outcome: None,
            last_sequence: 0,
            starting: false,
            finishing: false,
            waiters: Vec::new(),
            max_line_bytes,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            credit: None,
            exit: None,
        }
    }

    /// Ends the run once: stops the runner, stores the final status (broadcasting `agent:status`, and
    /// for a run that ended by itself `agent:error` when it failed and `agent:complete`), then stops.
    fn finish(&mut self, status: AgentStatus, error: Option<ErrorInfo>, ctx: &mut Context<Self>) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        if let Some(reader) = self.reader.take() {
            reader.do_send(StopReading);
        }
        let control = self.control.take();
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
        ctx.wait(
            async move {
                if let Some(mut control) = control {
                    control.stop().await;
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
                if !act.starting {
                    ctx.stop();
                }
            }),
        );
    }

    /// The agent's row is gone (purged): stop everything without writing.
    fn abandon(&mut self, ctx: &mut Context<Self>) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        if let Some(reader) = self.reader.take() {
            reader.do_send(StopReading);
        }
        let control = self.control.take();
        ctx.wait(
            async move {
                if let Some(mut control) = control {
                    control.stop().await;
                }
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                if !act.starting {
                    ctx.stop();
                }
            }),
        );
    }

    /// The final status of a run whose runner ended by itself.
    fn ended(&self, exit: RunnerExit) -> (AgentStatus, Option<ErrorInfo>) {
        match (&self.outcome, exit.error) {
            (Some(outcome), _) => match outcome.error() {
                Some(error) => (AgentStatus::Failed, Some(error)),
                None => (AgentStatus::Completed, None),
            },
            (None, Some(error)) => (AgentStatus::Failed, Some(error)),
            (None, None) => (
                AgentStatus::Failed,
                Some(ErrorInfo::new(
                    "no_result",
                    "the agent ended without reporting a result",
                )),
            ),
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
        self.starting = true;
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
        self.starting = false;
        if self.finishing {
            // Terminated while the runner was starting: stop what it started, then stop.
            let control = result.ok().and_then(|s| s.control);
            ctx.wait(
                async move {
                    if let Some(mut control) = control {
                        control.stop().await;
                    }
                }
                .into_actor(self)
                .map(|_, _, ctx| ctx.stop()),
            );
            return;
        }
        let started = match result {
            Ok(started) => started,
            Err(error) => return self.finish(AgentStatus::Failed, Some(error), ctx),
        };
        self.control = started.control;
        self.started = Instant::now();
        let events = started.events;
        let running = SetStatus {
            started_at: Some(clock::now()),
            ..SetStatus::new(self.id, AgentStatus::Running)
        };
        ctx.wait(self.persistence.send(running).into_actor(self).map(
            move |res, act, ctx| match res {
                Ok(Ok(())) if !act.finishing => {
                    let reader = LineReader::new(ctx.address().recipient(), events).start();
                    act.reader = Some(reader);
                }
                Ok(Ok(())) => {}
                Ok(Err(StoreError::AgentGone)) => act.abandon(ctx),
                _ => act.finish(
                    AgentStatus::Failed,
                    Some(ErrorInfo::new(
                        "storage_error",
                        "the agent's status could not be stored",
                    )),
                    ctx,
                ),
            },
        ));
    }
}

impl Handler<Feed> for AgentActor {
    type Result = ResponseActFuture<Self, Result<(), FeedRefused>>;

    fn handle(&mut self, msg: Feed, ctx: &mut Context<Self>) -> Self::Result {
        if self.finishing {
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
                    self.exit = Some(exit);
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
                if let Some(control) = self.control.as_mut() {
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
                        "storage_error",
                        "the persistence actor is gone",
                    )),
                    ctx,
                );
                return Box::pin(fut::ready(Err(FeedRefused)));
            }
            for message in &messages {
                let size = message.raw.len() + message.content.len();
                self.in_flight.push_back(size);
                self.in_flight_bytes += size;
            }
            self.persistence.do_send(AppendMessages {
                agent_id: self.id,
                messages,
                ack: ctx.address().recipient(),
            });
        }
        if self.exit.is_some() {
            self.end_if_drained(ctx);
            return Box::pin(fut::ready(Ok(())));
        }
        if self.window_open() {
            return Box::pin(fut::ready(Ok(())));
        }
        // The window is full: the reader waits until a message is stored.
        let (credit, granted) = oneshot::channel();
        self.credit = Some(credit);
        Box::pin(
            async move { granted.await.map_err(|_| FeedRefused) }
                .into_actor(self)
                .map(|res, act, _| if act.finishing { Err(FeedRefused) } else { res }),
        )
    }
}

impl Handler<Stored> for AgentActor {
    type Result = ();
    fn handle(&mut self, msg: Stored, ctx: &mut Context<Self>) {
        for outcome in msg.0 {
            if let Some(size) = self.in_flight.pop_front() {
                self.in_flight_bytes = self.in_flight_bytes.saturating_sub(size);
            }
            match outcome {
                Ok(sequence_number) => self.last_sequence = self.last_sequence.max(sequence_number),
                Err(StoreError::AgentGone) => self.abandon(ctx),
                Err(e) => {
                    tracing::error!(agent = %self.id, error = %e, "cannot store a message");
                    self.finish(
                        AgentStatus::Failed,
                        Some(ErrorInfo::new(
                            "storage_error",
                            format!("a message could not be stored: {e}"),
                        )),
                        ctx,
                    );
                }
            }
        }
        if self.window_open() {
            if let Some(credit) = self.credit.take() {
                let _ = credit.send(());
            }
        }
        self.end_if_drained(ctx);
    }
}

impl AgentActor {
    /// Whether the reader may feed more (the window of messages in flight is not full).
    fn window_open(&self) -> bool {
        self.in_flight.len() < IN_FLIGHT_WINDOW && self.in_flight_bytes < IN_FLIGHT_BYTES
    }

    /// Ends the run once the runner has exited and nothing is in flight.
    fn end_if_drained(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_empty() && !self.finishing {
            if let Some(exit) = self.exit.take() {
                let (status, error) = self.ended(exit);
                self.finish(status, error, ctx);
            }
        }
    }
}

impl Handler<Terminate> for AgentActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: Terminate, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.finish(msg.0, None, ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
