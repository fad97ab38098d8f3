//! Connections with fresh tokens: a small read cache, and single-flight token refresh.
//!
//! One refresh per connection at a time, however many requests need it, in two layers:
//! - in this process, a per-connection async mutex: the first caller refreshes, the others wait
//!   and then find a newer `token_version` and use it without refreshing again;
//! - across processes sharing a database, a refresh lease in the store plus a compare-and-swap
//!   on `token_version` when the new tokens are written, so a second replica neither refreshes
//!   at the same time nor overwrites a newer token with an older one.
//!
//! Providers that rotate refresh tokens (and revoke the old one, or the whole family, on reuse)
//! make this a correctness matter, not an optimisation.
//!
//! They also make a crash mid-refresh matter: a process killed after the provider answered and
//! before the new tokens were stored leaves a refresh token the provider may have revoked. Its
//! lease stays held until it expires; the next refresh takes it over (the store says so) and
//! knows the one before was interrupted. It still tries the stored refresh token, once:
//! Microsoft keeps it valid, and the connection recovers by itself. Refused, the connection is
//! marked for reconnect with a reason that says a refresh was interrupted, and never retried
//! (a provider that revokes the whole family on reuse would lock it out for good).
//!
//! Every use of a connection (proxy, `GET /connections/{id}`, syncs, actions) refreshes through
//! here, so this is also where `connection.refresh_failed` and `connection.recovered` webhook
//! events start: once per change, by a compare-and-swap on the store, however many requests
//! or replicas saw it. A refresh refused because the provider refuses the integration's own
//! client credential is the integration's failure, not the connection's: it goes to
//! `credential_watch` (one `integration.credential_failed` for all connections, none marked
//! for reconnect), and a refresh that works clears it there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use plugboard_core::oauth::{OAuthError, OAuthErrorKind};
use secrecy::SecretString;
use serde_json::json;

use crate::activity;
use crate::connection_cache::ConnectionCache;
use crate::crash_point;
use crate::credential_watch;
use crate::integrations::Integration;
use crate::telemetry::metrics;
use crate::webhooks::Webhooks;
use plugboard_store::{
    ActivityKind, Connection, ConnectionKey, ConnectionStatus, NewConnection, RefreshLease, Store,
    StoreError, TokenUpdate,
};

/// Tokens expiring sooner than this are refreshed before use; short-lived tokens get a
/// smaller margin (see [`refresh_margin`]).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// A token is refreshed in at most the last 1/`LIFETIME_FRACTION` of its lifetime, so that a
/// provider issuing tokens that live five minutes or less does not get a refresh on every use.
const LIFETIME_FRACTION: u32 = 4;
/// How long a cached connection is trusted before it is read again; bounds how long another
/// replica's changes (a delete, a refresh) take to be seen here.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// How long one process may hold a connection's refresh lease: longer than a token request
/// may take, short enough that a crashed holder does not block refreshes for long.
const LEASE: Duration = Duration::from_secs(45);
/// How often to look again while another process holds the lease.
const LEASE_POLL: Duration = Duration::from_millis(50);
/// Attempts at a refresh that fails transiently, and the first delay between them.
const TRANSIENT_ATTEMPTS: u32 = 3;
const TRANSIENT_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("connection not found")]
    NotFound,
    /// The grant is gone; the reason is the classified provider error.
    #[error("the connection needs to be reconnected: {0}")]
    NeedsReconnect(String),
    #[error("the integration is misconfigured: {0}")]
    Misconfigured(String),
    #[error("refreshing the token failed temporarily: {0}")]
    Transient(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a refresh is wanted.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// The token expires within this margin.
    Expiring(Duration),
    /// The token of this version was rejected (or a refresh was asked for): replace it, unless
    /// someone already did.
    Replace(i64),
}

pub struct Connections {
    store: Arc<dyn Store>,
    /// Identifies this process as the holder of refresh leases.
    owner: String,
    locks: Mutex<HashMap<ConnectionKey, Arc<tokio::sync::Mutex<()>>>>,
    cache: ConnectionCache,
    /// Tokens redeemed but refused by the store, by connection, with the token version they
    /// replace: stored by the next refresh of the connection instead of redeeming again.
    unsaved: Mutex<HashMap<ConnectionKey, (i64, TokenUpdate)>>,
    /// Where refresh failures and recoveries are announced, if anywhere.
    webhooks: Option<Arc<Webhooks>>,
}

