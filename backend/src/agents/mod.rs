//! Running agents: the orchestrator actor ([`orchestrator`]) launches, limits, deletes and shuts down
//! agents; an actor per live agent ([`agent`]) owns its runs, from starting a runner to storing the
//! run's final status, its output passing to the database through a bounded window ([`window`]), and
//! takes what clients send it — follow-ups, interrupts, permission answers ([`conversation`]).

pub mod agent;
pub mod conversation;
mod orchestrator;
pub mod window;

pub use agent::AgentActor;
pub use orchestrator::{
    AgentStopped, AnswerAgentPermission, DeleteAgent, DisownAll, InterruptAgent, Launch,
    Orchestrator, RunningCount, SendFollowUp, Shutdown,
};
