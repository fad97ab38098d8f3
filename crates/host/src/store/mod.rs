//! What the host persists, behind one trait so a PostgreSQL backend can be added without touching
//! callers.
//!
//! Backends receive and return plaintext secrets as [`SecretString`] and encrypt them with the
//! [`KeyRing`](crate::crypto::KeyRing) themselves, binding each ciphertext to its row, so no
//! caller can forget to encrypt and every backend gets rotation the same way.
//!
//! Two mechanisms keep token refresh single across processes sharing one database: a refresh
//! lease per connection ([`Store::acquire_refresh_lease`]) and a compare-and-swap on the
//! connection's `token_version` ([`Store::update_tokens`]). A run lease per connection and sync
//! ([`Store::start_run`]) keeps sync runs single the same way.

mod records;
mod sqlite;
mod sqlite_records;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;

use crate::crypto::CryptoError;

pub use records::{
    MAX_RECORDS_LIMIT, RecordAction, RecordCursor, RecordJson, RecordPage, RecordQuery, RunCounts,
    RunLog, RunStatus, SaveOutcome, StoredRecord, SyncRun, SyncState, WebhookDelivery,
};
pub use sqlite::SqliteStore;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// How callers name a connection: the integration and the caller-chosen connection id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionKey {
    pub integration: String,
    pub connection_id: String,
}

impl ConnectionKey {
    pub fn new(integration: impl Into<String>, connection_id: impl Into<String>) -> Self {
        ConnectionKey {
            integration: integration.into(),
            connection_id: connection_id.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Ok,
    /// The credentials stopped working for good; only a person reconnecting fixes it.
    NeedsReconnect,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Ok => "ok",
            ConnectionStatus::NeedsReconnect => "needs_reconnect",
        }
    }

    fn parse(text: &str) -> StoreResult<Self> {
        match text {
            "ok" => Ok(ConnectionStatus::Ok),
            "needs_reconnect" => Ok(ConnectionStatus::NeedsReconnect),
            other => Err(StoreError::Corrupt(format!(
                "unknown connection status `{other}`"
            ))),
        }
    }
}

/// A connection's credentials, decrypted.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The OAuth access token, or an API-key connection's key (which has nothing else here):
    /// either way the secret sent with each request, sealed and rotated alike.
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Connection {
    /// Row identity: never reused, bound into the ciphertexts.
    pub id: String,
    pub key: ConnectionKey,
    pub provider: String,
    pub connection_config: BTreeMap<String, String>,
    /// What the provider's account endpoint said about the connected account.
    pub account: Option<Value>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub tokens: Tokens,
    /// Bumped by every change of credentials.
    pub token_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A connection made (or made again) by a completed OAuth flow.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub key: ConnectionKey,
    pub provider: String,
    pub connection_config: BTreeMap<String, String>,
    pub account: Option<Value>,
    pub tokens: Tokens,
}

/// The result of a token refresh. Absent refresh and id tokens keep the stored ones, because
/// providers may not send a new refresh token on every refresh.
#[derive(Debug, Clone)]
pub struct TokenUpdate {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

/// What a connect session token allows: starting one OAuth flow for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSession {
    pub integration: String,
    pub connection_id: String,
    pub connection_config: BTreeMap<String, String>,
    pub return_url: Option<String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Connect,
    AdminConsent,
}

impl Flow {
    fn as_str(self) -> &'static str {
        match self {
            Flow::Connect => "connect",
            Flow::AdminConsent => "admin_consent",
        }
    }

    fn parse(text: &str) -> StoreResult<Self> {
        match text {
            "connect" => Ok(Flow::Connect),
            "admin_consent" => Ok(Flow::AdminConsent),
            other => Err(StoreError::Corrupt(format!("unknown OAuth flow `{other}`"))),
        }
    }
}

/// An OAuth flow in progress, keyed by the hash of its `state` parameter.
#[derive(Debug, Clone)]
pub struct OAuthState {
    pub flow: Flow,
    pub integration: String,
    pub connection_id: String,
    pub connection_config: BTreeMap<String, String>,
    pub return_url: Option<String>,
    pub pkce_verifier: Option<SecretString>,
    /// Hash of the cookie that binds the flow to the browser that started it.
    pub browser_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// What `keys rotate` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rows whose secrets were re-encrypted under the active key.
    pub reencrypted: u64,
    /// Rows already under the active key.
    pub current: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Closes the store's connections once the process is done with it. SQLite then copies its
    /// write-ahead log into the database file and removes it, instead of leaving the next
    /// process that opens the store to read the whole log first.
    async fn close(&self);

    /// Creates the connection, or replaces the credentials, config and account of an existing
    /// one (a reconnect), which also clears `needs_reconnect`.
    async fn save_connection(
        &self,
        new: NewConnection,
        now: DateTime<Utc>,
    ) -> StoreResult<Connection>;

    async fn connection(&self, key: &ConnectionKey) -> StoreResult<Option<Connection>>;

    /// Connections, optionally of one integration, ordered by integration and id.
    async fn connections(&self, integration: Option<&str>) -> StoreResult<Vec<Connection>>;