impl Connections {
    pub fn new(store: Arc<dyn Store>, webhooks: Option<Arc<Webhooks>>) -> Self {
        // Built once per process over its store, before anything is written: where the store's
        // crash points get their hook.
        crash_point::install();
        Connections {
            store,
            owner: uuid::Uuid::new_v4().to_string(),
            locks: Mutex::new(HashMap::new()),
            cache: ConnectionCache::default(),
            unsaved: Mutex::new(HashMap::new()),
            webhooks,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where events are sent, if anywhere.
    pub fn webhooks(&self) -> Option<&Arc<Webhooks>> {
        self.webhooks.as_ref()
    }

    /// The connection, from the cache when it was read recently.
    pub async fn get(&self, key: &ConnectionKey) -> Result<Option<Arc<Connection>>, StoreError> {
        self.named(&key.integration, &key.connection_id).await
    }

    /// [`get`](Self::get) by the connection's names, without building its key first (the
    /// proxy's lookup, on every request).
    pub async fn named(
        &self,
        integration: &str,
        connection_id: &str,
    ) -> Result<Option<Arc<Connection>>, StoreError> {
        if let Some(cached) = self.cache.get(integration, connection_id, CACHE_TTL) {
            return Ok(Some(cached));
        }
        // Boxed: a future holds the largest of its awaits inline, and the store's read would
        // make every proxied request's future kilobytes larger (see `Connections::refresh`).
        Box::pin(self.load(&ConnectionKey::new(integration, connection_id))).await
    }

    /// Reads the connection from the store (bypassing the cache) and caches it.
    pub async fn load(&self, key: &ConnectionKey) -> Result<Option<Arc<Connection>>, StoreError> {
        match self.store.connection(key).await? {
            Some(connection) => Ok(Some(self.remember(connection))),
            None => {
                self.forget(key);
                Ok(None)
            }
        }
    }

    pub fn remember(&self, connection: Connection) -> Arc<Connection> {
        let connection = Arc::new(connection);
        self.cache.put(connection.clone());
        connection
    }

    /// Saves a connection that a completed OAuth flow or an API key made, or made again:
    /// stored, cached, and a reconnect that ends a refresh failure announced as a recovery.
    /// Its `token_version` is 1 when it is new.
    pub async fn save(&self, new: NewConnection) -> Result<Arc<Connection>, StoreError> {
        let connection = self.store.save_connection(new, Utc::now()).await?;
        self.announce_recovery(&connection.key).await;
        let summary = if connection.token_version == 1 {
            "connection created"
        } else {
            "connection made again (reconnected)"
        };
        activity::record(
            self.store.as_ref(),
            ActivityKind::ConnectionCreated,
            true,
            Some(&connection.key),
            summary,
            None,
        )
        .await;
        Ok(self.remember(connection))
    }

    /// Deletes the connection (its records, sync state and runs with it); whether it existed.
    pub async fn delete(&self, key: &ConnectionKey) -> Result<bool, StoreError> {
        let deleted = self.store.delete_connection(key).await?;
        self.forget(key);
        if deleted {
            activity::record(
                self.store.as_ref(),
                ActivityKind::ConnectionDeleted,
                true,
                Some(key),
                "connection deleted, with its records and sync state",
                None,
            )
            .await;
        }
        Ok(deleted)
    }

    pub fn forget(&self, key: &ConnectionKey) {
        self.cache.remove(key);
    }

    /// The connection with a token valid for at least `margin`, or a quarter of its lifetime
    /// when that is less (see [`refresh_margin`]), refreshing it first if needed.
    pub async fn fresh(
        &self,
        integration: &Integration,
        connection: Arc<Connection>,
        margin: Duration,
    ) -> Result<Arc<Connection>, RefreshError> {
        if connection.status == ConnectionStatus::NeedsReconnect {
            return Err(needs_reconnect(&connection));
        }
        if !expires_within(&connection, margin, Utc::now()) {
            return Ok(connection);
        }
        self.refresh(integration, &connection.key, Need::Expiring(margin))
            .await
    }

    /// A connection whose token is newer than `version`: the one another request already got,
    /// or a freshly refreshed one. For a token the provider rejected, and for forced refreshes.
    pub async fn replace(
        &self,
        integration: &Integration,
        key: &ConnectionKey,
        version: i64,
    ) -> Result<Arc<Connection>, RefreshError> {
        self.refresh(integration, key, Need::Replace(version)).await
    }

    async fn refresh(
        &self,
        integration: &Integration,
        key: &ConnectionKey,
        need: Need,
    ) -> Result<Arc<Connection>, RefreshError> {
        let lock = self.lock_for(key);
        let result = {
            let _guard = lock.lock().await;
            // Boxed, because a future holds the largest of its awaits inline: the refresh (the
            // store's reads and writes, the provider's token request) is kilobytes, and without
            // the box every proxied request's future would carry it, and copy it as it is
            // built, though it almost never refreshes (BENCHMARKS.md, "Proxy overhead").
            Box::pin(self.refresh_locked(integration, key, need)).await
        };
        self.release_lock(key, lock);
        result
    }

    async fn refresh_locked(
        &self,
        integration: &Integration,
        key: &ConnectionKey,
        need: Need,
    ) -> Result<Arc<Connection>, RefreshError> {
        let waited_since = Instant::now();
        let mut transient_failures = 0;
        // Whether an earlier refresh of the connection, in a process that then stopped, may
        // have redeemed the stored refresh token without storing what it got.
        let mut after_interrupted = false;
        loop {
            // Always the store, not the cache: another process may have refreshed.
            let current = self.load(key).await?.ok_or(RefreshError::NotFound)?;
            if current.status == ConnectionStatus::NeedsReconnect {
                return Err(needs_reconnect(&current));
            }
            let satisfied = match need {
                Need::Expiring(margin) => !expires_within(&current, margin, Utc::now()),
                Need::Replace(version) => current.token_version != version,
            };
            if satisfied {
                return Ok(current);
            }
            let Some(refresh_token) = current.tokens.refresh_token.clone() else {
                let reason = if integration.refreshes() {
                    "the connection has no refresh token (the integration does not request `offline_access`); connect again"
                } else {
                    "the provider rejected the API key; create the connection again with a valid key (POST /connections)"
                };
                return Err(self.give_up(&current, reason).await?);
            };
            let now = Utc::now();
            let lease_until = now + chrono::Duration::from_std(LEASE).expect("small duration");
            let lease = self
                .store
                .acquire_refresh_lease(key, &self.owner, lease_until, now)
                .await?;
            if lease == RefreshLease::TakenOver {
                tracing::warn!(integration = %key.integration, connection_id = %key.connection_id, "the previous refresh of this connection was interrupted (its process stopped before releasing the refresh lease); refreshing once with the stored refresh token");
                after_interrupted = true;
            }
            if !lease.taken() {
                if waited_since.elapsed() > LEASE * 2 {
                    return Err(RefreshError::Transient(
                        "another process holds the refresh lease".to_owned(),
                    ));
                }
                tokio::time::sleep(LEASE_POLL).await;
                continue;
            }
            // Another process may have refreshed and released the lease between our read and
            // our taking it; redeeming the refresh token we read would then waste a token
            // request on a superseded grant. Look again now that nobody else can refresh.
            let unchanged = self
                .load(key)
                .await?
                .is_some_and(|again| again.token_version == current.token_version);
            if !unchanged {
                self.store.release_refresh_lease(key, &self.owner).await?;
                continue;
            }
            // Tokens this process redeemed earlier but could not store go in first: redeeming
            // the refresh token again would waste it, or be refused by a provider that rotates.
            let outcome = match self.take_unsaved(&current) {
                Some(update) => self.store_tokens(&current, update).await,
                None => self.redeem(integration, &current, &refresh_token).await,
            };
            self.store.release_refresh_lease(key, &self.owner).await?;
            metrics::token_refresh(&key.integration, refresh_outcome(&outcome));
            if let Some((succeeded, summary)) = refresh_summary(&outcome) {
                activity::record(
                    self.store.as_ref(),
                    ActivityKind::TokenRefresh,
                    succeeded,
                    Some(key),
                    summary,
                    None,
                )
                .await;
            }
            match outcome {
                Ok(Some(updated)) => {
                    tracing::info!(integration = %key.integration, connection_id = %key.connection_id, version = updated.token_version, "token refreshed");
                    credential_watch::accepted(
                        self.store.as_ref(),
                        self.webhooks.as_ref(),
                        &key.integration,
                    )
                    .await;
                    self.announce_recovery(key).await;
                    return Ok(self.remember(updated));
                }
                // Another process stored newer tokens between our read and our write.
                Ok(None) => continue,
                Err(error) => match error.kind() {
                    OAuthErrorKind::Transient if transient_failures + 1 < TRANSIENT_ATTEMPTS => {
                        transient_failures += 1;
                        let delay = TRANSIENT_BACKOFF * 2u32.pow(transient_failures - 1);
                        tracing::warn!(integration = %key.integration, connection_id = %key.connection_id, %error, ?delay, "token refresh failed temporarily; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    OAuthErrorKind::Transient => {
                        tracing::warn!(integration = %key.integration, connection_id = %key.connection_id, %error, "token refresh failed temporarily");
                        let error = RefreshError::Transient(error.to_string());
                        self.announce_failure(key, &error).await;
                        return Err(error);
                    }
                    OAuthErrorKind::IntegrationMisconfigured => {
                        tracing::error!(integration = %key.integration, %error, "token refresh refused: the integration is misconfigured");
                        let own_credential = error.rejects_client_credential();
                        let error = RefreshError::Misconfigured(error.to_string());
                        if own_credential {
                            // Every credential was refused: the integration's problem, announced
                            // once for all its connections, none of which needs a reconnect.
                            credential_watch::refused(
                                self.store.as_ref(),
                                self.webhooks.as_ref(),
                                &key.integration,
                                &error.to_string(),
                            )
                            .await;
                        } else {
                            self.announce_failure(key, &error).await;
                        }
                        return Err(error);
                    }
                    _ => {
                        // The grant was refused. If someone refreshed meanwhile, the refused
                        // refresh token was an old one: use their tokens. Otherwise give up.
                        if let Some(again) = self.load(key).await?
                            && again.token_version != current.token_version
                        {
                            return Ok(again);
                        }
                        let reason = if after_interrupted {
                            interrupted_reason(&error)
                        } else {
                            error.to_string()
                        };
                        return Err(self.give_up(&current, &reason).await?);
                    }
                },
            }
        }
    }

    /// Redeems the refresh token and stores the result if nobody else stored newer tokens.
    async fn redeem(
        &self,
        integration: &Integration,
        current: &Connection,
        refresh_token: &SecretString,
    ) -> Result<Option<Connection>, OAuthError> {
        let tokens = integration
            .oauth()?
            .refresh(&current.connection_config, refresh_token, None)
            .await?;
        crash_point::reached("refresh.after_answer");
        let update = TokenUpdate {
            access_token: tokens.access_token,
            // None keeps the stored refresh token, for providers that do not rotate it.
            refresh_token: tokens.refresh_token,
            id_token: tokens.id_token,
            expires_at: tokens.expires_at,
            scopes: tokens.scopes,
        };
        self.store_tokens(current, update).await
    }

    /// Stores tokens redeemed for `current` if nobody else stored newer ones. When the store
    /// refuses (a full disk, the database away), the tokens are kept in memory for the next
    /// attempt instead of being lost: the provider may have revoked the refresh token they
    /// replace.
    async fn store_tokens(
        &self,
        current: &Connection,
        update: TokenUpdate,
    ) -> Result<Option<Connection>, OAuthError> {
        let kept = update.clone();
        match self.store.update_tokens(current, update, Utc::now()).await {
            Ok(updated) => {
                crash_point::reached("refresh.after_store");
                Ok(updated)
            }
            Err(error) => {
                tracing::error!(%error, "storing refreshed tokens failed; they are kept in memory for the next attempt");
                self.unsaved
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(current.key.clone(), (current.token_version, kept));
                Err(OAuthError::local(
                    OAuthErrorKind::Transient,
                    plugboard_core::oauth::Stage::Refresh,
                    "the refreshed tokens could not be stored yet",
                ))
            }
        }
    }

    /// The tokens redeemed for `current` that the store refused, if they still replace its
    /// version (another process may have stored newer ones since, which makes them stale).
    fn take_unsaved(&self, current: &Connection) -> Option<TokenUpdate> {
        let (version, update) = self
            .unsaved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&current.key)?;
        (version == current.token_version).then_some(update)
    }

    /// Marks the connection as needing a reconnect, and stops trying.
    async fn give_up(
        &self,
        current: &Connection,
        reason: &str,
    ) -> Result<RefreshError, StoreError> {
        let marked = self
            .store
            .mark_needs_reconnect(&current.key, current.token_version, reason, Utc::now())
            .await?;
        tracing::warn!(integration = %current.key.integration, connection_id = %current.key.connection_id, %reason, marked, "connection needs a reconnect");
        self.forget(&current.key);
        let error = RefreshError::NeedsReconnect(reason.to_owned());
        // Unmarked, the failure was stale: someone stored newer credentials meanwhile.
        if marked {
            self.announce_failure(&current.key, &error).await;
        }
        Ok(error)
    }

    /// `connection.refresh_failed`, if refreshes of the connection were working until now.
    async fn announce_failure(&self, key: &ConnectionKey, error: &RefreshError) {
        if self.changed_failing(key, Some(Utc::now())).await {
            self.announce(
                "connection.refresh_failed",
                json!({"integration": key.integration, "connection_id": key.connection_id, "error": error.to_string()}),
            );
        }
    }

    /// `connection.recovered`, if refreshes of the connection were failing until now.
    async fn announce_recovery(&self, key: &ConnectionKey) {
        if self.changed_failing(key, None).await {
            self.announce(
                "connection.recovered",
                json!({"integration": key.integration, "connection_id": key.connection_id}),
            );
        }
    }

    /// Whether this call changed the connection's failing state. Without webhooks nobody
    /// listens, so the store is not written either.
    async fn changed_failing(
        &self,
        key: &ConnectionKey,
        since: Option<chrono::DateTime<Utc>>,
    ) -> bool {
        if self.webhooks.is_none() {
            return false;
        }
        match self.store.set_refresh_failing(key, since).await {
            Ok(changed) => changed,
            Err(error) => {
                tracing::warn!(integration = %key.integration, connection_id = %key.connection_id, %error, "recording the connection's refresh state failed; its event is not sent");
                false
            }
        }
    }

    fn announce(&self, event: &str, data: serde_json::Value) {
        if let Some(webhooks) = &self.webhooks {
            webhooks.send(event, data);
        }
    }

    fn lock_for(&self, key: &ConnectionKey) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Drops the connection's lock from the map once nobody else holds or waits for it, so the
    /// map does not grow with every connection ever refreshed.
    fn release_lock(&self, key: &ConnectionKey, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Ours and the map's: nobody else has a clone, and new clones are made under this mutex.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(key);
        }
    }
}

/// Whether the connection's token expires within its [`refresh_margin`] of `now`, and so
/// should be refreshed before use. A token without an expiry never expires.
fn expires_within(connection: &Connection, max_margin: Duration, now: DateTime<Utc>) -> bool {
    let Some(expires_at) = connection.tokens.expires_at else {
        return false;
    };
    let margin = refresh_margin(connection, max_margin);
    expires_at <= now + chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX)
}

