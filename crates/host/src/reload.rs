//! `plugboard serve` re-reads its configuration on SIGHUP.
//!
//! What a running server can take without a restart is swapped in whole: the integrations
//! (credentials, scopes, URLs), their sync settings and the webhook target. Each is behind one
//! `Arc` that readers take once, so a request in flight finishes with the configuration it
//! started with and never fails half-way. The new file goes through the same loader as
//! `serve` and `check-config`; a file with any problem is refused whole and the running
//! configuration stays. What the process was built on — its listeners, its store, its keys —
//! cannot change while it runs, so a change there is refused too, naming each key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use secrecy::ExposeSecret;

use crate::config::{self, Config, IntegrationConfig, LoadOptions};
use crate::credential_watch;
use crate::integrations::Integrations;
use crate::registry::Registry;
use crate::state::{AppState, digest};
use plugboard_core::oauth::ClientCredential;

/// Reloads the configuration at `path` on every SIGHUP until the process ends. `running` is
/// the configuration the server started with.
pub fn spawn(path: PathBuf, state: AppState, running: &Config) -> tokio::task::JoinHandle<()> {
    // Installed now, before the server answers anything: SIGHUP's default action ends the
    // process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let mut current = Snapshot::of(running);
    tokio::spawn(async move {
        let mut hangup = match hangup {
            Ok(hangup) => hangup,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP: configuration reload is off");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            if let Some(next) = reload(&path, &state, &current).await {
                current = next;
            }
        }
    })
}

/// One reload: the new configuration's snapshot if it was taken, `None` (logged) if refused.
async fn reload(path: &std::path::Path, state: &AppState, current: &Snapshot) -> Option<Snapshot> {
    // Reading files and loading plugins blocks: off the runtime's threads.
    let file = path.to_owned();
    let loaded = tokio::task::spawn_blocking(move || {
        let builtin = Registry::builtin().map_err(|e| e.to_string())?;
        config::load(&file, &builtin, &LoadOptions::from_process()).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("reading the configuration failed: {e}")));
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(problems) => {
            // `check-config`'s words, on one line: one log entry per refusal.
            let problems: Vec<&str> = problems.lines().map(str::trim).collect();
            tracing::error!(
                "configuration reload refused, the running configuration stays: {}",
                problems.join(" ")
            );
            return None;
        }
    };
    let config = &loaded.config;
    let next = Snapshot::of(config);
    let fixed = current.fixed_changes(&next);
    if !fixed.is_empty() {
        tracing::error!(
            keys = %fixed.join(", "),
            "configuration reload refused, the running configuration stays: {} cannot change while the server runs; restart it to change them",
            fixed.join(", ")
        );
        return None;
    }
    let integrations = match Integrations::resolve(config, &loaded.providers, &state.http) {
        Ok(integrations) => integrations,
        Err(problem) => {
            tracing::error!(
                "configuration reload refused, the running configuration stays: {problem}"
            );
            return None;
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    state.integrations.replace(integrations);
    state
        .syncs
        .replace_settings(config, &state.integrations)
        .await;
    if let (Some(webhooks), Some(target)) = (&state.syncs.webhooks, &config.webhooks) {
        webhooks.reconfigure(target);
    }
    tracing::info!(
        changed = %current.integration_changes(&next),
        "configuration reloaded"
    );
    // Credentials that are new may already be close to their expiry.
    credential_watch::check_expiry(
        &state.integrations,
        state.connections.store().as_ref(),
        state.connections.webhooks(),
        chrono::Utc::now().date_naive(),
        false,
    )
    .await;
    Some(next)
}

/// What a reload compares: the parts that cannot change, and a fingerprint of each
/// integration (secrets only as digests, never kept or logged as such).
struct Snapshot {
    /// Each key that needs a restart, with a fingerprint of its value.
    fixed: Vec<(&'static str, String)>,
    integrations: BTreeMap<String, String>,
}

impl Snapshot {
    fn of(config: &Config) -> Snapshot {
        let server = &config.server;
        let security = &config.security;
        let mut keys = String::new();
        for (id, key) in &security.encryption_keys {
            let _ = write!(keys, " {id}:{:?}", sha(key.expose_secret()));
        }
        let fixed = vec![
            ("server.bind", server.bind.to_string()),
            (
                "server.management_bind",
                format!("{:?}", server.management_bind),
            ),
            ("server.public_url", server.public_url.to_string()),
            (
                "server.allowed_return_origins",
                format!("{:?}", server.allowed_return_origins),
            ),
            (
                "server.header_read_timeout / body_read_timeout / max_connections",
                format!("{:?}", server.limits),
            ),
            ("server.max_body_size", server.max_body_size.to_string()),
            (
                "server.proxy_timeout / max_proxy_requests_per_connection",
                format!(
                    "{:?} {}",
                    server.proxy_timeout, server.max_proxy_requests_per_connection
                ),
            ),
            ("store", format!("{:?}", config.store)),
            ("store.encrypt_records", config.encrypt_records.to_string()),
            (
                "security.secret_key",
                format!("{:?}", digest(security.secret_key.expose_secret())),
            ),
            ("security.encryption_keys", keys),
            ("security.active_key", security.active_key.clone()),
            // The webhook target can change; adding or removing `[webhooks]` cannot.
            (
                "webhooks (added or removed)",
                config.webhooks.is_some().to_string(),
            ),
            ("log", format!("{:?}", config.log)),
            ("ui", ui_fingerprint(config)),
        ];
        let integrations = config
            .integrations
            .iter()
            .map(|(name, integration)| (name.clone(), fingerprint(integration)))
            .collect();
        Snapshot {
            fixed,
            integrations,
        }
    }

    /// The keys whose value differs in `next` but cannot change while running.
    fn fixed_changes(&self, next: &Snapshot) -> Vec<&'static str> {
        self.fixed
            .iter()
            .zip(&next.fixed)
            .filter(|((_, old), (_, new))| old != new)
            .map(|((key, _), _)| *key)
            .collect()
    }

    /// Which integrations were added, removed or changed, by name.
    fn integration_changes(&self, next: &Snapshot) -> String {
        let mut changes = Vec::new();
        for (name, print) in &next.integrations {
            match self.integrations.get(name) {
                None => changes.push(format!("{name} (added)")),
                Some(old) if old != print => changes.push(format!("{name} (changed)")),
                Some(_) => {}
            }
        }
        for name in self.integrations.keys() {
            if !next.integrations.contains_key(name) {
                changes.push(format!("{name} (removed)"));
            }
        }
        if changes.is_empty() {
            "no integration".to_owned()
        } else {
            changes.join(", ")
        }
    }
}

/// An integration's settings as comparable text: its `Debug` form (secrets redacted there)
/// plus a digest of each secret, so that a new secret counts as a change.
fn fingerprint(integration: &IntegrationConfig) -> String {
    let mut print = format!("{integration:?}");
    for credential in &integration.credentials {
        if let ClientCredential::Secret(secret) = &credential.credential {
            let _ = write!(print, " {:?}", digest(secret.expose_secret()));
        }
    }
    print
}

/// `[ui]` as comparable text, its admin key as a digest.
fn ui_fingerprint(config: &Config) -> String {
    let ui = &config.ui;
    let key = ui.admin_key.as_ref().map(|k| digest(k.expose_secret()));
    format!("{ui:?} {key:?}")
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}