    /// Whether a connection was deleted.
    async fn delete_connection(&self, key: &ConnectionKey) -> StoreResult<bool>;

    /// Stores refreshed credentials if the connection still has the token version the caller
    /// refreshed from; `None` when another refresh won, so the caller re-reads instead.
    async fn update_tokens(
        &self,
        current: &Connection,
        update: TokenUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>>;

    /// Marks the connection as needing a reconnect, unless its credentials changed since
    /// `token_version` was read (then the failure is stale). Whether it was marked.
    async fn mark_needs_reconnect(
        &self,
        key: &ConnectionKey,
        token_version: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Takes the connection's refresh lease for `owner` until `until`, if it is free, expired or
    /// already `owner`'s.
    async fn acquire_refresh_lease(
        &self,
        key: &ConnectionKey,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    async fn release_refresh_lease(&self, key: &ConnectionKey, owner: &str) -> StoreResult<()>;

    /// Records that refreshing the connection's token fails (`Some(since)`) or works again
    /// (`None`). Whether this changed the stored state: a compare-and-swap, so each failure and
    /// each recovery is announced once, however many requests or replicas saw it.
    async fn set_refresh_failing(
        &self,
        key: &ConnectionKey,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<bool>;

    async fn create_connect_session(
        &self,
        token_hash: &str,
        session: &ConnectSession,
    ) -> StoreResult<()>;

    /// The unexpired session with this token hash.
    async fn connect_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>>;

    async fn create_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Removes the state and returns it, if it exists and is unexpired. A state can be taken
    /// once, however many callbacks race for it.
    async fn take_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OAuthState>>;

    /// Deletes expired sessions and states; how many.
    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Re-encrypts every secret not yet under the key ring's active key.
    async fn reencrypt_all(&self) -> StoreResult<Rotation>;

    // Records. `connection` is always the connection's row identity (`Connection::id`).

    /// Inserts new records and rewrites changed ones in one transaction; a record whose payload
    /// is unchanged is not rewritten (it keeps its `last_modified_at` and action) but still
    /// counts as seen by the crawl in progress. A deleted record saved again is ADDED anew.
    async fn save_records(
        &self,
        connection: &str,
        model: &str,
        records: Vec<RecordJson<'_>>,
        now: DateTime<Utc>,
    ) -> StoreResult<SaveOutcome>;

    /// Marks live records with these ids DELETED; how many were.
    async fn delete_records(
        &self,
        connection: &str,
        model: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Starts a new crawl generation of the model; records saved from now on are seen by it.
    /// Beginning again abandons an unfinished crawl.
    async fn begin_crawl(&self, connection: &str, model: &str) -> StoreResult<()>;

    /// Ends the crawl in progress: every live record it did not see is marked DELETED, in one
    /// transaction. `None` when no crawl is in progress.
    async fn end_crawl(
        &self,
        connection: &str,
        model: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<u64>>;

    /// Records in the order of their last modification; see [`RecordQuery`].
    async fn records(&self, query: &RecordQuery) -> StoreResult<RecordPage>;

    // Sync state and runs.

    /// The sync's state for the connection; defaults when it never ran.
    async fn sync_state(&self, connection: &str, sync: &str) -> StoreResult<SyncState>;

    async fn set_checkpoint(
        &self,
        connection: &str,
        sync: &str,
        checkpoint: Option<&serde_json::Value>,
    ) -> StoreResult<()>;

    async fn set_sync_paused(&self, connection: &str, sync: &str, paused: bool) -> StoreResult<()>;

    /// Sets (or with `None` clears) the connection's own frequency for the sync.
    async fn set_sync_frequency(
        &self,
        connection: &str,
        sync: &str,
        frequency_secs: Option<u64>,
    ) -> StoreResult<()>;

    /// Starts a run unless another run of the sync for the connection holds its unexpired run
    /// lease, in whichever process: takes the lease until `lease_until`, fails the runs an
    /// earlier holder left running (its lease expired, so it died or stalled), and records the
    /// run, in one transaction. The new run's id, or `None` when another run holds the lease.
    async fn start_run(
        &self,
        connection: &str,
        sync: &str,
        mode: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>>;

    /// Extends the run's lease; `false` when the run no longer holds it (it expired and another
    /// run took it over).
    async fn renew_run_lease(&self, run_id: &str, until: DateTime<Utc>) -> StoreResult<bool>;

    /// Records the end of a run and releases its lease.
    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        counts: RunCounts,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Fails every run still marked running whose lease has expired: cut short by a crash of
    /// its process. A run another live replica is running keeps its renewed lease and is left
    /// alone. How many.
    async fn fail_interrupted_runs(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    async fn append_run_logs(&self, run_id: &str, logs: &[RunLog]) -> StoreResult<()>;

    async fn run_logs(&self, run_id: &str) -> StoreResult<Vec<RunLog>>;

    /// The latest runs of a sync for a connection, newest first.
    async fn runs(&self, connection: &str, sync: &str, limit: u32) -> StoreResult<Vec<SyncRun>>;

    async fn save_webhook_delivery(&self, delivery: &WebhookDelivery) -> StoreResult<()>;

    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>>;
}