/// `max_margin`, or a quarter of the token's lifetime as issued when that is less.
///
/// A fixed margin at least as long as the lifetime would refresh the token on every use: one
/// token grant per proxied request. The lifetime is not stored; `expires_at - updated_at`
/// gives it, since `updated_at` is set whenever tokens are written. Anything else that
/// touches `updated_at` only makes the margin smaller, never causes extra refreshes.
fn refresh_margin(connection: &Connection, max_margin: Duration) -> Duration {
    let Some(expires_at) = connection.tokens.expires_at else {
        return max_margin;
    };
    let lifetime = (expires_at - connection.updated_at)
        .to_std()
        .unwrap_or(Duration::ZERO);
    max_margin.min(lifetime / LIFETIME_FRACTION)
}

/// How a redemption ended, as the activity log says it; nothing when another process's
/// refresh superseded it (that one is recorded by its own process).
fn refresh_summary<T>(outcome: &Result<Option<T>, OAuthError>) -> Option<(bool, String)> {
    match outcome {
        Ok(Some(_)) => Some((true, "token refreshed".to_owned())),
        Ok(None) => None,
        Err(error) => Some((false, format!("token refresh failed: {error}"))),
    }
}

/// How a redemption ended, as the refresh metric labels it.
fn refresh_outcome<T>(outcome: &Result<Option<T>, OAuthError>) -> &'static str {
    match outcome {
        Ok(Some(_)) => "success",
        Ok(None) => "superseded",
        Err(error) => match error.kind() {
            OAuthErrorKind::Transient => "transient_error",
            OAuthErrorKind::IntegrationMisconfigured => "misconfigured",
            _ => "refused",
        },
    }
}

