//! The persistence actor: the only writer of the database. It stores first and broadcasts after, so
//! no client ever sees a message that `GET …/messages` would lack.
//!
//! Requests queue in the actor ([`queue`]); each flush takes what is queued and runs it in one
//! transaction (group commit, [`write`]), then hands the frames of the events it caused ([`frames`]) to
//! the room registry in commit order and answers each requester through the reply its request carries
//! ([`requests`]). Messages go first, in writes of messages only, with other requests written in
//! bounded turns between them. Messages are numbered `MAX(sequence_number) + 1` per agent
//! ([`numbering`]) and stored as multi-row INSERTs ([`insert`]). A message that reports usage is counted in the same
//! transaction ([`usage`]).

mod actor;
mod frames;
mod insert;
mod numbering;
mod queue;
mod requests;
mod usage;
mod write;

pub use actor::Persistence;
pub use requests::{
    AppendMessages, Flush, InsertAgent, InterruptUnfinished, Outcome, SetSession, SetStatus,
    StoreDeletion, StoreError, StoreMessage, Stored, TakeOver, TakenOver,
};
