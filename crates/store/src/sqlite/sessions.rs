//! The short-lived state around connections on SQLite: the refresh lease a process holds while
//! it refreshes a connection's tokens, the connect sessions and OAuth states of the flows that
//! make connections, and the purge of what has expired.

use chrono::{DateTime, Utc};

use super::{BEGIN_WRITE, SqliteStore};
use crate::columns::{millis, to_json};
use crate::rows;
use crate::sealing::OAUTH_STATES;
use crate::{ConnectSession, ConnectionKey, OAuthState, RefreshLease, StoreResult, TakenState};

impl SqliteStore {
    pub(super) async fn acquire_refresh_lease_sqlite(
        &self,
        key: &ConnectionKey,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshLease> {
        // The holder before, and the taking, in one write transaction: another process's
        // acquisition waits for it.
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let previous: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT refresh_lease_owner, refresh_lease_until FROM connections \
             WHERE integration = ? AND connection_id = ?",
        )
        .bind(&key.integration)
        .bind(&key.connection_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((holder, held_until)) = previous else {
            return Ok(RefreshLease::NotTaken);
        };
        let ours = holder.as_deref() == Some(owner);
        if !ours && held_until.is_some_and(|until| until > millis(now)) {
            return Ok(RefreshLease::NotTaken);
        }
        sqlx::query(
            "UPDATE connections SET refresh_lease_owner = ?, refresh_lease_until = ? \
             WHERE integration = ? AND connection_id = ?",
        )
        .bind(owner)
        .bind(millis(until))
        .bind(&key.integration)
        .bind(&key.connection_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if holder.is_some() && !ours {
            RefreshLease::TakenOver
        } else {
            RefreshLease::Taken
        })
    }

    pub(super) async fn release_refresh_lease_sqlite(
        &self,
        key: &ConnectionKey,
        owner: &str,
    ) -> StoreResult<()> {
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

    pub(super) async fn create_connect_session_sqlite(
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
        .bind(millis(session.expires_at))
        .bind(millis(Utc::now()))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(super) async fn connect_session_sqlite(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>> {
        let row = sqlx::query(
            "SELECT integration, connection_id, connection_config, return_url, expires_at \
             FROM connect_sessions WHERE token_hash = ? AND expires_at > ?",
        )
        .bind(token_hash)
        .bind(millis(now))
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| rows::connect_session(&row)).transpose()
    }

    pub(super) async fn take_connect_session_sqlite(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConnectSession>> {
        let row = sqlx::query(
            "DELETE FROM connect_sessions WHERE token_hash = ? AND expires_at > ? \
             RETURNING integration, connection_id, connection_config, return_url, expires_at",
        )
        .bind(token_hash)
        .bind(millis(now))
        .fetch_optional(&self.writer)
        .await?;
        row.map(|row| rows::connect_session(&row)).transpose()
    }

    pub(super) async fn create_oauth_state_sqlite(
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
        .bind(millis(state.expires_at))
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(super) async fn take_oauth_state_sqlite(
        &self,
        state_hash: &str,
        browser_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<TakenState> {
        // Deleting is what makes a state single-use: of two racing callbacks, one gets the row.
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = ? AND browser_hash = ? \
             AND expires_at > ? RETURNING flow, integration, connection_id, \
             connection_config, return_url, pkce_verifier, browser_hash, expires_at",
        )
        .bind(state_hash)
        .bind(browser_hash)
        .bind(millis(now))
        .fetch_optional(&self.writer)
        .await?;
        if let Some(row) = row {
            return Ok(TakenState::Taken(rows::oauth_state(
                &row,
                &self.sealer,
                state_hash,
            )?));
        }
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM oauth_states WHERE state_hash = ? \
             AND expires_at > ?)",
        )
        .bind(state_hash)
        .bind(millis(now))
        .fetch_one(&self.writer)
        .await?;
        Ok(if pending {
            TakenState::OtherBrowser
        } else {
            TakenState::Unknown
        })
    }

    pub(super) async fn purge_expired_sqlite(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let sessions = sqlx::query("DELETE FROM connect_sessions WHERE expires_at <= ?")
            .bind(millis(now))
            .execute(&self.writer)
            .await?;
        let states = sqlx::query("DELETE FROM oauth_states WHERE expires_at <= ?")
            .bind(millis(now))
            .execute(&self.writer)
            .await?;
        sqlx::query("DELETE FROM connection_changes WHERE changed_at <= ?")
            .bind(millis(now) - crate::CHANGES_KEPT_MS)
            .execute(&self.writer)
            .await?;
        let console = self.purge_console_sqlite(now).await?;
        Ok(sessions.rows_affected() + states.rows_affected() + console)
    }
}