/// Why a connection needs a reconnect when its refresh token is refused right after an
/// interrupted refresh: most likely that refresh redeemed it, the provider rotated it (revoking
/// the one stored here) and the new one was lost with the process. Retrying cannot help and,
/// with providers that revoke a whole token family on reuse, would only make it worse.
fn interrupted_reason(error: &OAuthError) -> String {
    format!(
        "a refresh was interrupted: an earlier token refresh stopped (its process crashed or \
         stalled) after the provider may have issued new tokens and before they were stored, \
         and the provider now refuses the stored refresh token ({error}); connect again"
    )
}

fn needs_reconnect(connection: &Connection) -> RefreshError {
    RefreshError::NeedsReconnect(
        connection
            .status_reason
            .clone()
            .unwrap_or_else(|| "the connection needs to be reconnected".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use plugboard_store::Tokens;

    use super::*;

    /// A connection whose token was issued at `now - used` to live `lifetime` (seconds).
    fn connection(now: DateTime<Utc>, lifetime: Option<i64>, used: i64) -> Connection {
        let issued = now - chrono::Duration::seconds(used);
        let example = plugboard_store::testing::connection("microsoft", "c1");
        Connection {
            tokens: Tokens {
                expires_at: lifetime.map(|secs| issued + chrono::Duration::seconds(secs)),
                ..example.tokens.clone()
            },
            created_at: issued,
            updated_at: issued,
            ..example
        }
    }

    #[test]
    fn margin_follows_short_token_lifetimes() {
        let now = Utc::now();
        let expiring =
            |lifetime, used| expires_within(&connection(now, lifetime, used), REFRESH_MARGIN, now);
        // A 60 s token: refreshed only in its last quarter (15 s), not on every use.
        assert!(!expiring(Some(60), 10), "60 s token, 50 s left");
        assert!(expiring(Some(60), 50), "60 s token, 10 s left");
        // A 5-minute token no longer counts as expiring the moment it is issued.
        assert!(!expiring(Some(300), 0), "5 min token, just issued");
        assert!(expiring(Some(300), 240), "5 min token, 1 min left");
        // Long tokens keep the full 5-minute margin.
        assert!(expiring(Some(3600), 3600 - 240), "1 h token, 4 min left");
        assert!(!expiring(Some(3600), 3600 - 360), "1 h token, 6 min left");
        // Expired tokens are refreshed, whatever their lifetime.
        assert!(expiring(Some(60), 61));
        assert!(expiring(Some(0), 0));
        // Without an expiry, never refreshed for expiry.
        assert!(!expiring(None, 0));
        assert!(!expiring(None, 1_000_000));
    }

    #[test]
    fn odd_timestamps_do_not_cause_refreshes() {
        let now = Utc::now();
        // `updated_at` after `expires_at` (touched later): no margin, refreshed when expired.
        let mut c = connection(now, Some(60), 0);
        c.updated_at = now + chrono::Duration::seconds(120);
        assert_eq!(refresh_margin(&c, REFRESH_MARGIN), Duration::ZERO);
        assert!(!expires_within(&c, REFRESH_MARGIN, now));
        assert!(expires_within(
            &c,
            REFRESH_MARGIN,
            now + chrono::Duration::seconds(60)
        ));
    }
}
