//! Connections on PostgreSQL: their rows saved, read, listed and deleted, their tokens replaced
//! by a compare-and-swap on the token version, and the needs-reconnect and refresh-failing
//! marks. A save that races another replica creating the same connection is tried again.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::Row;

use super::changes::log_change;
use super::{ATTEMPTS, PostgresStore, retrying};
use crate::columns::{from_millis, millis, to_json};
use crate::rows;
use crate::sealing::CONNECTIONS;
use crate::{
    Connection, ConnectionKey, ConnectionStatus, NewConnection, StoreError, StoreResult,
    TokenUpdate, Tokens,
};

impl PostgresStore {
    pub(super) async fn save_connection_pg(
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

    /// One attempt of [`Store::save_connection`](crate::Store::save_connection); `None` when a
    /// replica created the same connection between our read and our insert, so the caller
    /// tries again and updates it.
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

    pub(super) async fn connection_pg(
        &self,
        key: &ConnectionKey,
    ) -> StoreResult<Option<Connection>> {
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

    pub(super) async fn connections_pg(
        &self,
        integration: Option<&str>,
    ) -> StoreResult<Vec<Connection>> {
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

    pub(super) async fn delete_connection_pg(&self, key: &ConnectionKey) -> StoreResult<bool> {
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

    pub(super) async fn update_tokens_pg(
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

    pub(super) async fn mark_needs_reconnect_pg(
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

    pub(super) async fn set_refresh_failing_pg(
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
}
