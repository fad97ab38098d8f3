//! Sync state, runs and their leases, run logs and webhook deliveries on PostgreSQL.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use super::changes::log_change_of_row;
use super::{PostgresStore, retrying};
use crate::columns::micros;
use crate::records::INTERRUPTED;
use crate::rows;
use crate::{RunCounts, RunLog, RunStatus, StoreResult, SyncRun, SyncState, WebhookDelivery};

/// Notes on the sync's state whether its latest finished run failed (the dashboard's "sync
/// failing"), inside the transaction that finished or failed a run of it. Read back from the
/// runs rather than set from the run at hand, so a run finishing after a newer one (its lease
/// had expired) leaves the newer one's outcome.
async fn note_last_run(tx: &mut PgConnection, connection: &str, sync: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE sync_states SET last_run_failed = COALESCE((\
         SELECT runs.status = 'failed' FROM sync_runs AS runs \
         WHERE runs.connection_row = sync_states.connection_row \
         AND runs.sync_name = sync_states.sync_name AND runs.status <> 'running' \
         ORDER BY runs.started_at DESC, runs.seq DESC LIMIT 1), FALSE) \
         WHERE connection_row = $1 AND sync_name = $2",
    )
    .bind(connection)
    .bind(sync)
    .execute(tx)
    .await?;
    Ok(())
}

impl PostgresStore {
    pub(super) async fn sync_state_pg(
        &self,
        connection: &str,
        sync: &str,
    ) -> StoreResult<SyncState> {
        let row = sqlx::query(
            "SELECT checkpoint, paused, frequency_secs FROM sync_states \
             WHERE connection_row = $1 AND sync_name = $2",
        )
        .bind(connection)
        .bind(sync)
        .fetch_optional(&self.pool)
        .await?;
        row.map_or(Ok(SyncState::default()), |row| rows::sync_state(&row))
    }

