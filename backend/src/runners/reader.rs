//! The reader actor: pulls a runner's event stream and feeds its agent, a batch at a time.

use actix::prelude::*;
use agentstream_wire::{ErrorCode, ErrorInfo};
use futures_util::{FutureExt, StreamExt};

use super::{EventStream, Feed, RunnerEvent, RunnerExit};

/// At most this many events per [`Feed`]…
pub const MAX_FEED_EVENTS: usize = 64;

/// …and no more lines once a batch holds this many bytes (one long line still goes alone).
pub const MAX_FEED_BYTES: usize = 256 * 1024;

/// Feeds an agent's actor from a runner's stream. Each [`Feed`] carries what the stream has ready
/// (at least one event, at most [`MAX_FEED_EVENTS`] / [`MAX_FEED_BYTES`]): a fast runner costs one
/// hand-over per batch instead of one per line, a slow one still sends each line as soon as it comes.
/// The reader waits for each feed to be accepted before reading on, so the agent's pace (its window of
/// messages not yet stored), not the runner's, decides how much is in memory.
pub struct LineReader {
    agent: Recipient<Feed>,
    events: Option<EventStream>,
}

impl LineReader {
    /// A reader that will pull `events` into `agent` once started.
    pub fn new(agent: Recipient<Feed>, events: EventStream) -> Self {
        LineReader {
            agent,
            events: Some(events),
        }
    }
}

impl Actor for LineReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(events) = self.events.take() {
            // Dropped (with the stream) when the actor stops.
            ctx.spawn(
                pump(events, self.agent.clone())
                    .into_actor(self)
                    .map(|(), _, ctx| ctx.stop()),
            );
        }
    }
}

/// The size of an event, for [`MAX_FEED_BYTES`].
fn weight(event: &RunnerEvent) -> usize {
    match event {
        RunnerEvent::Line(line) => line.len(),
        RunnerEvent::Bytes(bytes) => bytes.len(),
        RunnerEvent::Oversized { head, .. } => head.len(),
        RunnerEvent::Exited(_) => 0,
    }
}

/// The report of a stream that ended without saying how.
fn ended_unreported() -> RunnerEvent {
    RunnerEvent::Exited(RunnerExit {
        error: Some(ErrorInfo::new(
            ErrorCode::StreamEnded,
            "the agent's output ended without saying how it finished",
        )),
    })
}

/// Moves events from `events` to `agent` until the end is fed or the agent refuses more.
async fn pump(mut events: EventStream, agent: Recipient<Feed>) {
    loop {
        let first = events.next().await.unwrap_or_else(ended_unreported);
        let mut bytes = weight(&first);
        let mut batch = vec![first];
        loop {
            if matches!(batch.last(), Some(RunnerEvent::Exited(_)))
                || batch.len() >= MAX_FEED_EVENTS
                || bytes >= MAX_FEED_BYTES
            {
                break;
            }
            // Only what is ready now: a line still to come is not waited for.
            match events.next().now_or_never() {
                Some(Some(event)) => {
                    bytes += weight(&event);
                    batch.push(event);
                }
                Some(None) => batch.push(ended_unreported()),
                None => break,
            }
        }
        let last = matches!(batch.last(), Some(RunnerEvent::Exited(_)));
        match agent.send(Feed(batch)).await {
            Ok(Ok(())) if !last => {}
            _ => return,
        }
    }
}

/// Stops the reader (the agent is finishing); its stream is dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopReading;

impl Handler<StopReading> for LineReader {
    type Result = ();
    fn handle(&mut self, _: StopReading, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
