//! The agentstream web app: a Yew client-side app, compiled to wasm32 by `cargo run -p xtask --
//! build-web` and served by the backend at `/`. The stream logic (`timeline`, `transcript`,
//! `connection::reconnect_delay`, the composer's rules) is plain Rust, unit-tested natively with
//! `cargo test -p agentstream-web`.

mod agent_list;
mod agent_view;
mod api;
mod app;
mod auth;
mod blocks;
mod composer;
mod connection;
mod launch;
mod permission_card;
mod search;
mod time;
mod timeline;
mod transcript;
mod usage;
mod usage_view;
mod webhooks;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
