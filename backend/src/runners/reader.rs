//! The reader actor: pulls a runner's event stream and feeds its agent one event at a time.

use actix::prelude::*;
use agentstream_wire::ErrorInfo;

use super::{EventStream, Feed, RunnerEvent, RunnerExit};

/// Feeds an agent's actor from a runner's stream, waiting for each event to be handled (stored) before
/// reading the next: the agent's pace, not the runner's, decides how much is in memory.
pub struct LineReader {
    agent: Recipient<Feed>,
    events: Option<EventStream>,
    /// An `Exited` event went through: the end needs no synthesized report.
    exited: bool,
}

impl LineReader {
    /// A reader that will pull `events` into `agent` once started.
    pub fn new(agent: Recipient<Feed>, events: EventStream) -> Self {
        LineReader {
            agent,
            events: Some(events),
            exited: false,
        }
    }
}

impl Actor for LineReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(events) = self.events.take() {
            ctx.add_stream(events);
        }
    }
}

impl StreamHandler<RunnerEvent> for LineReader {
    fn handle(&mut self, event: RunnerEvent, ctx: &mut Self::Context) {
        if matches!(event, RunnerEvent::Exited(_)) {
            self.exited = true;
        }
        ctx.wait(
            self.agent
                .send(Feed(event))
                .into_actor(self)
                .map(|res, _, ctx| {
                    if !matches!(res, Ok(Ok(()))) {
                        ctx.stop();
                    }
                }),
        );
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        if !self.exited {
            self.exited = true;
            self.agent.do_send(Feed(RunnerEvent::Exited(RunnerExit {
                error: Some(ErrorInfo::new(
                    "stream_ended",
                    "the agent's output ended without saying how it finished",
                )),
            })));
        }
        ctx.stop();
    }
}

/// Stops the reader (the agent is finishing); its stream is dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopReading;

impl Handler<StopReading> for LineReader {
    type Result = ();
    fn handle(&mut self, _: StopReading, ctx: &mut Self::Context) {
        self.exited = true;
        ctx.stop();
    }
}