    pub(super) async fn set_checkpoint_pg(
        &self,
        connection: &str,
        sync: &str,
        checkpoint: Option<&Value>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sync_states (connection_row, sync_name, checkpoint) VALUES ($1, $2, $3) \
             ON CONFLICT (connection_row, sync_name) DO UPDATE SET checkpoint = EXCLUDED.checkpoint",
        )
        .bind(connection)
        .bind(sync)
        .bind(checkpoint.map(Value::to_string))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets whether the sync is paused, or its frequency (`Some(None)` clears it), and notes
    /// the change for other replicas' schedulers.
    pub(super) async fn set_schedule_pg(
        &self,
        connection: &str,
        sync: &str,
        paused: Option<bool>,
        frequency: Option<Option<u64>>,
    ) -> StoreResult<()> {
        let frequency_given = frequency.is_some();
        let frequency = frequency.flatten().map(|s| s.min(i64::MAX as u64) as i64);
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO sync_states (connection_row, sync_name, paused, frequency_secs) \
                 VALUES ($1, $2, COALESCE($3, FALSE), $5) \
                 ON CONFLICT (connection_row, sync_name) DO UPDATE SET \
                 paused = COALESCE($3, sync_states.paused), \
                 frequency_secs = CASE WHEN $4 THEN $5 ELSE sync_states.frequency_secs END",
            )
            .bind(connection)
            .bind(sync)
            .bind(paused)
            .bind(frequency_given)
            .bind(frequency)
            .execute(&mut *tx)
            .await?;
            log_change_of_row(&mut tx, connection).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    pub(super) async fn start_run_pg(
        &self,
        connection: &str,
        sync: &str,
        mode: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        unless_succeeded_since: Option<DateTime<Utc>>,
    ) -> StoreResult<Option<String>> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await?;
        // ON CONFLICT locks the row and checks the lease on its latest version: of replicas
        // racing for a free lease, one takes it.
        let taken = sqlx::query(
            "INSERT INTO sync_states (connection_row, sync_name, run_lease_owner, run_lease_until) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (connection_row, sync_name) DO UPDATE SET \
             run_lease_owner = EXCLUDED.run_lease_owner, \
             run_lease_until = EXCLUDED.run_lease_until \
             WHERE sync_states.run_lease_until IS NULL OR sync_states.run_lease_until <= $5",
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
                 WHERE connection_row = $1 AND sync_name = $2 \
                 ORDER BY started_at DESC, seq DESC LIMIT 1) AS last \
                 WHERE last.status = 'success' AND last.started_at > $3)",
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
        let interrupted = sqlx::query(
            "UPDATE sync_runs SET status = 'failed', finished_at = $1, error = $2 \
             WHERE connection_row = $3 AND sync_name = $4 AND status = 'running'",
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
             VALUES ($1, $2, $3, $4, $5, 'running')",
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

    pub(super) async fn renew_run_lease_pg(
        &self,
        run_id: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE sync_states SET run_lease_until = $1 WHERE run_lease_owner = $2")
                .bind(micros(until))
                .bind(run_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn finish_run_pg(
        &self,
        run_id: &str,
        status: RunStatus,
        counts: RunCounts,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let run: Option<(String, String)> = sqlx::query_as(
            "UPDATE sync_runs SET status = $1, added = $2, updated = $3, deleted = $4, \
             error = $5, finished_at = $6 WHERE id = $7 RETURNING connection_row, sync_name",
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
             WHERE run_lease_owner = $1",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn fail_interrupted_runs_pg(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let failed: Vec<(String, String)> = sqlx::query_as(
            "UPDATE sync_runs SET status = 'failed', finished_at = $1, error = $2 \
             WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM sync_states \
             WHERE run_lease_owner = sync_runs.id AND run_lease_until > $1) \
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

    pub(super) async fn append_run_logs_pg(
        &self,
        run_id: &str,
        logs: &[RunLog],
    ) -> StoreResult<()> {
        if logs.is_empty() {
            return Ok(());
        }
        let at: Vec<i64> = logs.iter().map(|log| micros(log.at)).collect();
        let levels: Vec<&str> = logs.iter().map(|log| log.level.as_str()).collect();
        let messages: Vec<&str> = logs.iter().map(|log| log.message.as_str()).collect();
        sqlx::query(
            "INSERT INTO sync_run_logs (run_id, seq, at, level, message) \
             SELECT $1, last.seq + line.position, line.at, line.level, line.message \
             FROM (SELECT COALESCE(MAX(seq), 0) AS seq FROM sync_run_logs WHERE run_id = $1) AS last, \
             UNNEST($2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY \
               AS line (at, level, message, position)",
        )
        .bind(run_id)
        .bind(&at)
        .bind(&levels)
        .bind(&messages)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn run_logs_pg(&self, run_id: &str) -> StoreResult<Vec<RunLog>> {
        let rows = sqlx::query(
            "SELECT at, level, message FROM sync_run_logs WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::run_log).collect()
    }

    pub(super) async fn runs_pg(
        &self,
        connection: &str,
        sync: &str,
        limit: u32,
    ) -> StoreResult<Vec<SyncRun>> {
        let rows = sqlx::query(rows::select_runs!(
            "WHERE connection_row = $1 AND sync_name = $2 \
                 ORDER BY started_at DESC, seq DESC LIMIT $3"
        ))
        .bind(connection)
        .bind(sync)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::run).collect()
    }

    pub(super) async fn save_webhook_delivery_pg(
        &self,
        delivery: &WebhookDelivery,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, event_type, created_at, attempts, status, error, \
             delivered, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET \
             attempts = EXCLUDED.attempts, status = EXCLUDED.status, error = EXCLUDED.error, \
             delivered = EXCLUDED.delivered",
        )
        .bind(&delivery.id)
        .bind(&delivery.event_type)
        .bind(micros(delivery.created_at))
        .bind(i64::from(delivery.attempts))
        .bind(delivery.status.map(i64::from))
        .bind(&delivery.error)
        .bind(delivery.delivered)
        .bind(&delivery.body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn webhook_deliveries_pg(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let rows = sqlx::query(rows::select_deliveries!(
            "ORDER BY created_at DESC, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::webhook_delivery).collect()
    }

    pub(super) async fn webhook_delivery_pg(
        &self,
        id: &str,
    ) -> StoreResult<Option<WebhookDelivery>> {
        let row = sqlx::query(rows::select_deliveries!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| rows::webhook_delivery(&row)).transpose()
    }
}
