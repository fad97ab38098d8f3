//! The SQLite backend: one file, WAL journal, embedded migrations.
//!
//! Writes go through a pool of one connection, so SQLite never answers `SQLITE_BUSY` to a
//! transaction that read before it wrote; reads use a separate read-only pool and run
//! alongside (WAL lets readers see the last committed state while a write is in progress).

mod changes;
mod connections;
mod console;
mod copy;
mod integrations;
mod records;
mod rotation;
mod runs;
mod sessions;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use self::runs::SyncStateColumn;
use crate::RefreshLease;
use crate::crypto::KeyRing;
use crate::rotation::reencrypt_all;
use crate::sealing::Sealer;
use crate::{
    Activity, ActivityFilter, ConnectSession, Connection, ConnectionChanges, ConnectionFilter,
    ConnectionHealth, ConnectionKey, ConnectionSummaryPage, NewActivity, NewConnection, OAuthState,
    RecordCount, RecordJson, RecordPage, RecordQuery, Rotation, RunCounts, RunLog, RunStatus,
    SaveOutcome, SchemaVersion, Store, StoreError, StoreResult, SyncRun, SyncState, TakenState,
    TokenUpdate, WebhookDelivery,
};

/// The migrations, in order: each file of `migrations/` once, by its number.
fn migrator() -> Migrator {
    let migration = |version: i64, name: &str, sql: &'static str| {
        Migration::new(
            version,
            name.to_owned().into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(1, "initial", include_str!("migrations/0001_initial.sql")),
        migration(
            2,
            "syncs and records",
            include_str!("migrations/0002_syncs_records.sql"),
        ),
        migration(3, "replicas", include_str!("migrations/0003_replicas.sql")),
        migration(
            4,
            "crawl seen log",
            include_str!("migrations/0004_crawl_seen.sql"),
        ),
        migration(
            5,
            "record clocks and connection changes",
            include_str!("migrations/0005_clocks_changes.sql"),
        ),
        migration(
            6,
            "operator dashboard",
            include_str!("migrations/0006_console.sql"),
        ),
        migration(
            7,
            "record counts",
            include_str!("migrations/0007_record_counts.sql"),
        ),
        migration(
            8,
            "integration states",
            include_str!("migrations/0008_integration_states.sql"),
        ),
    ])
}

/// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`). A deferred
/// transaction that reads first and then writes cannot wait for another process's write: SQLite
/// answers "database is locked" at once, since its snapshot may be stale. Taking the lock first
/// makes it wait (up to the busy timeout) like any single write.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    sealer: Sealer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path, keys: Arc<KeyRing>) -> StoreResult<SqliteStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Database(format!("cannot create `{}`: {e}", parent.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Overwrite deleted and replaced content, so an old ciphertext does not linger in
            // free pages after its row was deleted or re-encrypted.
            .pragma("secure_delete", "on");
        // Creating the file, switching it to WAL and migrating it happen one process at a time.
        let setup = lock_for_setup(path).await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .after_release(|connection, _| Box::pin(still_usable(connection)))
            .connect_with(writer_options(options.clone()))
            .await?;
        restrict_permissions(path);
        migrator()
            .run(&writer)
            .await
            .map_err(|e| StoreError::Database(format!("migrating the database failed: {e}")))?;
        drop(setup);
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            writer,
            reader,
            sealer: Sealer::new(keys),
        })
    }

    /// Seals record payloads (`true`, the default) or stores them as plain JSON from now on.
    pub fn seal_records(mut self, seal: bool) -> Self {
        self.sealer.set_seal_records(seal);
        self
    }
}

