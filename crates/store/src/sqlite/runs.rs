//! Sync state, runs and their leases, run logs and webhook deliveries on SQLite.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::changes::log_change_of_row;
use super::{BEGIN_WRITE, SqliteStore};
use crate::columns::micros;
use crate::records::INTERRUPTED;
use crate::rows;
use crate::{RunCounts, RunLog, RunStatus, StoreResult, SyncRun, SyncState, WebhookDelivery};

/// Notes on the sync's state whether its latest finished run failed (the dashboard's "sync
/// failing"), inside the transaction that finished or failed a run of it. Read back from the
/// runs rather than set from the run at hand, so a run finishing after a newer one (its lease
/// had expired) leaves the newer one's outcome.
async fn note_last_run(
    tx: &mut sqlx::SqliteConnection,
    connection: &str,
    sync: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE sync_states SET last_run_failed = COALESCE((\
         SELECT runs.status = 'failed' FROM sync_runs AS runs \
         WHERE runs.connection_row = sync_states.connection_row \
         AND runs.sync_name = sync_states.sync_name AND runs.status <> 'running' \
         ORDER BY runs.started_at DESC, runs.rowid DESC LIMIT 1), FALSE) \
         WHERE connection_row = ? AND sync_name = ?",
    )
    .bind(connection)
    .bind(sync)
    .execute(tx)
    .await?;
    Ok(())
}

impl SqliteStore {
    pub(super) async fn sync_state_sqlite(
        &self,
        connection: &str,
        sync: &str,
    ) -> StoreResult<SyncState> {
        let row = sqlx::query(
            "SELECT checkpoint, paused, frequency_secs FROM sync_states \
             WHERE connection_row = ? AND sync_name = ?",
        )
        .bind(connection)
        .bind(sync)
        .fetch_optional(&self.reader)
        .await?;
        row.map_or(Ok(SyncState::default()), |row| rows::sync_state(&row))
    }

