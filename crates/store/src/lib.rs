//! What Plugboard persists, behind one interface with two backends: SQLite, the embedded
//! default (one file; several processes may share it on one machine), and PostgreSQL, for
//! several `plugboard serve` replicas sharing one database. Nothing outside this crate knows
//! which one runs: [`open`] picks it from a [`Location`], and the host holds an
//! `Arc<dyn Store>`.
//!
//! What every backend shares lives here, once: sealing and opening secrets ([`sealing`]: the
//! [`KeyRing`] encrypts each secret bound to its row), the content hash and de-duplication of
//! a batch of records ([`batch`]), key rotation's passes ([`rotation`]), the column encodings
//! ([`columns`]), reading rows into the store's types, and moving every table to another
//! store ([`copy`]). Each backend module holds only its SQL and its migrations.
//!
//! Anything two replicas could race on is decided by the database:
//! - token refresh stays single through a refresh lease per connection
//!   ([`Store::acquire_refresh_lease`], a compare-and-set, never a transaction held across the
//!   provider's answer) and a compare-and-swap on the connection's `token_version`
//!   ([`Store::update_tokens`]);
//! - a run lease per connection and sync ([`Store::start_run`]) keeps sync runs single, and a
//!   run the schedule made due is claimed once (`start_run`'s `unless_succeeded_since`);
//! - the records cursor's order comes from a clock per connection and model kept in the
//!   database and advanced under a row lock by every write, so stamps follow commit order
//!   whichever process writes;
//! - a change log of connections ([`Store::connection_changes`]) tells every process which
//!   connections changed elsewhere.

pub mod batch;
pub mod columns;
mod connections;
mod console;
pub mod copy;
pub mod crash_hook;
pub mod crypto;
mod integrations;
mod postgres;
mod records;
pub mod rotation;
mod rows;
mod schema;
pub mod sealing;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::crypto::{CryptoError, KeyRing};

pub use connections::{
    ConnectSession, Connection, ConnectionKey, ConnectionStatus, Flow, NewConnection, OAuthState,
    RefreshLease, Rotation, TokenUpdate, Tokens,
};
pub use console::{
    ACTIVITY_KEPT, Activity, ActivityFilter, ActivityKind, ConnectionFilter, ConnectionHealth,
    ConnectionSummary, ConnectionSummaryPage, MAX_CONSOLE_LIMIT, NewActivity, RecordCount,
};
pub use integrations::{CredentialFailure, CredentialNotice};
pub use postgres::PostgresStore;
pub use records::{
    MAX_RECORDS_LIMIT, RecordAction, RecordCursor, RecordJson, RecordPage, RecordQuery, RunCounts,
    RunLog, RunStatus, SaveOutcome, StoredRecord, SyncRun, SyncState, WebhookDelivery,
};
pub use schema::SchemaVersion;
pub use sqlite::SqliteStore;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connection refused, timed out, dropped): the caller
    /// answers 503 and tries again later; nothing was written.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A transaction lost a race with another (a serialization failure or a deadlock) more
    /// often than it is retried; nothing was written.
    #[error("the store is busy: {0}")]
    Conflict(String),
    /// The database refused to write: its disk is full, or it is read-only (a file system
    /// remounted read-only after errors, a PostgreSQL standby after a failover). The write's
    /// transaction rolled back whole and reads still work, so the caller answers 503 for this
    /// write only; the same write succeeds once space or write access is back, without a
    /// restart. `reason` is one of a few fixed phrases, never the database's own message, so it
    /// can be shown to callers.
    #[error("the store refused a write: {reason}")]
    WritesRefused { reason: &'static str },
    #[error("database error: {0}")]
    Database(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the failure passes by itself (the database away, busy, full or read-only)
    /// rather than being a fault of the data or the code: the caller may try again later.
    pub fn is_passing(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Conflict(_) | StoreError::WritesRefused { .. }
        )
    }
}

