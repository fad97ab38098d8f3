//! `plugboard`: the server binary and its commands. See `cli.rs` for the commands.

mod api;
mod changes;
mod cli;
mod commands;
mod config;
mod dev;
mod integrations;
mod refresh;
mod registry;
mod server;
mod state;
mod sync;
mod upstream;
mod webhooks;

fn main() -> std::process::ExitCode {
    cli::main()
}
