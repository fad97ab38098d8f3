//! The SQLite backend: one file, WAL journal, embedded migrations.
//!
//! Writes go through a pool of one connection, so SQLite never answers `SQLITE_BUSY` to a
//! transaction that read before it wrote; reads use a separate read-only pool and run
//! alongside (WAL lets readers see the last committed state while a write is in progress).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqlSafeStr};

use super::sqlite_records::SyncStateColumn;
use super::{
    ConnectSession, Connection, ConnectionKey, ConnectionStatus, Flow, NewConnection, OAuthState,
    RecordJson, RecordPage, RecordQuery, Rotation, RunCounts, RunLog, RunStatus, SaveOutcome,
    Store, StoreError, StoreResult, SyncRun, SyncState, TokenUpdate, Tokens, WebhookDelivery,
};
use crate::crypto::{Aad, KeyRing};

const CONNECTIONS: &str = "connections";
const OAUTH_STATES: &str = "oauth_states";

/// Selects every column of `connections` that [`SqliteStore::connection_from_row`] reads.
macro_rules! select_connections {
    ($rest:literal) => {
        concat!(
            "SELECT id, integration, connection_id, provider, connection_config, account, status, \
             status_reason, access_token, refresh_token, id_token, expires_at, scopes, \
             token_version, created_at, updated_at FROM connections ",
            $rest
        )
    };
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "initial".into(),
            MigrationType::Simple,
            include_str!("migrations/0001_initial.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "syncs and records".into(),
            MigrationType::Simple,
            include_str!("migrations/0002_syncs_records.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "replicas".into(),
            MigrationType::Simple,
            include_str!("migrations/0003_replicas.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            "crawl seen log".into(),
            MigrationType::Simple,
            include_str!("migrations/0004_crawl_seen.sql").into_sql_str(),
            false,
        ),
    ])
}

