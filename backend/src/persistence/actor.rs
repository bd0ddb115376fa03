//! The persistence actor: takes requests into its queue and writes them a batch at a time, one batch in
//! flight, then hands the batch's event frames to the room registry and answers the requesters.

use std::rc::Rc;

use actix::prelude::*;
use agentstream_wire::Agent;
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::numbering::LastSequences;
use super::queue::WriteQueue;
use super::requests::{
    Ack, Acks, AppendMessages, Flush, InsertAgent, InterruptUnfinished, Reply, Request, SetSession,
    SetStatus, StoreDeletion, StoreError, StoreMessage, TakeOver, TakenOver,
};
use super::write::write_batch;
use crate::gateway::registry::{Broadcast, RoomRegistry};
use crate::instances::lease::Fence;
use crate::metrics::Metrics;
use crate::parser::ParsedMessage;
use crate::store;
use crate::write_turns::WriteTurns;

/// A write batch taking longer than this is logged (every message in it, and every one queued behind it,
/// waits that long to be shown).
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(100);

/// The persistence actor.
pub struct Persistence {
    db: DatabaseConnection,
    registry: Addr<RoomRegistry>,
    queue: WriteQueue,
    flushing: bool,
    mailbox: usize,
    /// Lent to the batch being written (only one is at a time).
    last: LastSequences,
    /// The database's text cannot hold NUL (PostgreSQL).
    nul_free: bool,
    /// On PostgreSQL, this instance's claim: each write checks it, and is announced to the other
    /// instances.
    fence: Option<Fence>,
    /// Recorded once per write: its size and time, the messages it stored, the requests that failed.
    metrics: Metrics,
    /// Each write waits for its turn at SQLite's write lock (the search indexer writes too).
    turns: WriteTurns,
}

impl Persistence {
    /// A writer of `db` that broadcasts through `registry`, taking up to `mailbox` requests at once
    /// without making a sender wait (running agents × their window of messages in flight); with a
    /// `fence` (PostgreSQL, several instances) each write holds to its claim and is announced. Each
    /// write is recorded in `metrics` and takes its turn among this process's writers in `turns`.
    pub fn new(
        db: DatabaseConnection,
        registry: Addr<RoomRegistry>,
        mailbox: usize,
        fence: Option<Fence>,
        metrics: Metrics,
        turns: WriteTurns,
    ) -> Self {
        let postgres =
            sea_orm::ConnectionTrait::get_database_backend(&db) == sea_orm::DbBackend::Postgres;
        Persistence {
            db,
            registry,
            queue: WriteQueue::default(),
            flushing: false,
            mailbox,
            last: LastSequences::new(),
            nul_free: postgres,
            fence,
            metrics,
            turns,
        }
    }

    /// Makes a message storable in this database, before anything (its row, its frame) is made of it:
    /// PostgreSQL's text cannot hold NUL, which becomes U+FFFD there (SQLite keeps it).
    fn storable(&self, message: &mut ParsedMessage) {
        if self.nul_free {
            for text in [&mut message.content, &mut message.raw] {
                if text.contains('\0') {
                    *text = text.replace('\0', "\u{FFFD}");
                }
            }
            if let Some(role) = message.role.as_mut().filter(|r| r.contains('\0')) {
                *role = role.replace('\0', "\u{FFFD}");
            }
        }
    }

    /// Queues a request that answers through a oneshot channel, and the future of its answer.
    fn request<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> ResponseFuture<Result<T, StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.queue.push(make(reply));
        self.flush(ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(StoreError::Stopped)) })
    }

    /// Writes the next batch of what is queued, unless a flush is under way (it will come back for the
    /// rest).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.queue.is_empty() {
            return;
        }
        self.flushing = true;
        let batch = self.queue.next_batch();
        let mut last = std::mem::take(&mut self.last);
        let db = self.db.clone();
        let fence = self.fence.clone();
        let turns = self.turns.clone();
        ctx.spawn(
            async move {
                let size = batch.len();
                let begun = std::time::Instant::now();
                let _turn = turns.take().await;
                // With a fence, each transaction announces itself to the other instances.
                let written = write_batch(&db, batch, &mut last, fence.as_ref()).await;
                let took = begun.elapsed();
                if took >= SLOW_WRITE {
                    tracing::warn!(size, ms = took.as_millis() as u64, "slow database write");
                }
                (written, last, took)
            }
            .into_actor(self)
            .map(|(written, last, took), act, ctx| {
                act.last = last;
                // Committed: announce everything (one hand-over for the batch), then answer.
                let mut frames = Vec::with_capacity(written.len());
                let mut answers = Vec::with_capacity(written.len());
                let mut stored = 0;
                for (request, result, mut produced) in written {
                    match &result {
                        Ok(()) if request.is_message() => stored += 1,
                        Err(StoreError::Database(_)) => {
                            act.metrics.database_error(request.operation())
                        }
                        _ => {}
                    }
                    frames.append(&mut produced);
                    answers.push((request, result));
                }
                act.metrics.write_done(answers.len(), stored, took);
                if !frames.is_empty() {
                    act.registry.do_send(Broadcast(frames));
                }
                let mut acks = Acks::default();
                for (request, result) in answers {
                    request.answer(result, &mut acks);
                }
                acks.send();
                act.flushing = false;
                act.flush(ctx);
            }),
        );
    }
}