/// Why the database refused a write, when `error` is such a refusal. SQLite's extended result
/// codes (<https://www.sqlite.org/rescode.html>): `SQLITE_FULL` is what its file layer answers
/// to `ENOSPC`; `SQLITE_READONLY*` a file or directory it may not write; and the I/O errors of
/// writing, syncing and truncating are what a file system remounted read-only (`EROFS`) or
/// failing gives. PostgreSQL's SQLSTATEs: class 53 (insufficient resources, but for
/// `too_many_connections`, which is [`StoreError::Unavailable`]) and 25006
/// (`read_only_sql_transaction`: a standby, or `default_transaction_read_only`).
fn write_refusal(error: &(dyn sqlx::error::DatabaseError + 'static)) -> Option<&'static str> {
    const SQLITE_READONLY: i32 = 8;
    const SQLITE_IOERR: i32 = 10;
    const SQLITE_FULL: i32 = 13;
    /// `SQLITE_IOERR_WRITE`, `_FSYNC`, `_DIR_FSYNC`, `_TRUNCATE`.
    const SQLITE_IOERR_OF_WRITING: [i32; 4] = [778, 1034, 1290, 1546];
    let code = error.code()?;
    if error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
    {
        let extended: i32 = code.parse().ok()?;
        return match extended & 0xff {
            SQLITE_FULL => Some("the disk is full"),
            SQLITE_READONLY => Some("the database file is read-only"),
            SQLITE_IOERR if SQLITE_IOERR_OF_WRITING.contains(&extended) => {
                Some("the disk failed a write (the file system may be read-only)")
            }
            _ => None,
        };
    }
    match &*code {
        "53100" => Some("the database server's disk is full"),
        "53200" => Some("the database server is out of memory"),
        "25006" => Some("the database is read-only (a standby, or set to read-only)"),
        "53300" => None,
        code if code.starts_with("53") => Some("the database server is out of resources"),
        _ => None,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && let Some(reason) = write_refusal(db.as_ref())
        {
            return StoreError::WritesRefused { reason };
        }
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            // The server going away mid-session (shutdown, administrator command, crash).
            sqlx::Error::Database(ref db)
                if db.code().is_some_and(|code| {
                    code.starts_with("08") || code.starts_with("57P") || code == "53300"
                }) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(ref db)
                if db
                    .code()
                    .is_some_and(|code| code == "40001" || code == "40P01") =>
            {
                StoreError::Conflict(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// Where the store lives, from `[store] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file, created with its directory when missing.
    Sqlite { path: PathBuf },
    /// A PostgreSQL database; `url` is passed to the driver as given (query options such as
    /// `sslmode` included).
    Postgres { url: String, pool_size: u32 },
}

/// The forms [`Location::from_url`] takes, for messages.
pub const URL_FORMS: &str =
    "\"sqlite://path/to/plugboard.db\" or \"postgres://user@host/database\"";

impl Location {
    /// The location a database URL names: `sqlite://PATH` (or `sqlite:PATH`; query options
    /// ignored), or `postgres://…` / `postgresql://…` passed to the driver as given, with
    /// `pool_size` connections. The error says what is wrong without repeating a password.
    pub fn from_url(text: &str, pool_size: u32) -> Result<Location, String> {
        if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("names no file; expected \"sqlite://path/to/plugboard.db\"".to_owned());
            }
            Ok(Location::Sqlite {
                path: PathBuf::from(path),
            })
        } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            // Not echoed when unparsable: its password could not be taken out.
            url::Url::parse(text).map_err(|e| format!("is not a valid PostgreSQL URL: {e}"))?;
            Ok(Location::Postgres {
                url: text.to_owned(),
                pool_size,
            })
        } else {
            Err(format!(
                "`{}` is not a supported database URL; expected {URL_FORMS}",
                columns::redact_url(text)
            ))
        }
    }

    /// The location without credentials, for messages and logs.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite { path } => format!("sqlite://{}", path.display()),
            Location::Postgres { url, .. } => columns::redact_url(url),
        }
    }
}