/// Holds other processes off setting up the same store until dropped. SQLite has no lock
/// that lasts across sqlx's migration transactions, so two processes starting together on a
/// new file both found a migration missing and the second failed applying it ("table …
/// already exists"), or met the first switching the file to WAL ("database is locked"). An
/// exclusive `flock` on the database's directory (never on the database file: closing any
/// descriptor of that file would drop SQLite's own POSIX locks in this process) makes the
/// second wait, then find nothing to do.
async fn lock_for_setup(path: &Path) -> StoreResult<std::fs::File> {
    let directory = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&directory)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Database(format!("locking the store for set-up: {e}")))?;
    locked.map_err(|e| StoreError::Database(format!("locking the store's directory: {e}")))
}

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn schema_version(&self) -> StoreResult<SchemaVersion> {
        let applied: Option<i64> = sqlx::query_scalar(crate::schema::APPLIED)
            .fetch_one(&self.reader)
            .await?;
        Ok(SchemaVersion::of(applied, &migrator()))
    }

    async fn save_connection(
        &self,
        new: NewConnection,
        now: DateTime<Utc>,
    ) -> StoreResult<Connection> {
        self.save_connection_sqlite(new, now).await
    }

    async fn connection(&self, key: &ConnectionKey) -> StoreResult<Option<Connection>> {
        self.connection_sqlite(key).await
    }

    async fn connections(&self, integration: Option<&str>) -> StoreResult<Vec<Connection>> {
        self.connections_sqlite(integration).await
    }

    async fn delete_connection(&self, key: &ConnectionKey) -> StoreResult<bool> {
        self.delete_connection_sqlite(key).await
    }

    async fn update_tokens(
        &self,
        current: &Connection,
        update: TokenUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>> {
        self.update_tokens_sqlite(current, update, now).await
    }

    async fn mark_needs_reconnect(
        &self,
        key: &ConnectionKey,
        token_version: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.mark_needs_reconnect_sqlite(key, token_version, reason, now)
            .await
    }

    async fn acquire_refresh_lease(
        &self,
        key: &ConnectionKey,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshLease> {
        self.acquire_refresh_lease_sqlite(key, owner, until, now)
            .await
    }

    async fn release_refresh_lease(&self, key: &ConnectionKey, owner: &str) -> StoreResult<()> {
        self.release_refresh_lease_sqlite(key, owner).await
    }

    async fn set_refresh_failing(
        &self,
        key: &ConnectionKey,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        self.set_refresh_failing_sqlite(key, since).await
    }

    async fn create_connect_session(
        &self,
        token_hash: &str,
        session: &ConnectSession,
    ) -> StoreResult<()> {
        self.create_connect_session_sqlite(token_hash, session)
            .await
    }

    async fn connect_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>> {
        self.connect_session_sqlite(token_hash, now).await
    }

    async fn take_connect_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>> {
        self.take_connect_session_sqlite(token_hash, now).await
    }

    async fn create_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.create_oauth_state_sqlite(state_hash, state, now).await
    }

    async fn take_oauth_state(
        &self,
        state_hash: &str,
        browser_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<TakenState> {
        self.take_oauth_state_sqlite(state_hash, browser_hash, now)
            .await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.purge_expired_sqlite(now).await
    }

    async fn reencrypt_all(&self) -> StoreResult<Rotation> {
        reencrypt_all(self).await
    }

    async fn save_records(
        &self,
        connection: &str,
        model: &str,
        records: Vec<RecordJson<'_>>,
        now: DateTime<Utc>,
    ) -> StoreResult<SaveOutcome> {
        self.save_records_sqlite(connection, model, records, now)
            .await
    }

    async fn delete_records(
        &self,
        connection: &str,
        model: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.delete_records_sqlite(connection, model, ids, now)
            .await
    }

    async fn begin_crawl(&self, connection: &str, model: &str) -> StoreResult<()> {
        self.begin_crawl_sqlite(connection, model).await
    }

    async fn end_crawl(
        &self,
        connection: &str,
        model: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<u64>> {
        self.end_crawl_sqlite(connection, model, now).await
    }

    async fn records(&self, query: &RecordQuery) -> StoreResult<RecordPage> {
        self.records_sqlite(query).await
    }

    async fn sync_state(&self, connection: &str, sync: &str) -> StoreResult<SyncState> {
        self.sync_state_sqlite(connection, sync).await
    }

    async fn set_checkpoint(
        &self,
        connection: &str,
        sync: &str,
        checkpoint: Option<&serde_json::Value>,
    ) -> StoreResult<()> {
        self.update_sync_state(connection, sync, SyncStateColumn::Checkpoint(checkpoint))
            .await
    }

    async fn set_sync_paused(&self, connection: &str, sync: &str, paused: bool) -> StoreResult<()> {
        self.update_sync_state(connection, sync, SyncStateColumn::Paused(paused))
            .await
    }

    async fn set_sync_frequency(
        &self,
        connection: &str,
        sync: &str,
        frequency_secs: Option<u64>,
    ) -> StoreResult<()> {
        self.update_sync_state(connection, sync, SyncStateColumn::Frequency(frequency_secs))
            .await
    }

    async fn start_run(
        &self,
        connection: &str,
        sync: &str,
        mode: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        unless_succeeded_since: Option<DateTime<Utc>>,
    ) -> StoreResult<Option<String>> {
        self.start_run_sqlite(
            connection,
            sync,
            mode,
            lease_until,
            now,
            unless_succeeded_since,
        )
        .await
    }

    async fn renew_run_lease(&self, run_id: &str, until: DateTime<Utc>) -> StoreResult<bool> {
        self.renew_run_lease_sqlite(run_id, until).await
    }

    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        counts: RunCounts,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.finish_run_sqlite(run_id, status, counts, error, now)
            .await
    }

    async fn fail_interrupted_runs(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.fail_interrupted_runs_sqlite(now).await
    }

    async fn append_run_logs(&self, run_id: &str, logs: &[RunLog]) -> StoreResult<()> {
        self.append_run_logs_sqlite(run_id, logs).await
    }

    async fn run_logs(&self, run_id: &str) -> StoreResult<Vec<RunLog>> {
        self.run_logs_sqlite(run_id).await
    }

    async fn runs(&self, connection: &str, sync: &str, limit: u32) -> StoreResult<Vec<SyncRun>> {
        self.runs_sqlite(connection, sync, limit).await
    }

    async fn save_webhook_delivery(&self, delivery: &WebhookDelivery) -> StoreResult<()> {
        self.save_webhook_delivery_sqlite(delivery).await
    }

    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        self.webhook_deliveries_sqlite(limit).await
    }

    async fn webhook_delivery(&self, id: &str) -> StoreResult<Option<WebhookDelivery>> {
        self.webhook_delivery_sqlite(id).await
    }

    async fn create_console_session(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.create_console_session_sqlite(token_hash, expires_at, now)
            .await
    }

    async fn console_session_valid(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.console_session_valid_sqlite(token_hash, now).await
    }

    async fn delete_console_session(&self, token_hash: &str) -> StoreResult<()> {
        self.delete_console_session_sqlite(token_hash).await
    }

    async fn connection_summaries(
        &self,
        filter: &ConnectionFilter,
    ) -> StoreResult<ConnectionSummaryPage> {
        self.connection_summaries_sqlite(filter).await
    }

    async fn connection_health_counts(&self) -> StoreResult<Vec<(String, ConnectionHealth, u64)>> {
        self.connection_health_counts_sqlite().await
    }

    async fn record_counts(&self, connection: &str) -> StoreResult<Vec<RecordCount>> {
        self.record_counts_sqlite(connection).await
    }

    async fn record_activity(&self, entry: &NewActivity) -> StoreResult<()> {
        self.record_activity_sqlite(entry).await
    }

    async fn activity(&self, filter: &ActivityFilter) -> StoreResult<Vec<Activity>> {
        self.activity_sqlite(filter).await
    }

    async fn count_rows(&self, table: &crate::copy::Table) -> StoreResult<u64> {
        self.count_rows_sqlite(table).await
    }

    async fn read_rows(
        &self,
        table: &crate::copy::Table,
        after: Option<&crate::copy::Row>,
        limit: u32,
    ) -> StoreResult<Vec<crate::copy::Row>> {
        self.read_rows_sqlite(table, after, limit).await
    }

    async fn write_rows(
        &self,
        table: &crate::copy::Table,
        rows: &[crate::copy::Row],
    ) -> StoreResult<()> {
        self.write_rows_sqlite(table, rows).await
    }

    async fn connection_changes(&self, after: i64) -> StoreResult<ConnectionChanges> {
        self.connection_changes_sqlite(after).await
    }

    async fn claim_credential_notice(
        &self,
        notice: &crate::CredentialNotice,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.claim_credential_notice_sqlite(notice, now).await
    }

    async fn set_credential_failing(
        &self,
        integration: &str,
        failure: Option<(&str, DateTime<Utc>)>,
    ) -> StoreResult<bool> {
        self.set_credential_failing_sqlite(integration, failure)
            .await
    }

    async fn credential_failures(&self) -> StoreResult<Vec<crate::CredentialFailure>> {
        self.credential_failures_sqlite().await
    }
}