impl Actor for Persistence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Handlers only move requests into `self.queue`, so the mailbox empties fast; sized so that no
        // agent ever waits for a slot (its own window bounds what it sends).
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl Handler<InsertAgent> for Persistence {
    type Result = ResponseFuture<Result<Agent, StoreError>>;
    fn handle(&mut self, msg: InsertAgent, ctx: &mut Context<Self>) -> Self::Result {
        let agent = match store::agent_to_wire(msg.0.clone()) {
            Ok(agent) => Box::new(agent),
            Err(e) => return Box::pin(async move { Err(StoreError::Database(e.to_string())) }),
        };
        self.request(ctx, |reply| Request::InsertAgent {
            model: msg.0,
            agent,
            reply,
        })
    }
}

impl Handler<AppendMessages> for Persistence {
    type Result = ();
    fn handle(&mut self, msg: AppendMessages, ctx: &mut Context<Self>) {
        let agent_id = msg.agent_id;
        let ack = Rc::new(msg.ack);
        for mut message in msg.messages {
            self.storable(&mut message);
            self.queue.push(Request::Append {
                agent_id,
                message,
                sequence_number: 0,
                ack: Ack::Batch(ack.clone()),
            });
        }
        self.flush(ctx);
    }
}

impl Handler<StoreMessage> for Persistence {
    type Result = ResponseFuture<Result<i64, StoreError>>;
    fn handle(&mut self, mut msg: StoreMessage, ctx: &mut Context<Self>) -> Self::Result {
        self.storable(&mut msg.message);
        self.request(ctx, |reply| Request::Append {
            agent_id: msg.agent_id,
            message: msg.message,
            sequence_number: 0,
            ack: Ack::One(reply),
        })
    }
}

impl Handler<SetStatus> for Persistence {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, change: SetStatus, ctx: &mut Context<Self>) -> Self::Result {
        self.request(ctx, |reply| Request::SetStatus { change, reply })
    }
}

impl Handler<SetSession> for Persistence {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, msg: SetSession, ctx: &mut Context<Self>) -> Self::Result {
        self.request(ctx, |reply| Request::SetSession {
            agent_id: msg.agent_id,
            session: msg.session,
            reply,
        })
    }
}

impl Handler<StoreDeletion> for Persistence {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, msg: StoreDeletion, ctx: &mut Context<Self>) -> Self::Result {
        self.request(ctx, |reply| Request::Delete {
            agent_id: msg.agent_id,
            purge: msg.purge,
            reply,
        })
    }
}

impl Handler<InterruptUnfinished> for Persistence {
    type Result = ResponseFuture<Result<Vec<Uuid>, StoreError>>;
    fn handle(&mut self, msg: InterruptUnfinished, ctx: &mut Context<Self>) -> Self::Result {
        self.request(ctx, |reply| Request::InterruptUnfinished {
            owner: msg.owner,
            interrupted: Vec::new(),
            reply,
        })
    }
}

impl Handler<TakeOver> for Persistence {
    type Result = ResponseFuture<Result<TakenOver, StoreError>>;
    fn handle(&mut self, _: TakeOver, ctx: &mut Context<Self>) -> Self::Result {
        if self.fence.is_none() {
            // One instance: nobody to take over.
            return Box::pin(async { Ok(TakenOver::default()) });
        }
        self.request(ctx, |reply| Request::TakeOver {
            taken: TakenOver::default(),
            reply,
        })
    }
}

impl Handler<Flush> for Persistence {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        self.request(ctx, |reply| Request::Flush { reply })
    }
}
