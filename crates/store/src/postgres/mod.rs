//! The PostgreSQL backend: several `plugboard serve` replicas sharing one database.
//!
//! Every decision two replicas could race on is one statement or one short transaction: leases
//! are compare-and-set updates (never a transaction held open across a provider's answer), a
//! row lock orders what must follow commit order (the records clocks, the connection change
//! log), and a transaction that loses a race anyway (a deadlock or a serialization failure) is
//! retried whole ([`retrying`]). Migrations are applied under sqlx's advisory lock, so replicas
//! starting together apply each one once.

mod changes;
mod console;
mod copy;
mod integrations;
mod records;
mod rotation;
mod runs;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Row, SqlSafeStr};

use self::changes::log_change;
use crate::RefreshLease;
use crate::columns::{from_millis, millis, to_json};
use crate::crypto::KeyRing;
use crate::rotation::reencrypt_all;
use crate::rows;
use crate::sealing::{CONNECTIONS, OAUTH_STATES, Sealer};
use crate::{
    Activity, ActivityFilter, ConnectSession, Connection, ConnectionChanges, ConnectionFilter,
    ConnectionHealth, ConnectionKey, ConnectionStatus, ConnectionSummaryPage, NewActivity,
    NewConnection, OAuthState, RecordCount, RecordJson, RecordPage, RecordQuery, Rotation,
    RunCounts, RunLog, RunStatus, SaveOutcome, SchemaVersion, Store, StoreError, StoreResult,
    SyncRun, SyncState, TakenState, TokenUpdate, Tokens, WebhookDelivery,
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

    /// One attempt of [`Store::save_connection`]; `None` when a replica created the same
    /// connection between our read and our insert, so the caller tries again and updates it.
    async fn try_save_connection(
        &self,
        new: &NewConnection,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>> {
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query(
            "SELECT id, token_version, created_at FROM connections \
             WHERE integration = $1 AND connection_id = $2 FOR UPDATE",
        )
        .bind(&new.key.integration)
        .bind(&new.key.connection_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (id, version, created_at) = match existing {
            Some(row) => (
                row.try_get::<String, _>("id")?,
                row.try_get::<i64, _>("token_version")? + 1,
                from_millis(row.try_get("created_at")?)?,
            ),
            None => (uuid::Uuid::new_v4().to_string(), 1, now),
        };
        let seal = |value: &Option<SecretString>, column: &str| {
            self.sealer.seal_opt(value, CONNECTIONS, &id, column)
        };
        let insert = sqlx::query(
            "INSERT INTO connections AS c (id, integration, connection_id, provider, \
             connection_config, account, status, status_reason, access_token, refresh_token, \
             id_token, expires_at, scopes, token_version, refresh_lease_owner, \
             refresh_lease_until, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'ok', NULL, $7, $8, $9, $10, $11, $12, NULL, NULL, $13, $14) \
             ON CONFLICT (integration, connection_id) DO UPDATE SET \
             provider = EXCLUDED.provider, connection_config = EXCLUDED.connection_config, \
             account = EXCLUDED.account, status = 'ok', status_reason = NULL, \
             access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token, \
             id_token = EXCLUDED.id_token, expires_at = EXCLUDED.expires_at, \
             scopes = EXCLUDED.scopes, token_version = EXCLUDED.token_version, \
             refresh_lease_owner = NULL, refresh_lease_until = NULL, updated_at = EXCLUDED.updated_at \
             WHERE c.id = EXCLUDED.id",
        )
        .bind(&id)
        .bind(&new.key.integration)
        .bind(&new.key.connection_id)
        .bind(&new.provider)
        .bind(to_json(&new.connection_config))
        .bind(new.account.as_ref().map(to_json))
        .bind(
            self.sealer
                .seal(&new.tokens.access_token, CONNECTIONS, &id, "access_token"),
        )
        .bind(seal(&new.tokens.refresh_token, "refresh_token"))
        .bind(seal(&new.tokens.id_token, "id_token"))
        .bind(new.tokens.expires_at.map(millis))
        .bind(to_json(&new.tokens.scopes))
        .bind(version)
        .bind(millis(created_at))
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        if insert.rows_affected() == 0 {
            // Another replica inserted it under another row id since our read.
            return Ok(None);
        }
        log_change(&mut tx, &new.key, now).await?;
        tx.commit().await?;
        Ok(Some(Connection {
            id,
            key: new.key.clone(),
            provider: new.provider.clone(),
            connection_config: new.connection_config.clone(),
            account: new.account.clone(),
            status: ConnectionStatus::Ok,
            status_reason: None,
            tokens: new.tokens.clone(),
            token_version: version,
            created_at,
            updated_at: now,
        }))
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
        for _ in 0..ATTEMPTS {
            if let Some(saved) = retrying(|| self.try_save_connection(&new, now)).await? {
                return Ok(saved);
            }
        }
        Err(StoreError::Conflict(format!(
            "connection `{}` of `{}` kept being created concurrently",
            new.key.connection_id, new.key.integration
        )))
    }

    async fn connection(&self, key: &ConnectionKey) -> StoreResult<Option<Connection>> {
        let row = sqlx::query(rows::select_connections!(
            "WHERE integration = $1 AND connection_id = $2"
        ))
        .bind(&key.integration)
        .bind(&key.connection_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| rows::connection(&row, &self.sealer))
            .transpose()
    }

    async fn connections(&self, integration: Option<&str>) -> StoreResult<Vec<Connection>> {
        let rows = sqlx::query(rows::select_connections!(
            "WHERE $1::text IS NULL OR integration = $1 ORDER BY integration, connection_id"
        ))
        .bind(integration)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| rows::connection(row, &self.sealer))
            .collect()
    }

    async fn delete_connection(&self, key: &ConnectionKey) -> StoreResult<bool> {
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "DELETE FROM connections WHERE integration = $1 AND connection_id = $2",
            )
            .bind(&key.integration)
            .bind(&key.connection_id)
            .execute(&mut *tx)
            .await?;
            let deleted = done.rows_affected() > 0;
            if deleted {
                log_change(&mut tx, key, Utc::now()).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
        .await
    }

    async fn update_tokens(
        &self,
        current: &Connection,
        update: TokenUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>> {
        let id = &current.id;
        let seal = |value: &Option<SecretString>, column: &str| {
            self.sealer.seal_opt(value, CONNECTIONS, id, column)
        };
        let done = sqlx::query(
            "UPDATE connections SET access_token = $1, \
             refresh_token = COALESCE($2, refresh_token), id_token = COALESCE($3, id_token), \
             expires_at = $4, scopes = $5, token_version = token_version + 1, updated_at = $6 \
             WHERE id = $7 AND token_version = $8",
        )
        .bind(
            self.sealer
                .seal(&update.access_token, CONNECTIONS, id, "access_token"),
        )
        .bind(seal(&update.refresh_token, "refresh_token"))
        .bind(seal(&update.id_token, "id_token"))
        .bind(update.expires_at.map(millis))
        .bind(to_json(&update.scopes))
        .bind(millis(now))
        .bind(id)
        .bind(current.token_version)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let mut updated = current.clone();
        updated.tokens = Tokens {
            access_token: update.access_token,
            refresh_token: update.refresh_token.or(updated.tokens.refresh_token),
            id_token: update.id_token.or(updated.tokens.id_token),
            expires_at: update.expires_at,
            scopes: update.scopes,
        };
        updated.token_version += 1;
        updated.updated_at = now;
        Ok(Some(updated))
    }

    async fn mark_needs_reconnect(
        &self,
        key: &ConnectionKey,
        token_version: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE connections SET status = 'needs_reconnect', status_reason = $1, \
                 updated_at = $2 WHERE integration = $3 AND connection_id = $4 \
                 AND token_version = $5",
            )
            .bind(reason)
            .bind(millis(now))
            .bind(&key.integration)
            .bind(&key.connection_id)
            .bind(token_version)
            .execute(&mut *tx)
            .await?;
            let marked = done.rows_affected() > 0;
            if marked {
                log_change(&mut tx, key, now).await?;
            }
            tx.commit().await?;
            Ok(marked)
        })
        .await
    }

    async fn acquire_refresh_lease(
        &self,
        key: &ConnectionKey,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshLease> {
        // One statement: PostgreSQL re-checks the condition on the row it locked, so of two
        // replicas racing for a free lease exactly one updates it. The row, locked first,
        // gives the holder before.
        let taken: Option<Option<String>> = sqlx::query_scalar(
            "WITH previous AS (SELECT id, refresh_lease_owner FROM connections \
               WHERE integration = $3 AND connection_id = $4 FOR UPDATE) \
             UPDATE connections SET refresh_lease_owner = $1, refresh_lease_until = $2 \
             FROM previous WHERE connections.id = previous.id \
             AND (connections.refresh_lease_until IS NULL \
               OR connections.refresh_lease_until <= $5 OR connections.refresh_lease_owner = $1) \
             RETURNING previous.refresh_lease_owner",
        )
        .bind(owner)
        .bind(millis(until))
        .bind(&key.integration)
        .bind(&key.connection_id)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match taken {
            None => RefreshLease::NotTaken,
            Some(Some(holder)) if holder != owner => RefreshLease::TakenOver,
            Some(_) => RefreshLease::Taken,
        })
    }

    async fn release_refresh_lease(&self, key: &ConnectionKey, owner: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
             WHERE integration = $1 AND connection_id = $2 AND refresh_lease_owner = $3",
        )
        .bind(&key.integration)
        .bind(&key.connection_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_refresh_failing(
        &self,
        key: &ConnectionKey,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let query = match since {
            Some(since) => sqlx::query(
                "UPDATE connections SET refresh_failed_at = $3 \
                 WHERE integration = $1 AND connection_id = $2 AND refresh_failed_at IS NULL",
            )
            .bind(&key.integration)
            .bind(&key.connection_id)
            .bind(millis(since)),
            None => sqlx::query(
                "UPDATE connections SET refresh_failed_at = NULL \
                 WHERE integration = $1 AND connection_id = $2 AND refresh_failed_at IS NOT NULL",
            )
            .bind(&key.integration)
            .bind(&key.connection_id),
        };
        let done = query.execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_connect_session(
        &self,
        token_hash: &str,
        session: &ConnectSession,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO connect_sessions (token_hash, integration, connection_id, \
             connection_config, return_url, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_hash)
        .bind(&session.integration)
        .bind(&session.connection_id)
        .bind(to_json(&session.connection_config))
        .bind(&session.return_url)
        .bind(millis(session.expires_at))
        .bind(millis(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn connect_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>> {
        let row = sqlx::query(
            "SELECT integration, connection_id, connection_config, return_url, expires_at \
             FROM connect_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| rows::connect_session(&row)).transpose()
    }

    async fn take_connect_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>> {
        let row = sqlx::query(
            "DELETE FROM connect_sessions WHERE token_hash = $1 AND expires_at > $2 \
             RETURNING integration, connection_id, connection_config, return_url, expires_at",
        )
        .bind(token_hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| rows::connect_session(&row)).transpose()
    }

    async fn create_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let verifier = state.pkce_verifier.as_ref().map(|v| {
            self.sealer
                .seal(v, OAUTH_STATES, state_hash, "pkce_verifier")
        });
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, flow, integration, connection_id, \
             connection_config, return_url, pkce_verifier, browser_hash, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(state_hash)
        .bind(state.flow.as_str())
        .bind(&state.integration)
        .bind(&state.connection_id)
        .bind(to_json(&state.connection_config))
        .bind(&state.return_url)
        .bind(verifier)
        .bind(&state.browser_hash)
        .bind(millis(state.expires_at))
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_oauth_state(
        &self,
        state_hash: &str,
        browser_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<TakenState> {
        // Deleting is what makes a state single-use: of two racing callbacks, one gets the row.
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = $1 AND browser_hash = $2 \
             AND expires_at > $3 RETURNING flow, integration, connection_id, \
             connection_config, return_url, pkce_verifier, browser_hash, expires_at",
        )
        .bind(state_hash)
        .bind(browser_hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(TakenState::Taken(rows::oauth_state(
                &row,
                &self.sealer,
                state_hash,
            )?));
        }
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM oauth_states WHERE state_hash = $1 \
             AND expires_at > $2)",
        )
        .bind(state_hash)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(if pending {
            TakenState::OtherBrowser
        } else {
            TakenState::Unknown
        })
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let sessions = sqlx::query("DELETE FROM connect_sessions WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        let states = sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM connection_changes WHERE changed_at <= $1")
            .bind(millis(now) - crate::CHANGES_KEPT_MS)
            .execute(&self.pool)
            .await?;
        let console = self.purge_console_pg(now).await?;
        Ok(sessions.rows_affected() + states.rows_affected() + console)
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