    /// Sets one column of the sync's state row, creating the row first.
    pub(super) async fn update_sync_state(
        &self,
        connection: &str,
        sync: &str,
        column: SyncStateColumn<'_>,
    ) -> StoreResult<()> {
        // One upsert each: a checkpoint is written after every page.
        let changes_schedule = !matches!(column, SyncStateColumn::Checkpoint(_));
        let query = match column {
            SyncStateColumn::Checkpoint(checkpoint) => sqlx::query(
                "INSERT INTO sync_states (checkpoint, connection_row, sync_name) VALUES (?, ?, ?) \
                 ON CONFLICT (connection_row, sync_name) DO UPDATE SET checkpoint = excluded.checkpoint",
            )
            .bind(checkpoint.map(Value::to_string)),
            SyncStateColumn::Paused(paused) => sqlx::query(
                "INSERT INTO sync_states (paused, connection_row, sync_name) VALUES (?, ?, ?) \
                 ON CONFLICT (connection_row, sync_name) DO UPDATE SET paused = excluded.paused",
            )
            .bind(paused),
            SyncStateColumn::Frequency(secs) => sqlx::query(
                "INSERT INTO sync_states (frequency_secs, connection_row, sync_name) VALUES (?, ?, ?) \
                 ON CONFLICT (connection_row, sync_name) DO UPDATE SET frequency_secs = excluded.frequency_secs",
            )
            .bind(secs.map(|s| s.min(i64::MAX as u64) as i64)),
        };
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        query.bind(connection).bind(sync).execute(&mut *tx).await?;
        if changes_schedule {
            log_change_of_row(&mut tx, connection).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn start_run_sqlite(
        &self,
        connection: &str,
        sync: &str,
        mode: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        unless_succeeded_since: Option<DateTime<Utc>>,
    ) -> StoreResult<Option<String>> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let taken = sqlx::query(
            "INSERT INTO sync_states (connection_row, sync_name, run_lease_owner, run_lease_until) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (connection_row, sync_name) DO UPDATE SET \
             run_lease_owner = excluded.run_lease_owner, run_lease_until = excluded.run_lease_until \
             WHERE run_lease_until IS NULL OR run_lease_until <= ?5",
        )
        .bind(connection)
        .bind(sync)
        .bind(&id)
        .bind(micros(lease_until))
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() == 0 {
            return Ok(None);
        }
        // Checked while holding the lease: a run that finished before it was taken is seen.
        // Runs left running by a dead holder do not count: they are failed below.
        if let Some(since) = unless_succeeded_since {
            let done: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM (SELECT status, started_at FROM sync_runs \
                 WHERE connection_row = ? AND sync_name = ? \
                 ORDER BY started_at DESC, rowid DESC LIMIT 1) AS last \
                 WHERE last.status = 'success' AND last.started_at > ?)",
            )
            .bind(connection)
            .bind(sync)
            .bind(micros(since))
            .fetch_one(&mut *tx)
            .await?;
            if done {
                // Dropping the transaction rolls the lease back.
                return Ok(None);
            }
        }
        // Holding the lease, no other run of this sync can be alive: runs still marked running
        // were left by a holder whose lease expired.
        let interrupted = sqlx::query(
            "UPDATE sync_runs SET status = 'failed', finished_at = ?, error = ? \
             WHERE connection_row = ? AND sync_name = ? AND status = 'running'",
        )
        .bind(micros(now))
        .bind(INTERRUPTED)
        .bind(connection)
        .bind(sync)
        .execute(&mut *tx)
        .await?;
        if interrupted.rows_affected() > 0 {
            note_last_run(&mut tx, connection, sync).await?;
        }
        sqlx::query(
            "INSERT INTO sync_runs (id, connection_row, sync_name, mode, started_at, status) \
             VALUES (?, ?, ?, ?, ?, 'running')",
        )
        .bind(&id)
        .bind(connection)
        .bind(sync)
        .bind(mode)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    pub(super) async fn renew_run_lease_sqlite(
        &self,
        run_id: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE sync_states SET run_lease_until = ? WHERE run_lease_owner = ?")
                .bind(micros(until))
                .bind(run_id)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn finish_run_sqlite(
        &self,
        run_id: &str,
        status: RunStatus,
        counts: RunCounts,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let run: Option<(String, String)> = sqlx::query_as(
            "UPDATE sync_runs SET status = ?, added = ?, updated = ?, deleted = ?, error = ?, \
             finished_at = ? WHERE id = ? RETURNING connection_row, sync_name",
        )
        .bind(status.as_str())
        .bind(counts.added as i64)
        .bind(counts.updated as i64)
        .bind(counts.deleted as i64)
        .bind(error)
        .bind(micros(now))
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((connection, sync)) = run {
            note_last_run(&mut tx, &connection, &sync).await?;
        }
        sqlx::query(
            "UPDATE sync_states SET run_lease_owner = NULL, run_lease_until = NULL \
             WHERE run_lease_owner = ?",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn fail_interrupted_runs_sqlite(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let failed: Vec<(String, String)> = sqlx::query_as(
            "UPDATE sync_runs SET status = 'failed', finished_at = ?1, error = ?2 \
             WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM sync_states \
             WHERE run_lease_owner = sync_runs.id AND run_lease_until > ?1) \
             RETURNING connection_row, sync_name",
        )
        .bind(micros(now))
        .bind(INTERRUPTED)
        .fetch_all(&mut *tx)
        .await?;
        let syncs: std::collections::BTreeSet<&(String, String)> = failed.iter().collect();
        for (connection, sync) in syncs {
            note_last_run(&mut tx, connection, sync).await?;
        }
        tx.commit().await?;
        Ok(failed.len() as u64)
    }

    pub(super) async fn append_run_logs_sqlite(
        &self,
        run_id: &str,
        logs: &[RunLog],
    ) -> StoreResult<()> {
        if logs.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let mut seq: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM sync_run_logs WHERE run_id = ?")
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await?;
        for log in logs {
            seq += 1;
            sqlx::query(
                "INSERT INTO sync_run_logs (run_id, seq, at, level, message) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(run_id)
            .bind(seq)
            .bind(micros(log.at))
            .bind(&log.level)
            .bind(&log.message)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn run_logs_sqlite(&self, run_id: &str) -> StoreResult<Vec<RunLog>> {
        let rows = sqlx::query(
            "SELECT at, level, message FROM sync_run_logs WHERE run_id = ? ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::run_log).collect()
    }

    pub(super) async fn runs_sqlite(
        &self,
        connection: &str,
        sync: &str,
        limit: u32,
    ) -> StoreResult<Vec<SyncRun>> {
        let rows = sqlx::query(rows::select_runs!(
            "WHERE connection_row = ? AND sync_name = ? \
                 ORDER BY started_at DESC, rowid DESC LIMIT ?"
        ))
        .bind(connection)
        .bind(sync)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::run).collect()
    }

    pub(super) async fn save_webhook_delivery_sqlite(
        &self,
        delivery: &WebhookDelivery,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, event_type, created_at, attempts, status, error, \
             delivered, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             attempts = excluded.attempts, status = excluded.status, error = excluded.error, \
             delivered = excluded.delivered",
        )
        .bind(&delivery.id)
        .bind(&delivery.event_type)
        .bind(micros(delivery.created_at))
        .bind(i64::from(delivery.attempts))
        .bind(delivery.status.map(i64::from))
        .bind(&delivery.error)
        .bind(delivery.delivered)
        .bind(&delivery.body)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(super) async fn webhook_deliveries_sqlite(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let rows = sqlx::query(rows::select_deliveries!(
            "ORDER BY created_at DESC, id LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::webhook_delivery).collect()
    }

    pub(super) async fn webhook_delivery_sqlite(
        &self,
        id: &str,
    ) -> StoreResult<Option<WebhookDelivery>> {
        let row = sqlx::query(rows::select_deliveries!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| rows::webhook_delivery(&row)).transpose()
    }
}

/// One settable part of a sync's state.
pub(super) enum SyncStateColumn<'a> {
    Checkpoint(Option<&'a Value>),
    Paused(bool),
    Frequency(Option<u64>),
}
