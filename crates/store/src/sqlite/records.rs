//! The SQLite side of records, crawls, sync state, runs and webhook deliveries.
//!
//! The write path is built for throughput: one transaction per batch, the batch's content
//! hashes compared with the stored ones by one statement, only new and changed records
//! encrypted and written (as multi-row upserts), and the batch's ids appended to the crawl's
//! seen log (`crawl_seen`) as one row (a JSON array), so unchanged records are neither
//! rewritten nor even touched.
//!
//! `last_modified_at` is one stamp per write transaction from the model's clock in
//! `record_clocks`, advanced by the transaction's first statement: SQLite lets one transaction
//! write at a time, in whichever process, so stamps are issued in commit order and a listing
//! that has passed a (stamp, id) position never misses a record committed later.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row};

use super::{BEGIN_WRITE, SCAN_CACHE_KIB, SqliteStore, WRITER_CACHE_KIB, log_change_of_row};
use crate::batch::{Prepared, prepare};
use crate::columns::micros;
use crate::rotation::Pass;
use crate::rows;
use crate::{
    RecordAction, RecordJson, RecordPage, RecordQuery, RunCounts, RunLog, RunStatus, SaveOutcome,
    StoreError, StoreResult, StoredRecord, SyncRun, SyncState, WebhookDelivery,
};

/// Ids per `IN (…)` list, well below SQLite's limit on bound parameters.
const IDS_PER_QUERY: usize = 500;
use crate::records::INTERRUPTED;
/// Rows per multi-row upsert (11 parameters each).
const ROWS_PER_UPSERT: usize = 80;

/// Which records of a batch to write, by position in the batch and in its order: the new ones
/// (or ones deleted before) as added, those whose content hash differs as updated. SQLite
/// compares them in one statement — ids go in as a JSON array, hashes as one blob of 32 bytes
/// each — and answers with one row of positions, because sqlx hands over each result row
/// through a channel, and a row per unchanged record cost more than the lookup itself. The
/// hash index is named because the planner otherwise picks the primary key's, which makes it
/// read the table's rows (encrypted payloads and all) instead of the index alone.
async fn changed_positions(
    tx: &mut sqlx::SqliteConnection,
    connection: &str,
    model: &str,
    ids: &str,
    hashes: &[u8],
) -> StoreResult<Vec<(usize, RecordAction)>> {
    let (added, updated): (String, String) = sqlx::query_as(
        "SELECT \
           json_group_array(batch.key) FILTER (WHERE stored.record_id IS NULL \
             OR stored.deleted_at IS NOT NULL), \
           json_group_array(batch.key) FILTER (WHERE stored.record_id IS NOT NULL \
             AND stored.deleted_at IS NULL \
             AND stored.hash IS NOT substr(?4, batch.key * 32 + 1, 32)) \
         FROM json_each(?3) AS batch \
         LEFT JOIN records AS stored INDEXED BY records_hashes \
           ON stored.connection_row = ?1 AND stored.model = ?2 AND stored.record_id = batch.value",
    )
    .bind(connection)
    .bind(model)
    .bind(ids)
    .bind(hashes)
    .fetch_one(tx)
    .await?;
    let positions = |list: &str| {
        serde_json::from_str::<Vec<usize>>(list)
            .map_err(|e| StoreError::Corrupt(format!("positions of changed records: {e}")))
    };
    let mut changed: Vec<(usize, RecordAction)> = positions(&added)?
        .into_iter()
        .map(|at| (at, RecordAction::Added))
        .chain(
            positions(&updated)?
                .into_iter()
                .map(|at| (at, RecordAction::Updated)),
        )
        .collect();
    changed.sort_unstable_by_key(|(at, _)| *at);
    Ok(changed)
}

/// Clears a connection's seen log for a model: when its crawl ends, and when a new crawl
/// abandons an unfinished one.
async fn forget_seen(
    tx: &mut sqlx::SqliteConnection,
    connection: &str,
    model: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM crawl_seen WHERE connection_row = ? AND model = ?")
        .bind(connection)
        .bind(model)
        .execute(tx)
        .await?;
    Ok(())
}

