//! Several instances on one PostgreSQL database: what one instance stores, the others show.
//!
//! After each write its persistence actor announces what the write committed ([`notify`]): with
//! `pg_notify`, for each agent the numbers of the messages it stored, and the lifecycle events it caused
//! (status, completion, errors, creations, deletions). Every other instance listens ([`listener`]),
//! reads the announced messages back from the database — the database is the only source of content,
//! and a message is read only once it is committed — and hands them, with the events, to its own room
//! registry, whose sessions drop what they already sent. A notification that is lost (the listening
//! connection dropped) is recovered by reading each agent's messages after the last one passed on, and
//! its lifecycle events are made again from the agent's stored status ([`lifecycle`]).
//!
//! Each agent has one owner, the instance that runs it and alone writes it. Each instance holds a lease
//! on its row of `instances` whose epoch every write checks in the database ([`lease`]); a task renews
//! it and takes over the instances whose lease ended ([`keeper`]); commands for an agent go to its
//! owner ([`route`]).
//!
//! SQLite has one instance: none of this runs there.

pub mod keeper;
pub mod lease;
mod lifecycle;
pub mod listener;
pub mod notify;
pub mod route;

/// The channel of the notifications.
pub const CHANNEL: &str = "agentstream";
