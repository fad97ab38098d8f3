//! The PostgreSQL side of records, crawls, sync state, runs and webhook deliveries.
//!
//! A batch of records is a handful of statements, whatever its size, each carrying the batch as
//! arrays (`UNNEST`): advance the model's clock, compare the batch's hashes with the stored
//! ones (answering only the positions of new and changed records), upsert those, and append
//! the batch's ids to the crawl's seen log. An unchanged record writes nothing but its id in
//! that log. Ids are stored as bytes (`BYTEA`), so any id a provider uses survives, NUL
//! included, and sorts as SQLite sorts it.
//!
//! `end_crawl` finds the live records the crawl did not see with one anti-join, then marks
//! them deleted a thousand at a time, each batch its own short transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{PostgresStore, log_change_of_row, retrying};
use crate::batch::{Prepared, prepare};
use crate::columns::micros;
use crate::records::INTERRUPTED;
use crate::rotation::Pass;
use crate::rows;
use crate::{
    RecordAction, RecordJson, RecordPage, RecordQuery, RunCounts, RunLog, RunStatus, SaveOutcome,
    StoreError, StoreResult, StoredRecord, SyncRun, SyncState, WebhookDelivery,
};

/// The columns of records to write, as arrays bound to one statement.
struct Rows<'a> {
    ids: Vec<&'a [u8]>,
    payloads: Vec<String>,
    hashes: Vec<&'a [u8]>,
    actions: Vec<&'static str>,
    /// Whether the payloads are sealed: the same for every record of a batch.
    sealed: bool,
}

impl Default for Rows<'_> {
    fn default() -> Self {
        Rows {
            ids: Vec::new(),
            payloads: Vec::new(),
            hashes: Vec::new(),
            actions: Vec::new(),
            sealed: true,
        }
    }
}

impl<'a> Rows<'a> {
    fn push(
        &mut self,
        record: &'a Prepared<'_>,
        payload: String,
        sealed: bool,
        action: RecordAction,
    ) {
        self.ids.push(record.id.as_bytes());
        self.payloads.push(payload);
        self.hashes.push(&record.hash[..]);
        self.actions.push(action.as_str());
        self.sealed = sealed;
    }
}

/// A record inserted by another transaction since this one looked (a unique violation) is a
/// lost race: the whole batch is tried again, and then finds it stored.
fn raced_insert(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            StoreError::Conflict(error.to_string())
        }
        _ => error.into(),
    }
}

/// Records marked deleted per transaction at the end of a crawl, and re-encrypted per
/// transaction by key rotation.
const BATCH: usize = 1000;

/// Advances the model's clock and answers this transaction's stamp (see the SQLite backend);
/// the clock's row stays locked until the transaction ends, so writes of one model's records
/// commit in stamp order.
async fn next_stamp(
    tx: &mut PgConnection,
    connection: &str,
    model: &str,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO record_clocks (connection_row, model, stamp) VALUES ($1, $2, $3) \
         ON CONFLICT (connection_row, model) DO UPDATE SET \
         stamp = GREATEST(record_clocks.stamp + 1, EXCLUDED.stamp) RETURNING stamp",
    )
    .bind(connection)
    .bind(model)
    .bind(micros(now))
    .fetch_one(tx)
    .await?)
}

/// The generation of the model's crawl in progress, if any.
async fn crawl_in_progress(
    tx: &mut PgConnection,
    connection: &str,
    model: &str,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT generation FROM crawls \
         WHERE connection_row = $1 AND model = $2 AND in_progress",
    )
    .bind(connection)
    .bind(model)
    .fetch_optional(tx)
    .await?)
}

fn id_text(bytes: Vec<u8>) -> StoreResult<String> {
    String::from_utf8(bytes)
        .map_err(|_| StoreError::Corrupt("a stored record id is not UTF-8".into()))
}

impl PostgresStore {
    pub(super) async fn save_records_pg(
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
        let ids: Vec<&[u8]> = batch.iter().map(|r| r.id.as_bytes()).collect();
        let hashes: Vec<&[u8]> = batch.iter().map(|r| &r.hash[..]).collect();
        retrying(|| self.try_save_records(connection, model, &batch, (&ids, &hashes), now)).await
    }