/// Advances the model's clock and answers the stamp of this write transaction: the current
/// time in microseconds, or one past the last stamp when the clock is ahead (a clock that went
/// backwards, or several writes within a microsecond).
async fn next_stamp(
    tx: &mut sqlx::SqliteConnection,
    connection: &str,
    model: &str,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO record_clocks (connection_row, model, stamp) VALUES (?, ?, ?) \
         ON CONFLICT (connection_row, model) DO UPDATE SET \
         stamp = MAX(record_clocks.stamp + 1, excluded.stamp) RETURNING stamp",
    )
    .bind(connection)
    .bind(model)
    .bind(micros(now))
    .fetch_one(tx)
    .await?)
}

fn placeholders(n: usize) -> String {
    let mut text = "?,".repeat(n);
    text.pop();
    text
}

impl SqliteStore {
    pub(super) async fn save_records_sqlite(
        &self,
        connection: &str,
        model: &str,
        records: Vec<RecordJson<'_>>,
        now: DateTime<Utc>,
    ) -> StoreResult<SaveOutcome> {
        let batch = prepare(model, records);
        if batch.is_empty() {
            return Ok(SaveOutcome::default());
        }

        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let stamp = next_stamp(&mut tx, connection, model, now).await?;
        let generation: i64 = sqlx::query_scalar(
            "SELECT generation FROM crawls WHERE connection_row = ? AND model = ? AND in_progress = 1",
        )
        .bind(connection)
        .bind(model)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);

        let ids = serde_json::to_string(&batch.iter().map(|r| r.id.as_ref()).collect::<Vec<_>>())
            .map_err(|e| StoreError::Database(format!("encoding record ids: {e}")))?;
        let hashes: Vec<u8> = batch.iter().flat_map(|record| record.hash).collect();
        let changed = changed_positions(&mut tx, connection, model, &ids, &hashes).await?;

        let now_us = micros(now);
        let added = changed
            .iter()
            .filter(|(_, action)| *action == RecordAction::Added)
            .count() as u64;
        let updated = changed.len() as u64 - added;
        let outcome = SaveOutcome {
            added,
            updated,
            unchanged: batch.len() as u64 - added - updated,
        };
        let changed: Vec<(&Prepared, RecordAction)> = changed
            .into_iter()
            .map(|(at, action)| (&batch[at], action))
            .collect();