/// Opens the store at `location`, creating its schema or upgrading it in place. Record
/// payloads are sealed unless `seal_records` is false (payloads already stored stay readable
/// either way).
pub async fn open(
    location: &Location,
    keys: Arc<KeyRing>,
    seal_records: bool,
) -> StoreResult<Arc<dyn Store>> {
    Ok(match location {
        Location::Sqlite { path } => Arc::new(
            SqliteStore::open(path, keys)
                .await?
                .seal_records(seal_records),
        ),
        Location::Postgres { url, pool_size } => Arc::new(
            PostgresStore::open(url, *pool_size, keys)
                .await?
                .seal_records(seal_records),
        ),
    })
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Closes the store's connections once the process is done with it. SQLite then copies its
    /// write-ahead log into the database file and removes it, instead of leaving the next
    /// process that opens the store to read the whole log first.
    async fn close(&self);

    /// Where the database's schema stands against this build's migrations: the readiness check
    /// of a server, which also tells whether the database answers at all.
    async fn schema_version(&self) -> StoreResult<SchemaVersion>;

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
    /// already `owner`'s; says whether it was taken over from another owner who never released
    /// it (a refresh interrupted).
    async fn acquire_refresh_lease(
        &self,
        key: &ConnectionKey,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshLease>;

    async fn release_refresh_lease(&self, key: &ConnectionKey, owner: &str) -> StoreResult<()>;

    /// Records that refreshing the connection's token fails (`Some(since)`) or works again
    /// (`None`). Whether this changed the stored state: a compare-and-swap, so each failure and
    /// each recovery is announced once, however many requests or replicas saw it.
    async fn set_refresh_failing(
        &self,
        key: &ConnectionKey,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<bool>;

    /// Claims the sending of one credential expiry notice: whether this call inserted it, so
    /// of every process checking the same expiry, exactly one sends the notice.
    async fn claim_credential_notice(
        &self,
        notice: &CredentialNotice,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Records that the provider refuses the integration's every client credential
    /// (`Some((reason, since))`) or accepts one again (`None`). Whether this changed the stored
    /// state: a compare-and-swap, so the failure and the recovery are each announced once,
    /// however many refreshes or replicas saw them.
    async fn set_credential_failing(
        &self,
        integration: &str,
        failure: Option<(&str, DateTime<Utc>)>,
    ) -> StoreResult<bool>;

    /// The integrations whose client credential is refused, by name.
    async fn credential_failures(&self) -> StoreResult<Vec<CredentialFailure>>;

    async fn create_connect_session(
        &self,
        token_hash: &str,
        session: &ConnectSession,
    ) -> StoreResult<()>;

    /// The unexpired session with this token hash, left in place: the connect page shows what
    /// the session asks for without using up the link, which only starting the flow does.
    async fn connect_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>>;

    /// Removes the unexpired session with this token hash and returns it: a connect link
    /// starts one flow, so a leaked link cannot bind the connection to another account later.
    async fn take_connect_session(
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

    /// Removes the state and returns it, if it exists, is unexpired and belongs to the browser
    /// with this cookie hash. A state can be taken once, however many callbacks race for it;
    /// a callback from another browser leaves it for the browser that started the flow.
    async fn take_oauth_state(
        &self,
        state_hash: &str,
        browser_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<TakenState>;

    /// Deletes expired sessions (connect and dashboard sessions) and states, change-log
    /// entries older than an hour and activity entries older than [`ACTIVITY_KEPT`]; how many
    /// sessions and states.
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
    ///
    /// With `unless_succeeded_since`, also `None` when the sync's last run succeeded and started
    /// after that time (the schedule's condition for "not due"): replicas that each found a
    /// scheduled run due make it once between them, however their claims interleave with the
    /// run itself, while a sync whose last run failed stays due.
    async fn start_run(
        &self,
        connection: &str,
        sync: &str,
        mode: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        unless_succeeded_since: Option<DateTime<Utc>>,
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

    /// Records a delivery, or its latest attempt; the body is kept from the first save.
    async fn save_webhook_delivery(&self, delivery: &WebhookDelivery) -> StoreResult<()>;

    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>>;

    /// One delivery with its body, so the dashboard can send the same signed event again.
    async fn webhook_delivery(&self, id: &str) -> StoreResult<Option<WebhookDelivery>>;

    // The operator dashboard (see [`console`]).

    /// Starts a dashboard sign-in, kept by the SHA-256 of its cookie: in the database rather
    /// than in one process, so every replica knows it and signing out ends it everywhere.
    async fn create_console_session(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Whether the sign-in with this hash exists and has not expired: checked on every
    /// dashboard request, so a session signed out on any replica is refused on all of them.
    async fn console_session_valid(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Ends a sign-in (signing out); unknown hashes are ignored, so signing out twice is fine.
    async fn delete_console_session(&self, token_hash: &str) -> StoreResult<()>;

    /// A page of connections as the dashboard lists them, filtered (health included) by the
    /// database: their health comes from flags kept on each sync's state, and no credential is
    /// read or decrypted, so a page costs the same with 10,000 connections as with ten.
    async fn connection_summaries(
        &self,
        filter: &ConnectionFilter,
    ) -> StoreResult<ConnectionSummaryPage>;

    /// How many connections of each integration have each health, for the overview; only
    /// non-zero counts, ordered by integration and health.
    async fn connection_health_counts(&self) -> StoreResult<Vec<(String, ConnectionHealth, u64)>>;

    /// The connection's live and deleted records per model, by model (models without records
    /// left out): the dashboard's records tab. Read from counts that every write of records
    /// keeps in its transaction, not counted, so it costs the same with a million records as
    /// with ten.
    async fn record_counts(&self, connection: &str) -> StoreResult<Vec<RecordCount>>;

    /// Notes an operation in the activity log, the dashboard's one view of what the deployment
    /// did (refreshes, runs, actions, deliveries, connections made and deleted) across
    /// replicas.
    async fn record_activity(&self, entry: &NewActivity) -> StoreResult<()>;

    /// Activity entries matching the filter, newest first (by id, which follows insertion).
    async fn activity(&self, filter: &ActivityFilter) -> StoreResult<Vec<Activity>>;

    // Changes other replicas must see.

    /// Connections changed (saved, deleted, marked for reconnect, a sync paused, resumed or
    /// given a frequency) after position `after` of the change log, by any process sharing the
    /// database, oldest first, and the position to ask from next time. Position 0 asks for
    /// nothing but the current position: a process starts watching from now.
    async fn connection_changes(&self, after: i64) -> StoreResult<ConnectionChanges>;

    // Moving a store to another database (see [`copy`]).

    /// How many rows the table holds (for a crawl's seen log: how many crawls have one).
    async fn count_rows(&self, table: &copy::Table) -> StoreResult<u64>;

    /// Up to `limit` of the table's rows as stored, in key order, after the key `after` (the
    /// leading cells of the last row of the previous page).
    async fn read_rows(
        &self,
        table: &copy::Table,
        after: Option<&copy::Row>,
        limit: u32,
    ) -> StoreResult<Vec<copy::Row>>;

    /// Inserts rows that [`Store::read_rows`] read from a store of either backend, in one
    /// transaction.
    async fn write_rows(&self, table: &copy::Table, rows: &[copy::Row]) -> StoreResult<()>;
}

/// What [`Store::take_oauth_state`] found.
#[derive(Debug, Clone)]
pub enum TakenState {
    Taken(OAuthState),
    /// The state is pending, but for another browser: left in place.
    OtherBrowser,
    /// No such unexpired state: unknown, expired or already used.
    Unknown,
}

/// How long the connection change log keeps an entry (milliseconds): far longer than any
/// process takes to read it.
pub(crate) const CHANGES_KEPT_MS: i64 = 3_600_000;

/// What [`Store::connection_changes`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionChanges {
    pub keys: Vec<ConnectionKey>,
    /// The log's position after these changes.
    pub position: i64,
}