/// The page cache of the writer connection, in KiB (SQLite's default is 2,000). A sync writes
/// a page of up to 1,000 records per transaction, whose rows and index entries (ids are
/// random, so they land all over the record indexes) did not fit the default: SQLite spilled
/// them to the WAL mid-transaction and read them back. A larger cache writes an initial sync
/// a little faster (16 MiB: about 5 % more of the bare pipeline's throughput in
/// `cargo xtask bench sync`) but fills with the hash index as a model grows, so a sync's
/// memory would grow with its number of records up to the cache's size; this one keeps the
/// growth from 10,000 to 100,000 records under a fifth.
pub(super) const WRITER_CACHE_KIB: i64 = 4 * 1024;
/// The writer's page cache, and that of the temporary index of the ids a crawl saw, while
/// `end_crawl` compares them: a scan reads each page once, and the temporary index is built in
/// order, so a larger cache would only hold more of both, and grow a sync's memory with its
/// number of records (2 MB each, SQLite's default, made the peak of a sync with nothing changed
/// grow by a fifth from 10,000 to 100,000 records; this, by under a sixth).
pub(super) const SCAN_CACHE_KIB: i64 = 500;

/// WAL pages after which a commit copies the WAL into the database (SQLite's default is 1,000).
/// A sync's index pages are rewritten by many transactions (ids are random); each checkpoint
/// copies the pages written since the last one, so with the default an initial sync copied the
/// same index pages again and again and spent a sixth of its time checkpointing. The WAL file
/// is truncated back to this size (4 KiB pages: 64 MiB) after a checkpoint; it is on disk, not
/// in memory.
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// The writer's settings on top of the shared ones.
///
/// `temp_store = memory` keeps statement journals in memory: every multi-row upsert inside a
/// transaction needs one (to undo itself alone if it fails), and on a temporary file, beyond
/// 64 KiB, it cost a `pwrite` for each page the upsert touched, a tenth of an initial sync. A
/// statement journal holds what one statement changes (one upsert of `ROWS_PER_UPSERT` rows),
/// so it stays small. The one query whose temporary data grows with a model, `end_crawl`'s,
/// switches to files while it runs.
fn writer_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
        .pragma("temp_store", "memory")
        .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string())
        .pragma(
            "journal_size_limit",
            (WAL_CHECKPOINT_PAGES * 4096).to_string(),
        )
}

/// Whether the writer connection can go back to the pool after a use. After a write that
/// failed because the disk is full or read-only, SQLite may already have rolled the
/// transaction back by itself; the `ROLLBACK` sqlx then sends fails ("no transaction is
/// active"), and sqlx, counting that transaction as still open, refuses every later `BEGIN`
/// on the connection, so writes would never recover without a restart. Such a connection is
/// closed instead (closing rolls back whatever is left) and the pool opens a new one.
async fn still_usable(connection: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    // Runs the rollback that dropping an unfinished transaction queued.
    connection.ping().await?;
    Ok(!connection.is_in_transaction())
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Best effort: the secrets are encrypted anyway; this keeps the metadata private too.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

/// Upgrades of stores written by earlier releases; what every backend does is in the
/// conformance suite (`tests/conformance`).
#[cfg(test)]
mod tests;
