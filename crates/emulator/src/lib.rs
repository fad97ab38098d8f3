//! A faithful local copy of Microsoft's identity platform (`login.microsoftonline.com`) and
//! the Graph People API (`graph.microsoft.com`), on one loopback port, with a control API and
//! fault injection. Every test, benchmark and the `plugboard dev` demo run against it.
//!
//! Code map:
//! - `identity`: authorize (with consent page), token, admin consent; errors as Microsoft
//!   words them (AADSTS codes, trace ids).
//! - `graph`: `/me`, `/me/people`, `/users/{id}/people` with OData paging, `$select`,
//!   `$filter`, `$search`, `$orderby`; throttling per (app, mailbox).
//! - `apim`: an API behind Azure API Management under `/apim`, authenticated by subscription
//!   key (header or query parameter): the service for API-key providers.
//! - `control`: `/_emulator/…`, the routes tests use to set the world up and misbehave it
//!   ([`ControlClient`] is its typed client).
//! - the state: `directory` (tenants, apps, users), `people`, `tokens`, `clock` (a
//!   virtual clock behind every expiry), `seed` (deterministic people).
//! - cross-cutting layers: `observe` (request ids, counters) and `faults`.
//!
//! Invariants: nothing leaves loopback; seed data depends only on its seed; every expiry reads
//! the virtual clock; a Graph page costs O(skip + top), never O(all people).

mod apim;
mod certificates;
mod client;
mod clock;
mod control;
mod counters;
mod directory;
mod faults;
mod graph;
mod identity;
mod observe;
mod people;
mod random;
mod scopes;
mod seed;
mod server;
mod state;
mod throttle;
mod tokens;

pub use client::ControlClient;
pub use control::types::*;
pub use people::{Person, PersonType, Phone, Prop, ScoredEmailAddress};
pub use server::{Emulator, EmulatorOptions, RunningEmulator};
