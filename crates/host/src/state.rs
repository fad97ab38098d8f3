//! What a running host shares: its integrations, the connection service, the syncs and the
//! HTTP clients. The API's handlers, the scheduler and the commands all work on one
//! [`AppState`], which depends on none of them, so `api/` and `sync/` do not import each other.

use std::ops::Deref;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::{ServerConfig, UiConfig};
use crate::console::SignInThrottle;
use crate::integrations::Integrations;
use crate::refresh::Connections;
use crate::sync::Syncs;
use crate::upstream::Upstream;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub server: ServerConfig,
    /// How the end-user pages present the application (`[ui]`).
    pub ui: UiConfig,
    pub integrations: Integrations,
    /// Every read and write of connections goes through it: its cache, its refreshes, its
    /// events.
    pub connections: Connections,
    pub syncs: Syncs,
    /// The process's one HTTP client: pooled connections, redirects never followed.
    pub http: reqwest::Client,
    /// The proxy's client, hyper's own: same rules, fewer layers (see `upstream.rs`).
    pub upstream: Upstream,
    /// SHA-256 of the API key, so requests are checked in constant time without keeping the
    /// key itself around.
    pub api_key_digest: [u8; 32],
    /// SHA-256 of the key that signs in to the dashboard: `[ui] admin_key`, else the API key.
    pub console_key_digest: [u8; 32],
    /// Failed dashboard sign-ins and wrong API keys, by client address: one table, so guessing
    /// through both gets no extra tries.
    pub sign_in_throttle: SignInThrottle,
}

impl AppState {
    pub fn new(
        server: ServerConfig,
        ui: UiConfig,
        integrations: Integrations,
        connections: Connections,
        syncs: Syncs,
        http: reqwest::Client,
        api_key: &secrecy::SecretString,
    ) -> Self {
        let api_key_digest = digest(secrecy::ExposeSecret::expose_secret(api_key));
        let console_key_digest = ui.admin_key.as_ref().map_or(api_key_digest, |key| {
            digest(secrecy::ExposeSecret::expose_secret(key))
        });
        AppState(Arc::new(Shared {
            server,
            ui,
            integrations,
            connections,
            syncs,
            http,
            upstream: Upstream::new(),
            api_key_digest,
            console_key_digest,
            sign_in_throttle: SignInThrottle::default(),
        }))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// SHA-256 of a key, the form keys are compared in.
pub fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}
