//! The agentstream web app: a Yew client-side app, compiled to wasm32 by `cargo run -p xtask --
//! build-web` and served by the backend at `/`. The stream logic (`timeline`, `transcript`,
//! `connection::reconnect_delay`) is plain Rust, unit-tested natively with `cargo test -p agentstream-web`.

mod agent_list;
mod agent_view;
mod api;
mod app;
mod auth;
mod connection;
mod launch;
mod time;
mod timeline;
mod transcript;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
