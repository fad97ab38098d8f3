//! `plugboard`: the server binary and its commands. See `cli.rs` for the commands.

mod activity;
mod api;
mod changes;
mod cli;
mod commands;
mod config;
mod connection_cache;
mod console;
mod crash_point;
mod credential_watch;
mod dev;
mod integrations;
mod listener;
mod refresh;
mod registry;
mod reload;
mod server;
mod state;
mod sync;
mod telemetry;
mod upstream;
mod webhooks;

fn main() -> std::process::ExitCode {
    cli::main()
}
