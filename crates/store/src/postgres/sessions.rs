//! The short-lived state around connections on PostgreSQL: the refresh lease a replica holds
//! while it refreshes a connection's tokens, the connect sessions and OAuth states of the flows
//! that make connections, and the purge of what has expired.

use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::columns::{millis, to_json};
use crate::rows;
use crate::sealing::OAUTH_STATES;
use crate::{ConnectSession, ConnectionKey, OAuthState, RefreshLease, StoreResult, TakenState};

impl PostgresStore {
    pub(super) async fn acquire_refresh_lease_pg(
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

    pub(super) async fn release_refresh_lease_pg(
        &self,
        key: &ConnectionKey,
        owner: &str,
    ) -> StoreResult<()> {
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

    pub(super) async fn create_connect_session_pg(
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

    pub(super) async fn connect_session_pg(
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

    pub(super) async fn take_connect_session_pg(
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

    pub(super) async fn create_oauth_state_pg(
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

    pub(super) async fn take_oauth_state_pg(
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

    pub(super) async fn purge_expired_pg(&self, now: DateTime<Utc>) -> StoreResult<u64> {
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
}
