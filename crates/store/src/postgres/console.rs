//! The operator dashboard's sign-ins, listings and activity log on PostgreSQL (the filters and
//! row decoding are shared, in [`crate::console`]).

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::PostgresStore;
use crate::columns::{micros, millis};
use crate::console::{self, bind_params, read};
use crate::copy::Placeholders;
use crate::{
    Activity, ActivityFilter, ConnectionFilter, ConnectionHealth, ConnectionSummaryPage,
    NewActivity, RecordCount, StoreResult,
};

/// What a search looks in: the connection id and the account's name and email, ASCII letters
/// lowered (`lower` in the "C" collation lowers no other, as in SQLite).
const SEARCHED: &[&str] = &[
    "lower(c.connection_id COLLATE \"C\")",
    "lower((c.account::json ->> 'display_name') COLLATE \"C\")",
    "lower((c.account::json ->> 'email') COLLATE \"C\")",
];

impl PostgresStore {
    pub(super) async fn create_console_session_pg(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, expires_at, created_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(millis(expires_at))
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn console_session_valid_pg(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM console_sessions WHERE token_hash = $1 AND expires_at > $2)",
        )
        .bind(token_hash)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?)
    }

    pub(super) async fn delete_console_session_pg(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn connection_summaries_pg(
        &self,
        filter: &ConnectionFilter,
    ) -> StoreResult<ConnectionSummaryPage> {
        let limit = console::limit(filter.limit);
        let conditions = filter.conditions(Placeholders::Numbered, SEARCHED);
        let sql = format!(
            "{}{} ORDER BY c.integration, c.connection_id LIMIT {}",
            read::SELECT_SUMMARIES,
            conditions.sql(),
            conditions.next_placeholder()
        );
        let query = bind_params!(sqlx::query(AssertSqlSafe(sql)), conditions.params);
        let rows = query
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        read::summary_page(&rows, limit)
    }

    pub(super) async fn connection_health_counts_pg(
        &self,
    ) -> StoreResult<Vec<(String, ConnectionHealth, u64)>> {
        let rows = sqlx::query(read::COUNT_HEALTH)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read::health_count).collect()
    }

    pub(super) async fn record_counts_pg(&self, connection: &str) -> StoreResult<Vec<RecordCount>> {
        // The counts every write keeps on the model's clock row (see the SQLite backend),
        // ordered by the bytes of the model's name as `records.model` and SQLite order it.
        let rows = sqlx::query(
            "SELECT model, live, deleted FROM record_clocks \
             WHERE connection_row = $1 AND (live > 0 OR deleted > 0) \
             ORDER BY model COLLATE \"C\"",
        )
        .bind(connection)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read::record_count).collect()
    }

    pub(super) async fn record_activity_pg(&self, entry: &NewActivity) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO activity (kind, succeeded, integration, connection_id, summary, \
             reference, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(entry.kind.as_str())
        .bind(entry.succeeded)
        .bind(&entry.integration)
        .bind(&entry.connection_id)
        .bind(&entry.summary)
        .bind(&entry.reference)
        .bind(micros(entry.at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn activity_pg(&self, filter: &ActivityFilter) -> StoreResult<Vec<Activity>> {
        let conditions = filter.conditions(Placeholders::Numbered);
        let sql = format!(
            "{}{} ORDER BY id DESC LIMIT {}",
            read::SELECT_ACTIVITY,
            conditions.sql(),
            conditions.next_placeholder()
        );
        let query = bind_params!(sqlx::query(AssertSqlSafe(sql)), conditions.params);
        let rows = query
            .bind(i64::from(console::limit(filter.limit)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read::activity).collect()
    }

    /// Deletes expired sign-ins and activity older than [`crate::ACTIVITY_KEPT`]; how many
    /// sign-ins.
    pub(super) async fn purge_console_pg(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let sessions = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM activity WHERE at < $1")
            .bind(micros(now - crate::ACTIVITY_KEPT))
            .execute(&self.pool)
            .await?;
        Ok(sessions.rows_affected())
    }
}
