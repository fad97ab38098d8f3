//! The operator dashboard's sign-ins, listings and activity log on SQLite (the filters and
//! row decoding are shared, in [`crate::console`]).

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::SqliteStore;
use crate::columns::{micros, millis};
use crate::console::{self, bind_params, read};
use crate::copy::Placeholders;
use crate::{
    Activity, ActivityFilter, ConnectionFilter, ConnectionHealth, ConnectionSummaryPage,
    NewActivity, RecordCount, StoreResult,
};

/// What a search looks in: the connection id and the account's name and email, ASCII letters
/// lowered (SQLite's `lower` lowers no other).
const SEARCHED: &[&str] = &[
    "lower(c.connection_id)",
    "lower(json_extract(c.account, '$.display_name'))",
    "lower(json_extract(c.account, '$.email'))",
];

impl SqliteStore {
    pub(super) async fn create_console_session_sqlite(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, expires_at, created_at) VALUES (?, ?, ?)",
        )
        .bind(token_hash)
        .bind(millis(expires_at))
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(super) async fn console_session_valid_sqlite(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM console_sessions WHERE token_hash = ? AND expires_at > ?)",
        )
        .bind(token_hash)
        .bind(millis(now))
        .fetch_one(&self.reader)
        .await?)
    }

    pub(super) async fn delete_console_session_sqlite(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub(super) async fn connection_summaries_sqlite(
        &self,
        filter: &ConnectionFilter,
    ) -> StoreResult<ConnectionSummaryPage> {
        let limit = console::limit(filter.limit);
        let conditions = filter.conditions(Placeholders::Question, SEARCHED);
        let sql = format!(
            "{}{} ORDER BY c.integration, c.connection_id LIMIT ?",
            read::SELECT_SUMMARIES,
            conditions.sql()
        );
        let query = bind_params!(sqlx::query(AssertSqlSafe(sql)), conditions.params);
        let rows = query
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await?;
        read::summary_page(&rows, limit)
    }

    pub(super) async fn connection_health_counts_sqlite(
        &self,
    ) -> StoreResult<Vec<(String, ConnectionHealth, u64)>> {
        let rows = sqlx::query(read::COUNT_HEALTH)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(read::health_count).collect()
    }

    pub(super) async fn record_counts_sqlite(
        &self,
        connection: &str,
    ) -> StoreResult<Vec<RecordCount>> {
        // The counts every write keeps on the model's clock row: a few rows per connection
        // however many records it holds. A clock without records (a deletion of ids never
        // stored) is left out, as a model without records always was.
        let rows = sqlx::query(
            "SELECT model, live, deleted FROM record_clocks \
             WHERE connection_row = ? AND (live > 0 OR deleted > 0) ORDER BY model",
        )
        .bind(connection)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(read::record_count).collect()
    }

    pub(super) async fn record_activity_sqlite(&self, entry: &NewActivity) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO activity (kind, succeeded, integration, connection_id, summary, \
             reference, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.kind.as_str())
        .bind(entry.succeeded)
        .bind(&entry.integration)
        .bind(&entry.connection_id)
        .bind(&entry.summary)
        .bind(&entry.reference)
        .bind(micros(entry.at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(super) async fn activity_sqlite(
        &self,
        filter: &ActivityFilter,
    ) -> StoreResult<Vec<Activity>> {
        let conditions = filter.conditions(Placeholders::Question);
        let sql = format!(
            "{}{} ORDER BY id DESC LIMIT ?",
            read::SELECT_ACTIVITY,
            conditions.sql()
        );
        let query = bind_params!(sqlx::query(AssertSqlSafe(sql)), conditions.params);
        let rows = query
            .bind(i64::from(console::limit(filter.limit)))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(read::activity).collect()
    }

    /// Deletes expired sign-ins and activity older than [`crate::ACTIVITY_KEPT`]; how many
    /// sign-ins.
    pub(super) async fn purge_console_sqlite(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let sessions = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= ?")
            .bind(millis(now))
            .execute(&self.writer)
            .await?;
        sqlx::query("DELETE FROM activity WHERE at < ?")
            .bind(micros(now - crate::ACTIVITY_KEPT))
            .execute(&self.writer)
            .await?;
        Ok(sessions.rows_affected())
    }
}
