//! End-to-end tests: the `plugboard` binary over HTTP against the emulator over HTTP.

mod api_keys;
mod browser;
mod certificates;
mod cli;
mod connect;
mod connect_pages;
mod console;
mod credential_expiry;
mod guide;
mod hostile_input;
mod limits;
mod observability;
mod openapi;
mod page_size;
mod plugins;
mod postgres;
mod proxy;
mod refresh;
mod reload;
mod replicas;
mod rollover;
mod secrets;
mod spec_providers;
mod support;
mod sync_failures;
mod syncs;
