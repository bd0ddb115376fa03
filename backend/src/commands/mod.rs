//! The sub-commands other than the server: `proxy` (the Claude CLI behind an HTTP SSE endpoint, for the
//! proxy transport), `watch` (a terminal client of one agent's stream, over WebSocket or, with `--sse`,
//! [`watch_sse`]), and `send`, `interrupt` and `answer` (talking to an agent, [`talk`]).

pub mod proxy;
pub mod talk;
pub mod watch;
pub mod watch_sse;
