//! The sub-commands other than the server: `proxy` (the Claude CLI behind an HTTP SSE endpoint, for the
//! proxy transport) and `watch` (a terminal client of one agent's stream).

pub mod proxy;
pub mod watch;
