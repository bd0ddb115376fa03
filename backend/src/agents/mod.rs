//! Running agents: the orchestrator actor ([`orchestrator`]) launches, limits, deletes and shuts down
//! agents; an actor per running agent ([`agent`]) owns its run, from starting its runner to storing its
//! final status, its output passing to the database through a bounded window ([`window`]).

pub mod agent;
mod orchestrator;
pub mod window;

pub use agent::AgentActor;
pub use orchestrator::{AgentStopped, DeleteAgent, Launch, Orchestrator, RunningCount, Shutdown};
