//! The PostgreSQL backend: several `plugboard serve` replicas sharing one database.
//!
//! Every decision two replicas could race on is one statement or one short transaction: leases
//! are compare-and-set updates (never a transaction held open across a provider's answer), a
//! row lock orders what must follow commit order (the records clocks, the connection change
//! log), and a transaction that loses a race anyway (a deadlock or a serialization failure) is
//! retried whole ([`retrying`]). Migrations are applied under sqlx's advisory lock, so replicas
//! starting together apply each one once.

mod changes;
mod connections;
mod console;
mod copy;
mod integrations;
mod records;
mod rotation;
mod runs;
mod sessions;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

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

/// How long a request waits for a pooled connection before the store answers
/// [`StoreError::Unavailable`]: an API call answers 503 within seconds while the database is
/// away, instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts at a transaction that keeps losing races (deadlocks, serialization failures).
const ATTEMPTS: u32 = 5;

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
        migration(1, "schema", include_str!("migrations/0001_schema.sql")),
        migration(
            2,
            "operator dashboard",
            include_str!("migrations/0002_console.sql"),
        ),
        migration(
            3,
            "record counts",
            include_str!("migrations/0003_record_counts.sql"),
        ),
        migration(
            4,
            "integration states",
            include_str!("migrations/0004_integration_states.sql"),
        ),
    ])
}

pub struct PostgresStore {
    pool: PgPool,
    sealer: Sealer,
    /// Whether the records table is known to have planner statistics (see
    /// `ensure_statistics`).
    analyzed: std::sync::atomic::AtomicBool,
}

