//! Assembling and running the server: store, integrations, state, router, listener.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::changes;
use crate::config::Config;
use crate::credential_watch;
use crate::integrations::Integrations;
use crate::listener;
use crate::refresh::Connections;
use crate::registry::Registry;
use crate::sync::{Syncs, scheduler};
use crate::telemetry::management;
use crate::webhooks::Webhooks;
use plugboard_store::crypto::KeyRing;
use plugboard_store::{Location, Store};

/// How often expired connect sessions and OAuth states are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How often the expiry of integrations' client credentials is checked again (start-up
/// checks it first).
const CREDENTIAL_CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The configured store.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    open_store_at(config, &config.store).await
}

/// The store at `location`, with the configuration's key ring and record sealing.
pub async fn open_store_at(config: &Config, location: &Location) -> Result<Arc<dyn Store>, String> {
    let security = &config.security;
    let keys = KeyRing::new(&security.encryption_keys, &security.active_key)
        .ok_or("security.active_key is not in security.encryption_keys")?;
    plugboard_store::open(location, Arc::new(keys), config.encrypt_records)
        .await
        .map_err(|e| format!("store `{}`: {e}", location.display()))
}

/// Everything the handlers need, from a validated configuration.
pub async fn state(config: &Config, registry: &Registry) -> Result<AppState, String> {
    let store = open_store(config).await?;
    let http = plugboard_core::http::http_client();
    let integrations = Integrations::resolve(config, registry, &http)?;
    let webhooks = config
        .webhooks
        .as_ref()
        .map(|c| Arc::new(Webhooks::new(c, http.clone(), store.clone())));
    let syncs = Syncs::new(config, &integrations, webhooks.clone());
    Ok(AppState::new(
        config.server.clone(),
        config.ui.clone(),
        integrations,
        Connections::new(store, webhooks),
        syncs,
        http,
        &config.security.secret_key,
    ))
}

/// The listener of `[server] management_bind`, if one is configured.
pub async fn bind_management(config: &Config) -> Result<Option<TcpListener>, String> {
    let Some(address) = config.server.management_bind else {
        return Ok(None);
    };
    TcpListener::bind(address)
        .await
        .map(Some)
        .map_err(|e| format!("cannot listen on {address} (server.management_bind): {e}"))
}

/// Serves the API on `listener`, and metrics and health checks on `management` if given, until
/// `shutdown` completes; then lets requests in flight finish and closes the store.
pub async fn run(
    listener: TcpListener,
    management: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let management =
        management.map(|listener| management::spawn(listener, state.server.limits, state.clone()));
    let purger = tokio::spawn(purge_expired(state.connections.store().clone()));
    let credential_watch = tokio::spawn(watch_credential_expiry(state.clone()));
    let scheduler = scheduler::spawn(state.clone());
    let changes = changes::spawn(state.clone());
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%address, "plugboard listening");
    let store = state.connections.store().clone();
    let limits = state.server.limits;
    let api = api::Api::new(state);
    listener::serve(listener, limits, move |peer| api.for_peer(peer), shutdown).await;
    purger.abort();
    credential_watch.abort();
    scheduler.abort();
    changes.abort();
    if let Some(management) = management {
        management.abort();
    }
    store.close().await;
    tracing::info!("plugboard stopped");
    Ok(())
}

async fn purge_expired(store: Arc<dyn Store>) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        every.tick().await;
        match store.purge_expired(Utc::now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired sessions and states deleted"),
            Err(error) => tracing::warn!(%error, "deleting expired sessions and states failed"),
        }
    }
}

/// A server runs for months: its integrations' expiring credentials are checked at start and
/// then daily, each `integration.credential_expiring` notice sent once across replicas
/// (`credential_watch`), and the log reminded daily (at start the configuration's warnings
/// already did).
async fn watch_credential_expiry(state: AppState) {
    let mut every = tokio::time::interval(CREDENTIAL_CHECK_EVERY);
    let mut started = false;
    loop {
        every.tick().await;
        credential_watch::check_expiry(
            &state.integrations,
            state.connections.store().as_ref(),
            state.connections.webhooks(),
            Utc::now().date_naive(),
            started,
        )
        .await;
        started = true;
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
