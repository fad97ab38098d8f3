//! `plugboard`: the server binary and its commands. See `cli.rs` for the commands.

mod api;
mod cli;
mod commands;
mod config;
mod crypto;
mod dev;
mod integrations;
mod refresh;
mod registry;
mod server;
mod store;
mod sync;
mod webhooks;

fn main() -> std::process::ExitCode {
    cli::main()
}