impl PostgresStore {
    /// Connects with up to `pool_size` connections and applies pending migrations. `url` is
    /// any URL the driver takes (`postgres://` or `postgresql://`, with options such as
    /// `sslmode`).
    pub async fn open(url: &str, pool_size: u32, keys: Arc<KeyRing>) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Database(format!("`{}`: {e}", crate::columns::redact_url(url)))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before every use (a round trip per transaction): a connection the
            // server dropped fails its next statement, which answers `Unavailable` once and is
            // not returned to the pool.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrating the database failed: {e}")))?;
        Ok(PostgresStore {
            pool,
            sealer: Sealer::new(keys),
            analyzed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Seals record payloads (`true`, the default) or stores them as plain JSON from now on.
    pub fn seal_records(mut self, seal: bool) -> Self {
        self.sealer.set_seal_records(seal);
        self
    }
}

/// Runs `attempt` (one whole transaction) again while it loses races with other transactions:
/// PostgreSQL aborts one side of a deadlock or a serialization failure, and the loser's work is
/// safe to repeat from the start.
pub(super) async fn retrying<T, F, Fut>(mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(StoreError::Conflict(reason)) if tries < ATTEMPTS => {
                tracing::debug!(%reason, tries, "a transaction lost a race; trying it again");
                tokio::time::sleep(Duration::from_millis(5 << tries)).await;
            }
            other => return other,
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn close(&self) {
        self.pool.close().await;
    }

    async fn schema_version(&self) -> StoreResult<SchemaVersion> {
        let applied: Option<i64> = sqlx::query_scalar(crate::schema::APPLIED)
            .fetch_one(&self.pool)
            .await?;
        Ok(SchemaVersion::of(applied, &migrator()))
    }

    async fn save_connection(
        &self,
        new: NewConnection,
        now: DateTime<Utc>,
    ) -> StoreResult<Connection> {
        self.save_connection_pg(new, now).await
    }

    async fn connection(&self, key: &ConnectionKey) -> StoreResult<Option<Connection>> {
        self.connection_pg(key).await
    }

    async fn connections(&self, integration: Option<&str>) -> StoreResult<Vec<Connection>> {
        self.connections_pg(integration).await
    }

    async fn delete_connection(&self, key: &ConnectionKey) -> StoreResult<bool> {
        self.delete_connection_pg(key).await
    }

    async fn update_tokens(
        &self,
        current: &Connection,
        update: TokenUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>> {
        self.update_tokens_pg(current, update, now).await
    }

    async fn mark_needs_reconnect(
        &self,
        key: &ConnectionKey,
        token_version: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.mark_needs_reconnect_pg(key, token_version, reason, now)
            .await
    }

    async fn acquire_refresh_lease(
        &self,
        key: &ConnectionKey,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshLease> {
        self.acquire_refresh_lease_pg(key, owner, until, now).await
    }

    async fn release_refresh_lease(&self, key: &ConnectionKey, owner: &str) -> StoreResult<()> {
        self.release_refresh_lease_pg(key, owner).await
    }

    async fn set_refresh_failing(
        &self,
        key: &ConnectionKey,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        self.set_refresh_failing_pg(key, since).await
    }

    async fn create_connect_session(
        &self,
        token_hash: &str,
        session: &ConnectSession,
    ) -> StoreResult<()> {
        self.create_connect_session_pg(token_hash, session).await
    }

    async fn connect_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>> {
        self.connect_session_pg(token_hash, now).await
    }

    async fn take_connect_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>> {
        self.take_connect_session_pg(token_hash, now).await
    }

    async fn create_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.create_oauth_state_pg(state_hash, state, now).await
    }

    async fn take_oauth_state(
        &self,
        state_hash: &str,
        browser_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<TakenState> {
        self.take_oauth_state_pg(state_hash, browser_hash, now)
            .await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.purge_expired_pg(now).await
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
        self.save_records_pg(connection, model, records, now).await
    }

    async fn delete_records(
        &self,
        connection: &str,
        model: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.delete_records_pg(connection, model, ids, now).await
    }

    async fn begin_crawl(&self, connection: &str, model: &str) -> StoreResult<()> {
        self.begin_crawl_pg(connection, model).await
    }

    async fn end_crawl(
        &self,
        connection: &str,
        model: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<u64>> {
        self.end_crawl_pg(connection, model, now).await
    }

    async fn records(&self, query: &RecordQuery) -> StoreResult<RecordPage> {
        self.records_pg(query).await
    }

    async fn sync_state(&self, connection: &str, sync: &str) -> StoreResult<SyncState> {
        self.sync_state_pg(connection, sync).await
    }

    async fn set_checkpoint(
        &self,
        connection: &str,
        sync: &str,
        checkpoint: Option<&serde_json::Value>,
    ) -> StoreResult<()> {
        self.set_checkpoint_pg(connection, sync, checkpoint).await
    }

    async fn set_sync_paused(&self, connection: &str, sync: &str, paused: bool) -> StoreResult<()> {
        self.set_schedule_pg(connection, sync, Some(paused), None)
            .await
    }

    async fn set_sync_frequency(
        &self,
        connection: &str,
        sync: &str,
        frequency_secs: Option<u64>,
    ) -> StoreResult<()> {
        self.set_schedule_pg(connection, sync, None, Some(frequency_secs))
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
        retrying(|| {
            self.start_run_pg(
                connection,
                sync,
                mode,
                lease_until,
                now,
                unless_succeeded_since,
            )
        })
        .await
    }

    async fn renew_run_lease(&self, run_id: &str, until: DateTime<Utc>) -> StoreResult<bool> {
        self.renew_run_lease_pg(run_id, until).await
    }

    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        counts: RunCounts,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        retrying(|| self.finish_run_pg(run_id, status, counts, error, now)).await
    }

    async fn fail_interrupted_runs(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.fail_interrupted_runs_pg(now).await
    }

    async fn append_run_logs(&self, run_id: &str, logs: &[RunLog]) -> StoreResult<()> {
        self.append_run_logs_pg(run_id, logs).await
    }

    async fn run_logs(&self, run_id: &str) -> StoreResult<Vec<RunLog>> {
        self.run_logs_pg(run_id).await
    }

    async fn runs(&self, connection: &str, sync: &str, limit: u32) -> StoreResult<Vec<SyncRun>> {
        self.runs_pg(connection, sync, limit).await
    }

    async fn save_webhook_delivery(&self, delivery: &WebhookDelivery) -> StoreResult<()> {
        self.save_webhook_delivery_pg(delivery).await
    }

    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        self.webhook_deliveries_pg(limit).await
    }

    async fn webhook_delivery(&self, id: &str) -> StoreResult<Option<WebhookDelivery>> {
        self.webhook_delivery_pg(id).await
    }

    async fn create_console_session(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.create_console_session_pg(token_hash, expires_at, now)
            .await
    }

    async fn console_session_valid(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.console_session_valid_pg(token_hash, now).await
    }

    async fn delete_console_session(&self, token_hash: &str) -> StoreResult<()> {
        self.delete_console_session_pg(token_hash).await
    }

    async fn connection_summaries(
        &self,
        filter: &ConnectionFilter,
    ) -> StoreResult<ConnectionSummaryPage> {
        self.connection_summaries_pg(filter).await
    }

    async fn connection_health_counts(&self) -> StoreResult<Vec<(String, ConnectionHealth, u64)>> {
        self.connection_health_counts_pg().await
    }

    async fn record_counts(&self, connection: &str) -> StoreResult<Vec<RecordCount>> {
        self.record_counts_pg(connection).await
    }

    async fn record_activity(&self, entry: &NewActivity) -> StoreResult<()> {
        self.record_activity_pg(entry).await
    }

    async fn activity(&self, filter: &ActivityFilter) -> StoreResult<Vec<Activity>> {
        self.activity_pg(filter).await
    }

    async fn count_rows(&self, table: &crate::copy::Table) -> StoreResult<u64> {
        self.count_rows_pg(table).await
    }

    async fn read_rows(
        &self,
        table: &crate::copy::Table,
        after: Option<&crate::copy::Row>,
        limit: u32,
    ) -> StoreResult<Vec<crate::copy::Row>> {
        self.read_rows_pg(table, after, limit).await
    }

    async fn write_rows(
        &self,
        table: &crate::copy::Table,
        rows: &[crate::copy::Row],
    ) -> StoreResult<()> {
        self.write_rows_pg(table, rows).await
    }

    async fn connection_changes(&self, after: i64) -> StoreResult<ConnectionChanges> {
        self.connection_changes_pg(after).await
    }

    async fn claim_credential_notice(
        &self,
        notice: &crate::CredentialNotice,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.claim_credential_notice_postgres(notice, now).await
    }

    async fn set_credential_failing(
        &self,
        integration: &str,
        failure: Option<(&str, DateTime<Utc>)>,
    ) -> StoreResult<bool> {
        self.set_credential_failing_postgres(integration, failure)
            .await
    }

    async fn credential_failures(&self) -> StoreResult<Vec<crate::CredentialFailure>> {
        self.credential_failures_postgres().await
    }
}
