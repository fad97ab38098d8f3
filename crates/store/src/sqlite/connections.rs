//! Connections on SQLite: their rows saved, read, listed and deleted, their tokens replaced by a
//! compare-and-swap on the token version, and the needs-reconnect and refresh-failing marks.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::Row;

use super::changes::log_change;
use super::{BEGIN_WRITE, SqliteStore};
use crate::columns::{from_millis, millis, to_json};
use crate::rows;
use crate::sealing::CONNECTIONS;
use crate::{
    Connection, ConnectionKey, ConnectionStatus, NewConnection, StoreResult, TokenUpdate, Tokens,
};

impl SqliteStore {
    pub(super) async fn save_connection_sqlite(
        &self,
        new: NewConnection,
        now: DateTime<Utc>,
    ) -> StoreResult<Connection> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
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
            self.sealer.seal_opt(value, CONNECTIONS, &id, column)
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
        log_change(&mut tx, &new.key, now).await?;
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

    pub(super) async fn connection_sqlite(
        &self,
        key: &ConnectionKey,
    ) -> StoreResult<Option<Connection>> {
        let row = sqlx::query(rows::select_connections!(
            "WHERE integration = ? AND connection_id = ?"
        ))
        .bind(&key.integration)
        .bind(&key.connection_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| rows::connection(&row, &self.sealer))
            .transpose()
    }

    pub(super) async fn connections_sqlite(
        &self,
        integration: Option<&str>,
    ) -> StoreResult<Vec<Connection>> {
        let rows = sqlx::query(rows::select_connections!(
            "WHERE ?1 IS NULL OR integration = ?1 ORDER BY integration, connection_id"
        ))
        .bind(integration)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| rows::connection(row, &self.sealer))
            .collect()
    }

    pub(super) async fn delete_connection_sqlite(&self, key: &ConnectionKey) -> StoreResult<bool> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let done =
            sqlx::query("DELETE FROM connections WHERE integration = ? AND connection_id = ?")
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
    }

    pub(super) async fn update_tokens_sqlite(
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
            "UPDATE connections SET access_token = ?, refresh_token = COALESCE(?, refresh_token), \
             id_token = COALESCE(?, id_token), expires_at = ?, scopes = ?, \
             token_version = token_version + 1, updated_at = ? \
             WHERE id = ? AND token_version = ?",
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

    pub(super) async fn mark_needs_reconnect_sqlite(
        &self,
        key: &ConnectionKey,
        token_version: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let done = sqlx::query(
            "UPDATE connections SET status = 'needs_reconnect', status_reason = ?, updated_at = ? \
             WHERE integration = ? AND connection_id = ? AND token_version = ?",
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
    }

    pub(super) async fn set_refresh_failing_sqlite(
        &self,
        key: &ConnectionKey,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let query = match since {
            Some(since) => sqlx::query(
                "UPDATE connections SET refresh_failed_at = ? \
                 WHERE integration = ? AND connection_id = ? AND refresh_failed_at IS NULL",
            )
            .bind(millis(since)),
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
}