        for chunk in changed.chunks(ROWS_PER_UPSERT) {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO records (connection_row, model, record_id, payload, sealed, hash, \
                 first_seen_at, last_modified_at, last_action, deleted_at) \
                 VALUES {values} ON CONFLICT (connection_row, model, record_id) DO UPDATE SET \
                 payload = excluded.payload, sealed = excluded.sealed, hash = excluded.hash, \
                 last_modified_at = excluded.last_modified_at, \
                 last_action = excluded.last_action, deleted_at = NULL"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (record, action) in chunk {
                let (payload, sealed) =
                    self.sealer
                        .payload(connection, model, &record.id, &record.json);
                query = query
                    .bind(connection)
                    .bind(model)
                    .bind(record.id.as_ref())
                    .bind(payload)
                    .bind(sealed)
                    .bind(&record.hash[..])
                    .bind(now_us)
                    .bind(stamp)
                    .bind(action.as_str());
            }
            query.execute(&mut *tx).await?;
        }

        if generation > 0 {
            // Every record of the batch, changed or not, is seen by the crawl in progress.
            sqlx::query(
                "INSERT INTO crawl_seen (connection_row, model, generation, ids) VALUES (?, ?, ?, ?)",
            )
            .bind(connection)
            .bind(model)
            .bind(generation)
            .bind(ids)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    pub(super) async fn delete_records_sqlite(
        &self,
        connection: &str,
        model: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let stamp = next_stamp(&mut tx, connection, model, now).await?;
        let mut deleted = 0;
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "UPDATE records SET last_action = 'DELETED', deleted_at = ?, last_modified_at = ? \
                 WHERE connection_row = ? AND model = ? AND deleted_at IS NULL \
                 AND record_id IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(micros(now))
                .bind(stamp)
                .bind(connection)
                .bind(model);
            for id in chunk {
                query = query.bind(id);
            }
            deleted += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    pub(super) async fn begin_crawl_sqlite(
        &self,
        connection: &str,
        model: &str,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        sqlx::query(
            "INSERT INTO crawls (connection_row, model, generation, in_progress) VALUES (?, ?, 1, 1) \
             ON CONFLICT (connection_row, model) DO UPDATE SET \
             generation = crawls.generation + 1, in_progress = 1",
        )
        .bind(connection)
        .bind(model)
        .execute(&mut *tx)
        .await?;
        forget_seen(&mut tx, connection, model).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a crawl with the writer's temporary storage on files and a small page cache: the
    /// `NOT IN` of [`Self::end_crawl_in`] builds a temporary index of every id the crawl saw,
    /// which in memory (the writer's default, see `writer_options`) would grow with the number
    /// of records, and it scans the model's whole hash index, which the writer's large cache
    /// would keep entire. On a file and a small cache both stay bounded. SQLite changes
    /// `temp_store` only outside a transaction, hence around it.
    pub(super) async fn end_crawl_sqlite(
        &self,
        connection: &str,
        model: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<u64>> {
        let mut writer = self.writer.acquire().await?;
        sqlx::query(AssertSqlSafe(format!(
            "PRAGMA temp_store = FILE; PRAGMA cache_size = -{SCAN_CACHE_KIB}; PRAGMA temp.cache_size = -{SCAN_CACHE_KIB}"
        )))
        .execute(&mut *writer)
        .await?;
        let ended = self.end_crawl_in(&mut writer, connection, model, now).await;
        let restored = sqlx::query(AssertSqlSafe(format!(
            "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{WRITER_CACHE_KIB}"
        )))
        .execute(&mut *writer)
        .await;
        let ended = ended?;
        restored?;
        Ok(ended)
    }

    async fn end_crawl_in(
        &self,
        writer: &mut sqlx::SqliteConnection,
        connection: &str,
        model: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<u64>> {
        let mut tx = sqlx::Connection::begin_with(writer, BEGIN_WRITE).await?;
        let generation: Option<i64> = sqlx::query_scalar(
            "SELECT generation FROM crawls WHERE connection_row = ? AND model = ? AND in_progress = 1",
        )
        .bind(connection)
        .bind(model)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(generation) = generation else {
            return Ok(None);
        };
        let stamp = next_stamp(&mut tx, connection, model, now).await?;
        let deleted = sqlx::query(
            "UPDATE records SET last_action = 'DELETED', deleted_at = ?4, last_modified_at = ?5 \
             WHERE connection_row = ?1 AND model = ?2 AND deleted_at IS NULL \
             AND record_id NOT IN (SELECT seen.value FROM crawl_seen, json_each(crawl_seen.ids) AS seen \
             WHERE crawl_seen.connection_row = ?1 AND crawl_seen.model = ?2 \
             AND crawl_seen.generation = ?3)",
        )
        .bind(connection)
        .bind(model)
        .bind(generation)
        .bind(micros(now))
        .bind(stamp)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        forget_seen(&mut tx, connection, model).await?;
        sqlx::query("UPDATE crawls SET in_progress = 0 WHERE connection_row = ? AND model = ?")
            .bind(connection)
            .bind(model)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(deleted))
    }

    pub(super) async fn records_sqlite(&self, q: &RecordQuery) -> StoreResult<RecordPage> {
        let mut sql = String::from(
            "SELECT record_id, payload, sealed, first_seen_at, last_modified_at, last_action, \
             deleted_at FROM records WHERE connection_row = ? AND model = ?",
        );
        if q.after.is_some() {
            sql.push_str(" AND (last_modified_at, record_id) > (?, ?)");
        }
        if q.modified_after.is_some() {
            sql.push_str(" AND last_modified_at > ?");
        }
        if !q.actions.is_empty() {
            sql.push_str(&format!(
                " AND last_action IN ({})",
                placeholders(q.actions.len())
            ));
        }
        if !q.ids.is_empty() {
            sql.push_str(&format!(
                " AND record_id IN ({})",
                placeholders(q.ids.len())
            ));
        }
        sql.push_str(" ORDER BY last_modified_at, record_id LIMIT ?");
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(&q.connection)
            .bind(&q.model);
        if let Some(after) = &q.after {
            query = query.bind(after.modified).bind(&after.id);
        }
        if let Some(modified_after) = q.modified_after {
            query = query.bind(micros(modified_after));
        }
        for action in &q.actions {
            query = query.bind(action.as_str());
        }
        for id in &q.ids {
            query = query.bind(id);
        }
        let limit = q.limit.max(1);
        let rows = query
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await?;
        let more = rows.len() > limit as usize;
        let records = rows
            .iter()
            .take(limit as usize)
            .map(|row| self.record_from_row(&q.connection, &q.model, row))
            .collect::<StoreResult<Vec<_>>>()?;
        let next = if more {
            records.last().map(|r| r.cursor.clone())
        } else {
            None
        };
        Ok(RecordPage { records, next })
    }

    fn record_from_row(
        &self,
        connection: &str,
        model: &str,
        row: &SqliteRow,
    ) -> StoreResult<StoredRecord> {
        let id: String = row.try_get("record_id")?;
        rows::record(row, id, &self.sealer, (connection, model))
    }

    /// Re-encrypts sealed record payloads not under the active key, a thousand at a time.
    pub(super) async fn rotate_record_payloads(&self) -> StoreResult<Pass> {
        let mut pass = Pass::default();
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT rowid, connection_row, model, record_id, payload FROM records \
                 WHERE sealed = 1 AND rowid > ? ORDER BY rowid LIMIT 1000",
            )
            .bind(after)
            .fetch_all(&self.writer)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(pass);
            };
            after = last.try_get("rowid")?;
            let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
            for row in &rows {
                let payload: String = row.try_get("payload")?;
                let connection: String = row.try_get("connection_row")?;
                let model: String = row.try_get("model")?;
                let id: String = row.try_get("record_id")?;
                let Some(sealed) =
                    self.sealer
                        .rotate_payload(&connection, &model, &id, &payload)?
                else {
                    pass.current += 1;
                    continue;
                };
                // Compare-and-swap: a sync that rewrote the record meanwhile wrote it under
                // the active key already.
                sqlx::query("UPDATE records SET payload = ? WHERE rowid = ? AND payload = ?")
                    .bind(sealed)
                    .bind(row.try_get::<i64, _>("rowid")?)
                    .bind(&payload)
                    .execute(&mut *tx)
                    .await?;
                pass.reencrypted += 1;
            }
            tx.commit().await?;
        }
    }

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
        sqlx::query(
            "UPDATE sync_runs SET status = 'failed', finished_at = ?, error = ? \
             WHERE connection_row = ? AND sync_name = ? AND status = 'running'",
        )
        .bind(micros(now))
        .bind(INTERRUPTED)
        .bind(connection)
        .bind(sync)
        .execute(&mut *tx)
        .await?;
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
        sqlx::query(
            "UPDATE sync_runs SET status = ?, added = ?, updated = ?, deleted = ?, error = ?, \
             finished_at = ? WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(counts.added as i64)
        .bind(counts.updated as i64)
        .bind(counts.deleted as i64)
        .bind(error)
        .bind(micros(now))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
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
        let done = sqlx::query(
            "UPDATE sync_runs SET status = 'failed', finished_at = ?1, error = ?2 \
             WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM sync_states \
             WHERE run_lease_owner = sync_runs.id AND run_lease_until > ?1)",
        )
        .bind(micros(now))
        .bind(INTERRUPTED)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
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
             delivered) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
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
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(super) async fn webhook_deliveries_sqlite(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let rows = sqlx::query(
            "SELECT id, event_type, created_at, attempts, status, error, delivered \
             FROM webhook_deliveries ORDER BY created_at DESC, id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::webhook_delivery).collect()
    }
}

/// One settable part of a sync's state.
pub(super) enum SyncStateColumn<'a> {
    Checkpoint(Option<&'a Value>),
    Paused(bool),
    Frequency(Option<u64>),
}