    async fn try_save_records(
        &self,
        connection: &str,
        model: &str,
        batch: &[Prepared<'_>],
        (ids, hashes): (&[&[u8]], &[&[u8]]),
        now: DateTime<Utc>,
    ) -> StoreResult<SaveOutcome> {
        let mut tx = self.pool.begin().await?;
        // The transaction's stamp and the crawl in progress, in one round trip.
        let (stamp, generation): (i64, Option<i64>) = sqlx::query_as(
            "WITH clock AS (INSERT INTO record_clocks (connection_row, model, stamp) \
               VALUES ($1, $2, $3) ON CONFLICT (connection_row, model) DO UPDATE SET \
               stamp = GREATEST(record_clocks.stamp + 1, EXCLUDED.stamp) RETURNING stamp) \
             SELECT clock.stamp, (SELECT generation FROM crawls WHERE connection_row = $1 \
               AND model = $2 AND in_progress) FROM clock",
        )
        .bind(connection)
        .bind(model)
        .bind(micros(now))
        .fetch_one(&mut *tx)
        .await?;
        // Positions (from 1) of the new and changed records, and whether each is new; and,
        // in the same statement, every id of the batch, changed or not, appended to the seen
        // log of the crawl in progress. The lateral lookup (kept apart from the join by its
        // `LIMIT`) is one probe of the primary key's index, which holds the hash, per id,
        // whatever the planner believes of the table: a plain join, planned before the table
        // was first analysed, scanned every record of the model for each batch.
        let changed: Vec<(i64, bool, bool)> = sqlx::query_as(
            "WITH seen AS (INSERT INTO crawl_seen (connection_row, model, generation, ids) \
               SELECT $1, $2, $5, $3::bytea[] WHERE $5::bigint IS NOT NULL) \
             SELECT batch.position, stored.found IS NOT NULL, stored.deleted_at IS NOT NULL \
             FROM UNNEST($3::bytea[], $4::bytea[]) WITH ORDINALITY AS batch (id, hash, position) \
             LEFT JOIN LATERAL (SELECT TRUE AS found, records.hash, records.deleted_at \
               FROM records WHERE records.connection_row = $1 AND records.model = $2 \
               AND records.record_id = batch.id LIMIT 1) AS stored ON TRUE \
             WHERE stored.found IS NULL OR stored.deleted_at IS NOT NULL \
               OR stored.hash <> batch.hash \
             ORDER BY batch.position",
        )
        .bind(connection)
        .bind(model)
        .bind(ids)
        .bind(hashes)
        .bind(generation)
        .fetch_all(&mut *tx)
        .await?;
        // New records are inserted, stored ones (changed, or deleted and back) updated: a plain
        // insert costs PostgreSQL about half of an `ON CONFLICT` upsert.
        let mut inserts = Rows::default();
        let mut updates = Rows::default();
        for &(position, found, deleted) in &changed {
            let record = &batch[position as usize - 1];
            let (payload, sealed) =
                self.sealer
                    .payload(connection, model, &record.id, &record.json);
            let (rows, action) = match (found, deleted) {
                (false, _) => (&mut inserts, RecordAction::Added),
                (true, true) => (&mut updates, RecordAction::Added),
                (true, false) => (&mut updates, RecordAction::Updated),
            };
            rows.push(record, payload, sealed, action);
        }
        let outcome = SaveOutcome {
            added: changed
                .iter()
                .filter(|(_, found, deleted)| !found || *deleted)
                .count() as u64,
            updated: changed
                .iter()
                .filter(|(_, found, deleted)| *found && !deleted)
                .count() as u64,
            unchanged: (batch.len() - changed.len()) as u64,
        };
        if !inserts.ids.is_empty() {
            sqlx::query(
                "INSERT INTO records (connection_row, model, record_id, payload, sealed, hash, \
                 first_seen_at, last_modified_at, last_action, deleted_at) \
                 SELECT $1, $2, batch.id, batch.payload, $3, batch.hash, $4, $5, batch.action, NULL \
                 FROM UNNEST($6::bytea[], $7::text[], $8::bytea[], $9::text[]) \
                   AS batch (id, payload, hash, action)",
            )
            .bind(connection)
            .bind(model)
            .bind(inserts.sealed)
            .bind(micros(now))
            .bind(stamp)
            .bind(&inserts.ids)
            .bind(&inserts.payloads)
            .bind(&inserts.hashes)
            .bind(&inserts.actions)
            .execute(&mut *tx)
            .await
            .map_err(raced_insert)?;
        }
        if !updates.ids.is_empty() {
            sqlx::query(
                "UPDATE records SET payload = batch.payload, sealed = $3, hash = batch.hash, \
                 last_modified_at = $4, last_action = batch.action, deleted_at = NULL \
                 FROM UNNEST($5::bytea[], $6::text[], $7::bytea[], $8::text[]) \
                   AS batch (id, payload, hash, action) \
                 WHERE records.connection_row = $1 AND records.model = $2 \
                   AND records.record_id = batch.id",
            )
            .bind(connection)
            .bind(model)
            .bind(updates.sealed)
            .bind(stamp)
            .bind(&updates.ids)
            .bind(&updates.payloads)
            .bind(&updates.hashes)
            .bind(&updates.actions)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.ensure_statistics().await?;
        Ok(outcome)
    }

    /// Has PostgreSQL gather statistics of the records table once it holds records, if it
    /// has none yet. Without them (a new database, or one just filled by `store copy`, before
    /// autovacuum's first pass) the planner cannot tell that a connection and model match many
    /// rows, and looked records up by id through the cursor's index, reading every record of
    /// the model for each one: an initial sync slowed down with every page. Checked once per
    /// process.
    async fn ensure_statistics(&self) -> StoreResult<()> {
        if self.analyzed.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = current_schema() \
             AND tablename = 'records' AND attname = 'connection_row')",
        )
        .fetch_one(&self.pool)
        .await?;
        if !known {
            sqlx::query("ANALYZE records").execute(&self.pool).await?;
        }
        self.analyzed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub(super) async fn delete_records_pg(
        &self,
        connection: &str,
        model: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut deleted = 0;
        for chunk in ids.chunks(BATCH) {
            let chunk: Vec<&[u8]> = chunk.iter().map(|id| id.as_bytes()).collect();
            deleted += retrying(|| self.mark_deleted(connection, model, &chunk, now)).await?;
        }
        Ok(deleted)
    }

    /// Marks live records with these ids deleted, in one transaction; how many were.
    async fn mark_deleted(
        &self,
        connection: &str,
        model: &str,
        ids: &[&[u8]],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let stamp = next_stamp(&mut tx, connection, model, now).await?;
        let done = sqlx::query(
            "UPDATE records SET last_action = 'DELETED', deleted_at = $3, last_modified_at = $4 \
             WHERE connection_row = $1 AND model = $2 AND deleted_at IS NULL \
             AND record_id = ANY($5::bytea[])",
        )
        .bind(connection)
        .bind(model)
        .bind(micros(now))
        .bind(stamp)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn begin_crawl_pg(&self, connection: &str, model: &str) -> StoreResult<()> {
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO crawls (connection_row, model, generation, in_progress) \
                 VALUES ($1, $2, 1, TRUE) ON CONFLICT (connection_row, model) DO UPDATE SET \
                 generation = crawls.generation + 1, in_progress = TRUE",
            )
            .bind(connection)
            .bind(model)
            .execute(&mut *tx)
            .await?;
            forget_seen(&mut tx, connection, model).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    pub(super) async fn end_crawl_pg(
        &self,
        connection: &str,
        model: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<u64>> {
        let mut reader = self.pool.acquire().await?;
        let Some(generation) = crawl_in_progress(&mut reader, connection, model).await? else {
            return Ok(None);
        };
        // The live ids less the ids the crawl saw: `EXCEPT` hashes or sorts both sides once,
        // whatever the planner believes of the tables (an anti-join planned without
        // statistics ran the seen log once per record). Only the records to delete come back.
        let unseen: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT record_id FROM records \
             WHERE connection_row = $1 AND model = $2 AND deleted_at IS NULL \
             EXCEPT SELECT UNNEST(ids) FROM crawl_seen \
             WHERE connection_row = $1 AND model = $2 AND generation = $3",
        )
        .bind(connection)
        .bind(model)
        .bind(generation)
        .fetch_all(&mut *reader)
        .await?;
        drop(reader);
        let mut deleted = 0;
        for chunk in unseen.chunks(BATCH) {
            let chunk: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            deleted += retrying(|| self.mark_deleted(connection, model, &chunk, now)).await?;
        }
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            forget_seen(&mut tx, connection, model).await?;
            sqlx::query(
                "UPDATE crawls SET in_progress = FALSE \
                 WHERE connection_row = $1 AND model = $2 AND generation = $3",
            )
            .bind(connection)
            .bind(model)
            .bind(generation)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await?;
        Ok(Some(deleted))
    }

    pub(super) async fn records_pg(&self, q: &RecordQuery) -> StoreResult<RecordPage> {
        let limit = q.limit.max(1);
        let (after_stamp, after_id) = match &q.after {
            Some(after) => (Some(after.modified), Some(after.id.as_bytes())),
            None => (None, None),
        };
        let actions: Vec<&str> = q.actions.iter().map(|a| a.as_str()).collect();
        let ids: Vec<&[u8]> = q.ids.iter().map(|id| id.as_bytes()).collect();
        // The row comparison keeps the keyset scan inside `records_by_modification`.
        let rows = sqlx::query(
            "SELECT record_id, payload, sealed, first_seen_at, last_modified_at, last_action, \
             deleted_at FROM records WHERE connection_row = $1 AND model = $2 \
             AND ($3::bigint IS NULL OR (last_modified_at, record_id) > ($3, $4::bytea)) \
             AND ($5::bigint IS NULL OR last_modified_at > $5) \
             AND (cardinality($6::text[]) = 0 OR last_action = ANY($6)) \
             AND (cardinality($7::bytea[]) = 0 OR record_id = ANY($7)) \
             ORDER BY last_modified_at, record_id LIMIT $8",
        )
        .bind(&q.connection)
        .bind(&q.model)
        .bind(after_stamp)
        .bind(after_id)
        .bind(q.modified_after.map(micros))
        .bind(&actions)
        .bind(&ids)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
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
        row: &PgRow,
    ) -> StoreResult<StoredRecord> {
        let id = id_text(row.try_get("record_id")?)?;
        rows::record(row, id, &self.sealer, (connection, model))
    }

    /// Re-encrypts sealed record payloads not under the active key, a thousand at a time, in
    /// key order.
    pub(super) async fn rotate_record_payloads(&self) -> StoreResult<Pass> {
        let mut pass = Pass::default();
        let mut after: (String, String, Vec<u8>) = Default::default();
        loop {
            let rows = sqlx::query(
                "SELECT connection_row, model, record_id, payload FROM records \
                 WHERE sealed AND (connection_row, model, record_id) > ($1, $2, $3) \
                 ORDER BY connection_row, model, record_id LIMIT $4",
            )
            .bind(&after.0)
            .bind(&after.1)
            .bind(&after.2)
            .bind(BATCH as i64)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(pass);
            };
            after = (
                last.try_get("connection_row")?,
                last.try_get("model")?,
                last.try_get("record_id")?,
            );
            let mut tx = self.pool.begin().await?;
            for row in &rows {
                let payload: String = row.try_get("payload")?;
                let connection: String = row.try_get("connection_row")?;
                let model: String = row.try_get("model")?;
                let id_bytes: Vec<u8> = row.try_get("record_id")?;
                let id = id_text(id_bytes.clone())?;
                let Some(sealed) =
                    self.sealer
                        .rotate_payload(&connection, &model, &id, &payload)?
                else {
                    pass.current += 1;
                    continue;
                };
                // Compare-and-swap: a sync that rewrote the record meanwhile wrote it under
                // the active key already.
                sqlx::query(
                    "UPDATE records SET payload = $1 WHERE connection_row = $2 AND model = $3 \
                     AND record_id = $4 AND payload = $5",
                )
                .bind(sealed)
                .bind(&connection)
                .bind(&model)
                .bind(&id_bytes)
                .bind(&payload)
                .execute(&mut *tx)
                .await?;
                pass.reencrypted += 1;
            }
            tx.commit().await?;
        }
    }

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
        sqlx::query(
            "UPDATE sync_runs SET status = 'failed', finished_at = $1, error = $2 \
             WHERE connection_row = $3 AND sync_name = $4 AND status = 'running'",
        )
        .bind(micros(now))
        .bind(INTERRUPTED)
        .bind(connection)
        .bind(sync)
        .execute(&mut *tx)
        .await?;
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
        sqlx::query(
            "UPDATE sync_runs SET status = $1, added = $2, updated = $3, deleted = $4, \
             error = $5, finished_at = $6 WHERE id = $7",
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
             WHERE run_lease_owner = $1",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn fail_interrupted_runs_pg(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE sync_runs SET status = 'failed', finished_at = $1, error = $2 \
             WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM sync_states \
             WHERE run_lease_owner = sync_runs.id AND run_lease_until > $1)",
        )
        .bind(micros(now))
        .bind(INTERRUPTED)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
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
             delivered) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET \
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn webhook_deliveries_pg(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let rows = sqlx::query(
            "SELECT id, event_type, created_at, attempts, status, error, delivered \
             FROM webhook_deliveries ORDER BY created_at DESC, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::webhook_delivery).collect()
    }
}

/// Clears a connection's seen log for a model: when its crawl ends, and when a new crawl
/// abandons an unfinished one.
async fn forget_seen(tx: &mut PgConnection, connection: &str, model: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM crawl_seen WHERE connection_row = $1 AND model = $2")
        .bind(connection)
        .bind(model)
        .execute(tx)
        .await?;
    Ok(())
}