pub struct SqliteStore {
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
    pub(super) keys: Arc<KeyRing>,
    /// Whether record payloads are encrypted (the default).
    pub(super) seal_records: bool,
    /// The last `last_modified_at` stamp issued; see `sqlite_records`.
    pub(super) last_stamp: AtomicI64,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e.to_string())
    }
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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(writer_options(options.clone()))
            .await?;
        restrict_permissions(path);
        migrator()
            .run(&writer)
            .await
            .map_err(|e| StoreError::Database(format!("migrating the database failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        let last_stamp: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(last_modified_at), 0) FROM records")
                .fetch_one(&writer)
                .await?;
        Ok(SqliteStore {
            writer,
            reader,
            keys,
            seal_records: true,
            last_stamp: AtomicI64::new(last_stamp),
        })
    }

    /// Stores record payloads as plain JSON from now on (they are encrypted by default).
    /// Payloads already stored stay readable either way.
    pub fn with_plain_records(mut self) -> Self {
        self.seal_records = false;
        self
    }

    fn seal(&self, value: &SecretString, table: &str, row: &str, column: &str) -> String {
        self.keys
            .encrypt(value.expose_secret(), Aad { table, row, column })
    }

    fn open_secret(
        &self,
        stored: Option<String>,
        table: &str,
        row: &str,
        column: &str,
    ) -> StoreResult<Option<SecretString>> {
        stored
            .map(|s| self.keys.decrypt(&s, Aad { table, row, column }))
            .transpose()
            .map_err(StoreError::from)
    }

    fn connection_from_row(&self, row: &SqliteRow) -> StoreResult<Connection> {
        let id: String = row.try_get("id")?;
        let secret = |column: &str| -> StoreResult<Option<SecretString>> {
            self.open_secret(row.try_get(column)?, CONNECTIONS, &id, column)
        };
        let access_token = secret("access_token")?
            .ok_or_else(|| StoreError::Corrupt("a connection without an access token".into()))?;
        let tokens = Tokens {
            access_token,
            refresh_token: secret("refresh_token")?,
            id_token: secret("id_token")?,
            expires_at: row
                .try_get::<Option<i64>, _>("expires_at")?
                .map(from_millis)
                .transpose()?,
            scopes: from_json(&row.try_get::<String, _>("scopes")?)?,
        };
        let account: Option<String> = row.try_get("account")?;
        Ok(Connection {
            key: ConnectionKey::new(
                row.try_get::<String, _>("integration")?,
                row.try_get::<String, _>("connection_id")?,
            ),
            provider: row.try_get("provider")?,
            connection_config: from_json(&row.try_get::<String, _>("connection_config")?)?,
            account: account.as_deref().map(from_json).transpose()?,
            status: ConnectionStatus::parse(&row.try_get::<String, _>("status")?)?,
            status_reason: row.try_get("status_reason")?,
            tokens,
            token_version: row.try_get("token_version")?,
            created_at: from_millis(row.try_get("created_at")?)?,
            updated_at: from_millis(row.try_get("updated_at")?)?,
            id,
        })
    }

    /// One pass of rotation over `connections`; how many rows were re-encrypted, were already
    /// current, and lost a race with a concurrent refresh.
    async fn rotate_connections(&self) -> StoreResult<(u64, u64, u64)> {
        let rows = sqlx::query(
            "SELECT id, token_version, access_token, refresh_token, id_token FROM connections",
        )
        .fetch_all(&self.writer)
        .await?;
        let (mut moved, mut current, mut raced) = (0, 0, 0);
        for row in rows {
            let id: String = row.try_get("id")?;
            let version: i64 = row.try_get("token_version")?;
            let mut columns = Vec::new();
            for column in ["access_token", "refresh_token", "id_token"] {
                let stored: Option<String> = row.try_get(column)?;
                columns.push(match stored {
                    Some(s) if !self.keys.is_current(&s) => {
                        let aad = Aad {
                            table: CONNECTIONS,
                            row: &id,
                            column,
                        };
                        (Some(self.keys.reencrypt(&s, aad)?), true)
                    }
                    other => (other, false),
                });
            }
            if !columns.iter().any(|(_, changed)| *changed) {
                current += 1;
                continue;
            }
            let updated = sqlx::query(
                "UPDATE connections SET access_token = ?, refresh_token = ?, id_token = ? \
                 WHERE id = ? AND token_version = ?",
            )
            .bind(&columns[0].0)
            .bind(&columns[1].0)
            .bind(&columns[2].0)
            .bind(&id)
            .bind(version)
            .execute(&self.writer)
            .await?;
            if updated.rows_affected() == 1 {
                moved += 1;
            } else {
                raced += 1;
            }
        }
        Ok((moved, current, raced))
    }

    /// Rewrites the file and folds the WAL back into it, so that no copy of a ciphertext under
    /// an old key survives in the WAL or in free pages once the old key is dropped.
    async fn compact(&self) -> StoreResult<()> {
        sqlx::query("VACUUM").execute(&self.writer).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn rotate_states(&self) -> StoreResult<(u64, u64)> {
        let rows = sqlx::query(
            "SELECT state_hash, pkce_verifier FROM oauth_states WHERE pkce_verifier IS NOT NULL",
        )
        .fetch_all(&self.writer)
        .await?;
        let (mut moved, mut current) = (0, 0);
        for row in rows {
            let hash: String = row.try_get("state_hash")?;
            let stored: String = row.try_get("pkce_verifier")?;
            if self.keys.is_current(&stored) {
                current += 1;
                continue;
            }
            let aad = Aad {
                table: OAUTH_STATES,
                row: &hash,
                column: "pkce_verifier",
            };
            let sealed = self.keys.reencrypt(&stored, aad)?;
            sqlx::query("UPDATE oauth_states SET pkce_verifier = ? WHERE state_hash = ? AND pkce_verifier = ?")
                .bind(sealed)
                .bind(&hash)
                .bind(&stored)
                .execute(&self.writer)
                .await?;
            moved += 1;
        }
        Ok((moved, current))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn save_connection(
        &self,
        new: NewConnection,
        now: DateTime<Utc>,
    ) -> StoreResult<Connection> {
        let mut tx = self.writer.begin().await?;
        let existing = sqlx::query(
            "SELECT id, token_version, created_at FROM connections \
             WHERE integration = ? AND connection_id = ?",
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
            value
                .as_ref()
                .map(|v| self.seal(v, CONNECTIONS, &id, column))
        };
        sqlx::query(
            "INSERT INTO connections (id, integration, connection_id, provider, connection_config, \
             account, status, status_reason, access_token, refresh_token, id_token, expires_at, \
             scopes, token_version, refresh_lease_owner, refresh_lease_until, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'ok', NULL, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?) \
             ON CONFLICT (integration, connection_id) DO UPDATE SET \
             provider = excluded.provider, connection_config = excluded.connection_config, \
             account = excluded.account, status = 'ok', status_reason = NULL, \
             access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
             id_token = excluded.id_token, expires_at = excluded.expires_at, \
             scopes = excluded.scopes, token_version = excluded.token_version, \
             refresh_lease_owner = NULL, refresh_lease_until = NULL, updated_at = excluded.updated_at",
        )
        .bind(&id)
        .bind(&new.key.integration)
        .bind(&new.key.connection_id)
        .bind(&new.provider)
        .bind(to_json(&new.connection_config))
        .bind(new.account.as_ref().map(to_json))
        .bind(self.seal(&new.tokens.access_token, CONNECTIONS, &id, "access_token"))
        .bind(seal(&new.tokens.refresh_token, "refresh_token"))
        .bind(seal(&new.tokens.id_token, "id_token"))
        .bind(new.tokens.expires_at.map(|t| t.timestamp_millis()))
        .bind(to_json(&new.tokens.scopes))
        .bind(version)
        .bind(created_at.timestamp_millis())
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Connection {
            id,
            key: new.key,
            provider: new.provider,
            connection_config: new.connection_config,
            account: new.account,
            status: ConnectionStatus::Ok,
            status_reason: None,
            tokens: new.tokens,
            token_version: version,
            created_at,
            updated_at: now,
        })
    }

    async fn connection(&self, key: &ConnectionKey) -> StoreResult<Option<Connection>> {
        let row = sqlx::query(select_connections!(
            "WHERE integration = ? AND connection_id = ?"
        ))
        .bind(&key.integration)
        .bind(&key.connection_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| self.connection_from_row(&row)).transpose()
    }

    async fn connections(&self, integration: Option<&str>) -> StoreResult<Vec<Connection>> {
        let rows = sqlx::query(select_connections!(
            "WHERE ?1 IS NULL OR integration = ?1 ORDER BY integration, connection_id"
        ))
        .bind(integration)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| self.connection_from_row(row))
            .collect()
    }

    async fn delete_connection(&self, key: &ConnectionKey) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM connections WHERE integration = ? AND connection_id = ?")
                .bind(&key.integration)
                .bind(&key.connection_id)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_tokens(
        &self,
        current: &Connection,
        update: TokenUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>> {
        let id = &current.id;
        let seal = |value: &Option<SecretString>, column: &str| {
            value
                .as_ref()
                .map(|v| self.seal(v, CONNECTIONS, id, column))
        };
        let done = sqlx::query(
            "UPDATE connections SET access_token = ?, refresh_token = COALESCE(?, refresh_token), \
             id_token = COALESCE(?, id_token), expires_at = ?, scopes = ?, \
             token_version = token_version + 1, updated_at = ? \
             WHERE id = ? AND token_version = ?",
        )
        .bind(self.seal(&update.access_token, CONNECTIONS, id, "access_token"))
        .bind(seal(&update.refresh_token, "refresh_token"))
        .bind(seal(&update.id_token, "id_token"))
        .bind(update.expires_at.map(|t| t.timestamp_millis()))
        .bind(to_json(&update.scopes))
        .bind(now.timestamp_millis())
        .bind(id)
        .bind(current.token_version)
        .execute(&self.writer)
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
        let done = sqlx::query(
            "UPDATE connections SET status = 'needs_reconnect', status_reason = ?, updated_at = ? \
             WHERE integration = ? AND connection_id = ? AND token_version = ?",
        )
        .bind(reason)
        .bind(now.timestamp_millis())
        .bind(&key.integration)
        .bind(&key.connection_id)
        .bind(token_version)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn acquire_refresh_lease(
        &self,
        key: &ConnectionKey,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE connections SET refresh_lease_owner = ?1, refresh_lease_until = ?2 \
             WHERE integration = ?3 AND connection_id = ?4 AND (refresh_lease_until IS NULL \
             OR refresh_lease_until <= ?5 OR refresh_lease_owner = ?1)",
        )
        .bind(owner)
        .bind(until.timestamp_millis())
        .bind(&key.integration)
        .bind(&key.connection_id)
        .bind(now.timestamp_millis())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_refresh_lease(&self, key: &ConnectionKey, owner: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
             WHERE integration = ? AND connection_id = ? AND refresh_lease_owner = ?",
        )
        .bind(&key.integration)
        .bind(&key.connection_id)
        .bind(owner)
        .execute(&self.writer)
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
                "UPDATE connections SET refresh_failed_at = ? \
                 WHERE integration = ? AND connection_id = ? AND refresh_failed_at IS NULL",
            )
            .bind(since.timestamp_millis()),
            None => sqlx::query(
                "UPDATE connections SET refresh_failed_at = NULL \
                 WHERE integration = ? AND connection_id = ? AND refresh_failed_at IS NOT NULL",
            ),
        };
        let done = query
            .bind(&key.integration)
            .bind(&key.connection_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_connect_session(
        &self,
        token_hash: &str,
        session: &ConnectSession,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO connect_sessions (token_hash, integration, connection_id, \
             connection_config, return_url, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(&session.integration)
        .bind(&session.connection_id)
        .bind(to_json(&session.connection_config))
        .bind(&session.return_url)
        .bind(session.expires_at.timestamp_millis())
        .bind(Utc::now().timestamp_millis())
        .execute(&self.writer)
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
             FROM connect_sessions WHERE token_hash = ? AND expires_at > ?",
        )
        .bind(token_hash)
        .bind(now.timestamp_millis())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(ConnectSession {
                integration: row.try_get("integration")?,
                connection_id: row.try_get("connection_id")?,
                connection_config: from_json(&row.try_get::<String, _>("connection_config")?)?,
                return_url: row.try_get("return_url")?,
                expires_at: from_millis(row.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn create_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let verifier = state
            .pkce_verifier
            .as_ref()
            .map(|v| self.seal(v, OAUTH_STATES, state_hash, "pkce_verifier"));
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, flow, integration, connection_id, \
             connection_config, return_url, pkce_verifier, browser_hash, expires_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(state_hash)
        .bind(state.flow.as_str())
        .bind(&state.integration)
        .bind(&state.connection_id)
        .bind(to_json(&state.connection_config))
        .bind(&state.return_url)
        .bind(verifier)
        .bind(&state.browser_hash)
        .bind(state.expires_at.timestamp_millis())
        .bind(now.timestamp_millis())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn take_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OAuthState>> {
        // Deleting is what makes a state single-use: of two racing callbacks, one gets the row.
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = ? AND expires_at > ? \
             RETURNING flow, integration, connection_id, connection_config, return_url, \
             pkce_verifier, browser_hash, expires_at",
        )
        .bind(state_hash)
        .bind(now.timestamp_millis())
        .fetch_optional(&self.writer)
        .await?;
        row.map(|row| {
            Ok(OAuthState {
                flow: Flow::parse(&row.try_get::<String, _>("flow")?)?,
                integration: row.try_get("integration")?,
                connection_id: row.try_get("connection_id")?,
                connection_config: from_json(&row.try_get::<String, _>("connection_config")?)?,
                return_url: row.try_get("return_url")?,
                pkce_verifier: self.open_secret(
                    row.try_get("pkce_verifier")?,
                    OAUTH_STATES,
                    state_hash,
                    "pkce_verifier",
                )?,
                browser_hash: row.try_get("browser_hash")?,
                expires_at: from_millis(row.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let now = now.timestamp_millis();
        let sessions = sqlx::query("DELETE FROM connect_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.writer)
            .await?;
        let states = sqlx::query("DELETE FROM oauth_states WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(sessions.rows_affected() + states.rows_affected())
    }

    async fn reencrypt_all(&self) -> StoreResult<Rotation> {
        let mut rotation = Rotation::default();
        // A row refreshed between our read and our write is skipped by the compare-and-swap; a
        // server running with the same active key has then already written it under that key,
        // which the next pass confirms.
        for pass in 0..5 {
            let (moved, current, raced) = self.rotate_connections().await?;
            let (states_moved, states_current) = self.rotate_states().await?;
            let (records_moved, records_current) = self.rotate_records().await?;
            rotation.reencrypted += moved + states_moved + records_moved;
            if pass == 0 {
                rotation.current = current + states_current + records_current;
            }
            if raced == 0 {
                self.compact().await?;
                return Ok(rotation);
            }
        }
        Err(StoreError::Database(
            "connections kept changing during rotation; is a server running with another active key?"
                .into(),
        ))
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
    ) -> StoreResult<Option<String>> {
        self.start_run_sqlite(connection, sync, mode, lease_until, now)
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

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Best effort: the secrets are encrypted anyway; this keeps the metadata private too.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

fn from_millis(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} is out of range")))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps, lists and JSON values always serialise")
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("bad JSON column: {e}")))
}

/// The key ring is shared with the host; tests build small ones.
#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretBox;
    use std::collections::BTreeMap;

    fn ring(ids: &[(&str, u8)], active: &str) -> Arc<KeyRing> {
        let keys: BTreeMap<String, SecretBox<[u8; 32]>> = ids
            .iter()
            .map(|(id, byte)| (id.to_string(), SecretBox::new(Box::new([*byte; 32]))))
            .collect();
        Arc::new(KeyRing::new(&keys, active).unwrap())
    }

    fn tokens(access: &str, refresh: Option<&str>) -> Tokens {
        Tokens {
            access_token: SecretString::from(access),
            refresh_token: refresh.map(SecretString::from),
            id_token: None,
            expires_at: Some(from_millis(4_000_000_000_000).unwrap()),
            scopes: vec!["People.Read".into()],
        }
    }

    fn new_connection(id: &str, access: &str) -> NewConnection {
        NewConnection {
            key: ConnectionKey::new("microsoft", id),
            provider: "microsoft-people".into(),
            connection_config: BTreeMap::from([("tenant".into(), "common".into())]),
            account: Some(serde_json::json!({"id": "u1"})),
            tokens: tokens(access, Some("refresh-1")),
        }
    }

    async fn open(dir: &Path, keys: Arc<KeyRing>) -> SqliteStore {
        SqliteStore::open(&dir.join("store.db"), keys)
            .await
            .unwrap()
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("plugboard-store-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn connections_round_trip_and_reconnect_keeps_the_row() {
        let dir = temp_dir("round-trip");
        let store = open(&dir, ring(&[("k1", 1)], "k1")).await;
        let now = Utc::now();
        let first = store
            .save_connection(new_connection("c1", "access-1"), now)
            .await
            .unwrap();
        let read = store.connection(&first.key).await.unwrap().unwrap();
        assert_eq!(read.tokens.access_token.expose_secret(), "access-1");
        assert_eq!(
            read.tokens.refresh_token.unwrap().expose_secret(),
            "refresh-1"
        );
        assert_eq!(read.connection_config["tenant"], "common");
        assert_eq!(read.token_version, 1);

        let again = store
            .save_connection(new_connection("c1", "access-2"), now)
            .await
            .unwrap();
        assert_eq!(
            (again.id.as_str(), again.token_version),
            (first.id.as_str(), 2)
        );
        assert_eq!(store.connections(Some("microsoft")).await.unwrap().len(), 1);
        assert!(store.connections(Some("other")).await.unwrap().is_empty());
        assert!(store.delete_connection(&first.key).await.unwrap());
        assert!(store.connection(&first.key).await.unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn token_updates_are_compare_and_swap_and_keep_the_refresh_token() {
        let dir = temp_dir("cas");
        let store = open(&dir, ring(&[("k1", 1)], "k1")).await;
        let now = Utc::now();
        let conn = store
            .save_connection(new_connection("c1", "access-1"), now)
            .await
            .unwrap();
        let update = |access: &str, refresh: Option<&str>| TokenUpdate {
            access_token: SecretString::from(access),
            refresh_token: refresh.map(SecretString::from),
            id_token: None,
            expires_at: None,
            scopes: vec![],
        };
        let won = store
            .update_tokens(&conn, update("access-2", None), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(won.token_version, 2);
        assert!(
            store
                .update_tokens(&conn, update("access-3", None), now)
                .await
                .unwrap()
                .is_none()
        );
        let read = store.connection(&conn.key).await.unwrap().unwrap();
        assert_eq!(read.tokens.access_token.expose_secret(), "access-2");
        assert_eq!(
            read.tokens.refresh_token.unwrap().expose_secret(),
            "refresh-1"
        );

        assert!(
            !store
                .mark_needs_reconnect(&conn.key, 1, "stale", now)
                .await
                .unwrap()
        );
        assert!(
            store
                .mark_needs_reconnect(&conn.key, 2, "invalid_grant", now)
                .await
                .unwrap()
        );
        let read = store.connection(&conn.key).await.unwrap().unwrap();
        assert_eq!(read.status, ConnectionStatus::NeedsReconnect);
        assert_eq!(read.status_reason.as_deref(), Some("invalid_grant"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn refresh_failure_and_recovery_each_change_once() {
        let dir = temp_dir("failing");
        let store = open(&dir, ring(&[("k1", 1)], "k1")).await;
        let now = Utc::now();
        let conn = store
            .save_connection(new_connection("c1", "a"), now)
            .await
            .unwrap();
        assert!(
            !store.set_refresh_failing(&conn.key, None).await.unwrap(),
            "not failing"
        );
        assert!(
            store
                .set_refresh_failing(&conn.key, Some(now))
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_refresh_failing(&conn.key, Some(now))
                .await
                .unwrap(),
            "already failing"
        );
        // A reconnect does not clear it: whoever clears it announces the recovery.
        store
            .save_connection(new_connection("c1", "b"), now)
            .await
            .unwrap();
        assert!(store.set_refresh_failing(&conn.key, None).await.unwrap());
        assert!(!store.set_refresh_failing(&conn.key, None).await.unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn leases_exclude_other_owners_until_released_or_expired() {
        let dir = temp_dir("lease");
        let store = open(&dir, ring(&[("k1", 1)], "k1")).await;
        let now = Utc::now();
        let conn = store
            .save_connection(new_connection("c1", "a"), now)
            .await
            .unwrap();
        let later = now + chrono::Duration::seconds(30);
        assert!(
            store
                .acquire_refresh_lease(&conn.key, "a", later, now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .acquire_refresh_lease(&conn.key, "b", later, now)
                .await
                .unwrap()
        );
        assert!(
            store
                .acquire_refresh_lease(&conn.key, "b", later, later)
                .await
                .unwrap()
        );
        store.release_refresh_lease(&conn.key, "b").await.unwrap();
        assert!(
            store
                .acquire_refresh_lease(&conn.key, "a", later, now)
                .await
                .unwrap()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn oauth_states_are_single_use_and_expire() {
        let dir = temp_dir("states");
        let store = open(&dir, ring(&[("k1", 1)], "k1")).await;
        let now = Utc::now();
        let state = OAuthState {
            flow: Flow::Connect,
            integration: "microsoft".into(),
            connection_id: "c1".into(),
            connection_config: BTreeMap::new(),
            return_url: None,
            pkce_verifier: Some(SecretString::from("verifier")),
            browser_hash: "b".into(),
            expires_at: now + chrono::Duration::minutes(10),
        };
        store.create_oauth_state("h1", &state, now).await.unwrap();
        store.create_oauth_state("h2", &state, now).await.unwrap();
        let taken = store.take_oauth_state("h1", now).await.unwrap().unwrap();
        assert_eq!(taken.pkce_verifier.unwrap().expose_secret(), "verifier");
        assert!(store.take_oauth_state("h1", now).await.unwrap().is_none());
        let late = now + chrono::Duration::minutes(11);
        assert!(store.take_oauth_state("h2", late).await.unwrap().is_none());
        assert_eq!(
            store.purge_expired(late).await.unwrap(),
            1,
            "the taken state is gone already"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A crawl in progress when the seen log replaced `records.seen_generation` (migration 4)
    /// keeps what it had seen: ending it deletes only what it did not see.
    #[tokio::test]
    async fn a_crawl_in_progress_keeps_what_it_saw_across_the_move_to_the_seen_log() {
        let dir = temp_dir("seen-log");
        let path = dir.join("store.db");
        {
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = SqlitePool::connect_with(options).await.unwrap();
            let mut before = migrator();
            before.migrations = before.migrations[..3].to_vec().into();
            before.run(&pool).await.unwrap();
            sqlx::query(
                "INSERT INTO connections (id, integration, connection_id, provider, \
                 connection_config, status, access_token, scopes, token_version, created_at, \
                 updated_at) VALUES ('c1', 'microsoft', 'c1', 'microsoft-people', '{}', 'ok', \
                 'sealed', '[]', 1, 1, 1)",
            )
            .execute(&pool)
            .await
            .unwrap();
            // The crawl in progress (generation 2) saw `a` and `c`; `b` was last seen by an
            // older one.
            for (id, seen) in [("a", 2), ("b", 1), ("c", 2)] {
                sqlx::query(
                    "INSERT INTO records (connection_row, model, record_id, payload, sealed, hash, \
                     first_seen_at, last_modified_at, last_action, seen_generation) \
                     VALUES ('c1', 'Person', ?, '{}', 0, x'00', 1, 1, 'ADDED', ?)",
                )
                .bind(id)
                .bind(seen)
                .execute(&pool)
                .await
                .unwrap();
            }
            sqlx::query("INSERT INTO crawls VALUES ('c1', 'Person', 2, 1)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        let store = open(&dir, ring(&[("k1", 1)], "k1")).await;
        let now = Utc::now();
        assert_eq!(store.end_crawl("c1", "Person", now).await.unwrap(), Some(1));
        let deleted: Vec<String> =
            sqlx::query_scalar("SELECT record_id FROM records WHERE deleted_at IS NOT NULL")
                .fetch_all(&store.reader)
                .await
                .unwrap();
        assert_eq!(deleted, ["b"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn rotation_moves_every_secret_to_the_active_key() {
        let dir = temp_dir("rotate");
        let now = Utc::now();
        {
            let store = open(&dir, ring(&[("k1", 1)], "k1")).await;
            store
                .save_connection(new_connection("c1", "a1"), now)
                .await
                .unwrap();
            store
                .save_connection(new_connection("c2", "a2"), now)
                .await
                .unwrap();
        }
        let both = open(&dir, ring(&[("k1", 1), ("k2", 2)], "k2")).await;
        let rotation = both.reencrypt_all().await.unwrap();
        assert_eq!(
            rotation,
            Rotation {
                reencrypted: 2,
                current: 0
            }
        );
        assert_eq!(
            both.reencrypt_all().await.unwrap(),
            Rotation {
                reencrypted: 0,
                current: 2
            }
        );
        drop(both);
        let new_only = open(&dir, ring(&[("k2", 2)], "k2")).await;
        let read = new_only
            .connection(&ConnectionKey::new("microsoft", "c2"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.tokens.access_token.expose_secret(), "a2");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
