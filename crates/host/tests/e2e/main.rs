//! End-to-end tests: the `plugboard` binary over HTTP against the emulator over HTTP.

mod cli;
mod connect;
mod plugins;
mod proxy;
mod refresh;
mod secrets;
mod spec_providers;
mod support;
mod syncs;
