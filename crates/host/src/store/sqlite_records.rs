//! The SQLite side of records, crawls, sync state, runs and webhook deliveries.
//!
//! The write path is built for throughput: one transaction per batch, the batch's content
//! hashes compared with the stored ones by one statement, only new and changed records
//! encrypted and written (as multi-row upserts), and the batch's ids appended to the crawl's
//! seen log (`crawl_seen`) as one row (a JSON array), so unchanged records are neither
//! rewritten nor even touched.
//!
//! `last_modified_at` is one stamp per write transaction, strictly greater than the stamp of
//! every earlier transaction (the current time in microseconds, or the last stamp plus one).
//! All writes go through the single writer connection, so stamps are issued in commit order:
//! a listing that has passed a (stamp, id) position never misses a record committed later.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row};

use super::sqlite::{SCAN_CACHE_KIB, SqliteStore, WRITER_CACHE_KIB};
use super::{
    RecordAction, RecordCursor, RecordJson, RecordPage, RecordQuery, RunCounts, RunLog, RunStatus,
    SaveOutcome, StoreError, StoreResult, StoredRecord, SyncRun, SyncState, WebhookDelivery,
};
use crate::crypto::Aad;

const RECORDS: &str = "records";
/// Ids per `IN (…)` list, well below SQLite's limit on bound parameters.
const IDS_PER_QUERY: usize = 500;
/// The error of a run whose process stopped (its lease expired) before it finished.
const INTERRUPTED: &str =
    "the host stopped during the run; the next run resumes from its checkpoint";
/// Rows per multi-row upsert (11 parameters each).
const ROWS_PER_UPSERT: usize = 80;

/// A record ready to be written: its JSON and content hash, computed before any encryption.
struct Prepared<'a> {
    id: Cow<'a, str>,
    json: Cow<'a, str>,
    hash: [u8; 32],
}

fn content_hash(model: &str, id: &str, json: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(model.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    hasher.update([0]);
    hasher.update(json.as_bytes());
    hasher.finalize().into()
}

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

/// The record's identity for the ciphertext's associated data: provider ids may contain any
/// character (NUL included), so the identity is a hash of connection, model and id.
fn row_identity(connection: &str, model: &str, id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(connection.as_bytes());
    hasher.update([0]);
    hasher.update(model.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    // Hex by hand: this runs for every record written, and `format!` per byte was a visible
    // share of an initial sync.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for byte in hasher.finalize() {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    text
}

pub(super) fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

fn from_micros(us: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} is out of range")))
}

fn placeholders(n: usize) -> String {
    let mut text = "?,".repeat(n);
    text.pop();
    text
}

impl SqliteStore {
    /// The stamp of a write transaction; call it only while holding the writer.
    fn next_stamp(&self, now: DateTime<Utc>) -> i64 {
        let now = micros(now);
        let previous = self
            .last_stamp
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or_else(|last| last);
        now.max(previous + 1)
    }

    fn seal_payload(&self, connection: &str, model: &str, id: &str, json: &str) -> String {
        let row = row_identity(connection, model, id);
        self.keys.encrypt(
            json,
            Aad {
                table: RECORDS,
                row: &row,
                column: "payload",
            },
        )
    }

    fn open_payload(
        &self,
        connection: &str,
        model: &str,
        id: &str,
        payload: &str,
        sealed: bool,
    ) -> StoreResult<Value> {
        let parse = |text: &str| {
            serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt(format!("record payload is not JSON: {e}")))
        };
        if !sealed {
            return parse(payload);
        }
        let row = row_identity(connection, model, id);
        let plain = self.keys.decrypt(
            payload,
            Aad {
                table: RECORDS,
                row: &row,
                column: "payload",
            },
        )?;
        parse(secrecy::ExposeSecret::expose_secret(&plain))
    }

    pub(super) async fn save_records_sqlite(
        &self,
        connection: &str,
        model: &str,
        records: Vec<RecordJson<'_>>,
        now: DateTime<Utc>,
    ) -> StoreResult<SaveOutcome> {
        // The last save of an id within a batch wins, as it would in separate calls.
        let mut position: HashMap<String, usize> = HashMap::with_capacity(records.len());
        let mut batch: Vec<Prepared> = Vec::with_capacity(records.len());
        for RecordJson { id, json } in records {
            let hash = content_hash(model, &id, &json);
            let prepared = Prepared { id, json, hash };
            match position.get(prepared.id.as_ref()) {
                Some(&at) => batch[at] = prepared,
                None => {
                    position.insert(prepared.id.clone().into_owned(), batch.len());
                    batch.push(prepared);
                }
            }
        }
        if batch.is_empty() {
            return Ok(SaveOutcome::default());
        }

        let mut tx = self.writer.begin().await?;
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

        let stamp = self.next_stamp(now);
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
                let payload = if self.seal_records {
                    self.seal_payload(connection, model, &record.id, &record.json)
                } else {
                    record.json.clone().into_owned()
                };
                query = query
                    .bind(connection)
                    .bind(model)
                    .bind(record.id.as_ref())
                    .bind(payload)
                    .bind(self.seal_records)
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
        let mut tx = self.writer.begin().await?;
        let stamp = self.next_stamp(now);
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
        let mut tx = self.writer.begin().await?;
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
        let mut tx = sqlx::Connection::begin(writer).await?;
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
        let stamp = self.next_stamp(now);
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
            sql.push_str(" AND (last_modified_at > ? OR (last_modified_at = ? AND record_id > ?))");
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
            query = query
                .bind(after.modified)
                .bind(after.modified)
                .bind(&after.id);
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
        let payload: String = row.try_get("payload")?;
        let sealed: bool = row.try_get("sealed")?;
        let modified: i64 = row.try_get("last_modified_at")?;
        Ok(StoredRecord {
            data: self.open_payload(connection, model, &id, &payload, sealed)?,
            first_seen_at: from_micros(row.try_get("first_seen_at")?)?,
            last_modified_at: from_micros(modified)?,
            last_action: RecordAction::parse(&row.try_get::<String, _>("last_action")?)?,
            deleted_at: row
                .try_get::<Option<i64>, _>("deleted_at")?
                .map(from_micros)
                .transpose()?,
            cursor: RecordCursor {
                modified,
                id: id.clone(),
            },
            id,
        })
    }

    /// Re-encrypts sealed record payloads not under the active key, a thousand at a time.
    pub(super) async fn rotate_records(&self) -> StoreResult<(u64, u64)> {
        let (mut moved, mut current) = (0, 0);
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
                return Ok((moved, current));
            };
            after = last.try_get("rowid")?;
            let mut tx = self.writer.begin().await?;
            for row in &rows {
                let payload: String = row.try_get("payload")?;
                if self.keys.is_current(&payload) {
                    current += 1;
                    continue;
                }
                let connection: String = row.try_get("connection_row")?;
                let model: String = row.try_get("model")?;
                let id: String = row.try_get("record_id")?;
                let identity = row_identity(&connection, &model, &id);
                let sealed = self.keys.reencrypt(
                    &payload,
                    Aad {
                        table: RECORDS,
                        row: &identity,
                        column: "payload",
                    },
                )?;
                // Compare-and-swap: a sync that rewrote the record meanwhile wrote it under
                // the active key already.
                sqlx::query("UPDATE records SET payload = ? WHERE rowid = ? AND payload = ?")
                    .bind(sealed)
                    .bind(row.try_get::<i64, _>("rowid")?)
                    .bind(&payload)
                    .execute(&mut *tx)
                    .await?;
                moved += 1;
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
        let Some(row) = row else {
            return Ok(SyncState::default());
        };
        let checkpoint: Option<String> = row.try_get("checkpoint")?;
        Ok(SyncState {
            checkpoint: checkpoint
                .map(|text| {
                    serde_json::from_str(&text)
                        .map_err(|e| StoreError::Corrupt(format!("checkpoint is not JSON: {e}")))
                })
                .transpose()?,
            paused: row.try_get("paused")?,
            frequency_secs: row
                .try_get::<Option<i64>, _>("frequency_secs")?
                .map(|s| s.max(0) as u64),
        })
    }

    /// Sets one column of the sync's state row, creating the row first.
    pub(super) async fn update_sync_state(
        &self,
        connection: &str,
        sync: &str,
        column: SyncStateColumn<'_>,
    ) -> StoreResult<()> {
        // One upsert each: a checkpoint is written after every page.
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
        query
            .bind(connection)
            .bind(sync)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub(super) async fn start_run_sqlite(
        &self,
        connection: &str,
        sync: &str,
        mode: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.writer.begin().await?;
        // A write first, so the transaction holds the write lock from its first statement and
        // another process's start waits for it instead of reading a lease about to change.
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
        let mut tx = self.writer.begin().await?;
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
        let mut tx = self.writer.begin().await?;
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
        rows.iter()
            .map(|row| {
                Ok(RunLog {
                    at: from_micros(row.try_get("at")?)?,
                    level: row.try_get("level")?,
                    message: row.try_get("message")?,
                })
            })
            .collect()
    }

    pub(super) async fn runs_sqlite(
        &self,
        connection: &str,
        sync: &str,
        limit: u32,
    ) -> StoreResult<Vec<SyncRun>> {
        let rows = sqlx::query(
            "SELECT id, sync_name, mode, started_at, finished_at, status, added, updated, \
             deleted, error FROM sync_runs WHERE connection_row = ? AND sync_name = ? \
             ORDER BY started_at DESC, rowid DESC LIMIT ?",
        )
        .bind(connection)
        .bind(sync)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SyncRun {
                    id: row.try_get("id")?,
                    sync_name: row.try_get("sync_name")?,
                    mode: row.try_get("mode")?,
                    started_at: from_micros(row.try_get("started_at")?)?,
                    finished_at: row
                        .try_get::<Option<i64>, _>("finished_at")?
                        .map(from_micros)
                        .transpose()?,
                    status: RunStatus::parse(&row.try_get::<String, _>("status")?)?,
                    counts: RunCounts {
                        added: row.try_get::<i64, _>("added")?.max(0) as u64,
                        updated: row.try_get::<i64, _>("updated")?.max(0) as u64,
                        deleted: row.try_get::<i64, _>("deleted")?.max(0) as u64,
                    },
                    error: row.try_get("error")?,
                })
            })
            .collect()
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
             FROM webhook_deliveries ORDER BY created_at DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WebhookDelivery {
                    id: row.try_get("id")?,
                    event_type: row.try_get("event_type")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
                    status: row
                        .try_get::<Option<i64>, _>("status")?
                        .map(|s| s.clamp(0, 999) as u16),
                    error: row.try_get("error")?,
                    delivered: row.try_get("delivered")?,
                })
            })
            .collect()
    }
}

/// One settable part of a sync's state.
pub(super) enum SyncStateColumn<'a> {
    Checkpoint(Option<&'a Value>),
    Paused(bool),
    Frequency(Option<u64>),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use plugboard_core::{EncodedRecords, Record};
    use secrecy::{SecretBox, SecretString};
    use serde_json::json;

    use super::*;
    use crate::crypto::KeyRing;
    use crate::store::{ConnectionKey, NewConnection, Store, Tokens};

    async fn store_with_connection(name: &str) -> (SqliteStore, String, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("plugboard-records-{name}-{}", uuid::Uuid::new_v4()));
        let keys = BTreeMap::from([("k1".to_owned(), SecretBox::new(Box::new([7u8; 32])))]);
        let ring = Arc::new(KeyRing::new(&keys, "k1").unwrap());
        let store = SqliteStore::open(&dir.join("store.db"), ring)
            .await
            .unwrap();
        let connection = store
            .save_connection(
                NewConnection {
                    key: ConnectionKey::new("microsoft", "c1"),
                    provider: "microsoft-people".into(),
                    connection_config: BTreeMap::new(),
                    account: None,
                    tokens: Tokens {
                        access_token: SecretString::from("a"),
                        refresh_token: None,
                        id_token: None,
                        expires_at: None,
                        scopes: vec![],
                    },
                },
                Utc::now(),
            )
            .await
            .unwrap();
        (store, connection.id, dir)
    }

    fn rec(id: &str, n: i64) -> RecordJson<'static> {
        RecordJson::encode(Record::new(id, json!({ "id": id, "n": n }))).unwrap()
    }

    fn query(connection: &str) -> RecordQuery {
        RecordQuery {
            connection: connection.to_owned(),
            model: "Person".into(),
            after: None,
            limit: 100,
            modified_after: None,
            actions: vec![],
            ids: vec![],
        }
    }

    async fn live_ids(store: &SqliteStore, connection: &str) -> Vec<String> {
        let page = store.records(&query(connection)).await.unwrap();
        let mut ids: Vec<String> = page
            .records
            .into_iter()
            .filter(|r| r.deleted_at.is_none())
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn crawls_delete_only_unseen_records_and_unchanged_records_are_not_rewritten() {
        let (store, c, dir) = store_with_connection("crawl").await;
        let now = Utc::now();
        let saved = store
            .save_records(
                &c,
                "Person",
                vec![rec("a", 1), rec("b", 1), rec("c", 1)],
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            saved,
            SaveOutcome {
                added: 3,
                updated: 0,
                unchanged: 0
            }
        );
        let before = store.records(&query(&c)).await.unwrap().records;

        // A crawl sees a (unchanged) and c (changed), across two batches, then ends.
        store.begin_crawl(&c, "Person").await.unwrap();
        let first = store
            .save_records(&c, "Person", vec![rec("a", 1)], now)
            .await
            .unwrap();
        assert_eq!(
            first,
            SaveOutcome {
                added: 0,
                updated: 0,
                unchanged: 1
            }
        );
        let second = store
            .save_records(&c, "Person", vec![rec("c", 2), rec("c", 3)], now)
            .await
            .unwrap();
        assert_eq!(
            second,
            SaveOutcome {
                added: 0,
                updated: 1,
                unchanged: 0
            },
            "last save wins"
        );
        assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(1));
        assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), None);

        let after = store.records(&query(&c)).await.unwrap().records;
        let get = |records: &[StoredRecord], id: &str| {
            records.iter().find(|r| r.id == id).cloned().unwrap()
        };
        assert_eq!(
            get(&after, "a"),
            get(&before, "a"),
            "unchanged: not rewritten"
        );
        let changed = get(&after, "c");
        assert_eq!(changed.last_action, RecordAction::Updated);
        assert_eq!(changed.data["n"], 3);
        assert!(changed.last_modified_at > get(&before, "c").last_modified_at);
        let deleted = get(&after, "b");
        assert_eq!(deleted.last_action, RecordAction::Deleted);
        assert!(deleted.deleted_at.is_some());
        assert_eq!(live_ids(&store, &c).await, ["a", "c"]);

        // A crawl that never ends deletes nothing; a deleted record saved again is ADDED.
        store.begin_crawl(&c, "Person").await.unwrap();
        store
            .save_records(&c, "Person", vec![rec("b", 1)], now)
            .await
            .unwrap();
        assert_eq!(live_ids(&store, &c).await, ["a", "b", "c"]);
        let b = store
            .records(&RecordQuery {
                ids: vec!["b".into()],
                ..query(&c)
            })
            .await
            .unwrap()
            .records;
        assert_eq!(b[0].last_action, RecordAction::Added);

        // Payloads are sealed at rest.
        let raw: String = sqlx::query_scalar("SELECT payload FROM records WHERE record_id = 'a'")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert!(raw.starts_with("pb1:k1:"), "{raw}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Ids travel to SQLite as JSON (the batch compared with stored hashes, the crawl's seen
    /// log), so any text a provider uses as an id must come back out of JSON byte for byte.
    #[tokio::test]
    async fn ids_with_any_characters_are_compared_and_seen_exactly() {
        let (store, c, dir) = store_with_connection("odd-ids").await;
        let now = Utc::now();
        let ids = [
            "a\0b", "a", "é\"x\\", "AAMk+/=", "😀", " space ", "\u{7f}\n",
        ];
        let batch = || ids.iter().map(|id| rec(id, 1)).collect::<Vec<_>>();
        store.begin_crawl(&c, "Person").await.unwrap();
        let first = store
            .save_records(&c, "Person", batch(), now)
            .await
            .unwrap();
        assert_eq!(first.added, ids.len() as u64);
        assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(0));

        store.begin_crawl(&c, "Person").await.unwrap();
        let again = store
            .save_records(&c, "Person", batch(), now)
            .await
            .unwrap();
        assert_eq!(
            again,
            SaveOutcome {
                added: 0,
                updated: 0,
                unchanged: ids.len() as u64
            }
        );
        assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(0));
        let mut expected: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        expected.sort();
        assert_eq!(live_ids(&store, &c).await, expected);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The seen log is per crawl: a crawl begun again does not count what the abandoned one
    /// saw, and an ended crawl leaves nothing behind.
    #[tokio::test]
    async fn a_crawl_begun_again_forgets_what_the_abandoned_one_saw() {
        let (store, c, dir) = store_with_connection("abandoned").await;
        let now = Utc::now();
        let all = vec![rec("a", 1), rec("b", 1)];
        store.save_records(&c, "Person", all, now).await.unwrap();
        store.begin_crawl(&c, "Person").await.unwrap();
        let seen_a = vec![rec("a", 1)];
        store.save_records(&c, "Person", seen_a, now).await.unwrap();
        store.begin_crawl(&c, "Person").await.unwrap();
        let seen_b = vec![rec("b", 1)];
        store.save_records(&c, "Person", seen_b, now).await.unwrap();
        assert_eq!(store.end_crawl(&c, "Person", now).await.unwrap(), Some(1));
        assert_eq!(live_ids(&store, &c).await, ["b"]);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM crawl_seen")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(left, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    async fn hashes(store: &SqliteStore) -> Vec<(String, Vec<u8>)> {
        sqlx::query_as("SELECT record_id, hash FROM records ORDER BY record_id")
            .fetch_all(&store.reader)
            .await
            .unwrap()
    }

    /// A built-in provider's records are serialised by the host; a plugin's arrive as the JSON
    /// its `serde_json` wrote. Both must hash alike, or switching a provider between built in
    /// and plugin would report every record UPDATED.
    #[tokio::test]
    async fn records_hash_the_same_from_a_value_and_from_a_plugins_json() {
        let (store, c, dir) = store_with_connection("raw").await;
        let now = Utc::now();
        // Keys out of order, nesting, escapes, floats and non-ASCII text: what serialisation
        // could disagree on.
        let records = vec![
            Record::new(
                "p\"1",
                json!({"zeta": 1, "alpha": {"y": [1.5, -0.0, 1e300], "b": null}, "text": "ü\n\u{1}"}),
            ),
            Record::new("p2", json!([{"b": true, "a": "x"}])),
        ];
        let built_in: Vec<RecordJson> = records
            .iter()
            .cloned()
            .map(|r| RecordJson::encode(r).unwrap())
            .collect();
        let added = store
            .save_records(&c, "Person", built_in, now)
            .await
            .unwrap();
        assert_eq!(added.added, 2);
        let from_values = hashes(&store).await;

        let encoded = EncodedRecords::encode(&records).unwrap();
        let raw = encoded.raw().unwrap();
        let from_plugin: Vec<RecordJson> = raw.into_iter().map(RecordJson::from).collect();
        assert!(
            from_plugin
                .iter()
                .all(|r| matches!(r.json, Cow::Borrowed(_))),
            "a plugin's record data is not copied"
        );
        let again = store
            .save_records(&c, "Person", from_plugin, now)
            .await
            .unwrap();
        assert_eq!(
            again,
            SaveOutcome {
                added: 0,
                updated: 0,
                unchanged: 2
            }
        );
        assert_eq!(hashes(&store).await, from_values);
        let stored = store.records(&query(&c)).await.unwrap().records;
        let data: Vec<&Value> = stored.iter().map(|r| &r.data).collect();
        assert_eq!(data, [&records[0].data, &records[1].data]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn the_cursor_is_stable_while_records_are_written() {
        let (store, c, dir) = store_with_connection("cursor").await;
        let now = Utc::now();
        let first: Vec<RecordJson> = (0..10).map(|i| rec(&format!("r{i:02}"), 0)).collect();
        store.save_records(&c, "Person", first, now).await.unwrap();
        let page = store
            .records(&RecordQuery {
                limit: 4,
                ..query(&c)
            })
            .await
            .unwrap();
        assert_eq!(page.records.len(), 4);
        let cursor = page.next.clone().unwrap();
        assert_eq!(RecordCursor::decode(&cursor.encode()), Some(cursor.clone()));

        // Written between two pages, with a clock that went backwards: still after the cursor.
        let earlier = now - chrono::Duration::hours(1);
        store
            .save_records(&c, "Person", vec![rec("r00", 9), rec("new", 0)], earlier)
            .await
            .unwrap();
        let mut seen: Vec<String> = page.records.iter().map(|r| r.id.clone()).collect();
        let mut after = Some(cursor);
        while let Some(position) = after {
            let next = store
                .records(&RecordQuery {
                    limit: 4,
                    after: Some(position),
                    ..query(&c)
                })
                .await
                .unwrap();
            seen.extend(next.records.iter().map(|r| r.id.clone()));
            after = next.next;
        }
        assert_eq!(seen.len(), 12, "{seen:?}");
        assert_eq!(&seen[10..], ["new", "r00"], "{seen:?}");

        let updated = store
            .records(&RecordQuery {
                actions: vec![RecordAction::Updated],
                ..query(&c)
            })
            .await
            .unwrap();
        assert_eq!(updated.records.len(), 1);
        let modified_after = store
            .records(&RecordQuery {
                modified_after: Some(
                    updated.records[0].last_modified_at - chrono::Duration::microseconds(1),
                ),
                ..query(&c)
            })
            .await
            .unwrap();
        assert_eq!(modified_after.records.len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn sync_state_runs_and_logs_round_trip() {
        let (store, c, dir) = store_with_connection("runs").await;
        let now = Utc::now();
        assert_eq!(
            store.sync_state(&c, "people").await.unwrap(),
            SyncState::default()
        );
        store
            .set_checkpoint(&c, "people", Some(&json!({"next": "x"})))
            .await
            .unwrap();
        store.set_sync_paused(&c, "people", true).await.unwrap();
        store
            .set_sync_frequency(&c, "people", Some(30))
            .await
            .unwrap();
        assert_eq!(
            store.sync_state(&c, "people").await.unwrap(),
            SyncState {
                checkpoint: Some(json!({"next": "x"})),
                paused: true,
                frequency_secs: Some(30)
            }
        );
        let lease = now + chrono::Duration::seconds(30);
        let run = store
            .start_run(&c, "people", "incremental", lease, now)
            .await
            .unwrap()
            .unwrap();
        store
            .append_run_logs(
                &run,
                &[RunLog {
                    at: now,
                    level: "info".into(),
                    message: "hi".into(),
                }],
            )
            .await
            .unwrap();
        // Its lease is live: start-up recovery leaves it alone; once expired, it is failed.
        assert_eq!(store.fail_interrupted_runs(now).await.unwrap(), 0);
        assert_eq!(store.fail_interrupted_runs(lease).await.unwrap(), 1);
        let runs = store.runs(&c, "people", 5).await.unwrap();
        assert_eq!(runs[0].status, RunStatus::Failed);
        assert!(runs[0].error.as_deref().unwrap().contains("host stopped"));
        let second = store
            .start_run(
                &c,
                "people",
                "full",
                lease + chrono::Duration::seconds(30),
                lease,
            )
            .await
            .unwrap()
            .unwrap();
        let counts = RunCounts {
            added: 1,
            updated: 2,
            deleted: 3,
        };
        store
            .finish_run(&second, RunStatus::Success, counts, None, now)
            .await
            .unwrap();
        let runs = store.runs(&c, "people", 5).await.unwrap();
        assert_eq!(
            (runs[0].status, runs[0].counts),
            (RunStatus::Success, counts)
        );
        assert_eq!(store.run_logs(&run).await.unwrap()[0].message, "hi");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_run_lease_admits_one_run_until_it_finishes_or_expires() {
        let (store, c, dir) = store_with_connection("run-lease").await;
        let now = Utc::now();
        let secs = chrono::Duration::seconds;
        let first = store
            .start_run(&c, "people", "full", now + secs(30), now)
            .await
            .unwrap()
            .expect("a free lease is taken");
        // Held: no second run of the sync, but another sync of the connection may run.
        assert_eq!(
            store
                .start_run(&c, "people", "full", now + secs(30), now)
                .await
                .unwrap(),
            None
        );
        let other = store
            .start_run(&c, "contacts", "full", now + secs(30), now)
            .await
            .unwrap()
            .expect("leases are per sync");
        // Renewed past its first expiry, it still holds the sync there.
        assert!(store.renew_run_lease(&first, now + secs(60)).await.unwrap());
        let later = now + secs(45);
        assert_eq!(
            store
                .start_run(&c, "people", "full", later + secs(30), later)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.fail_interrupted_runs(later).await.unwrap(),
            1,
            "only the unrenewed one"
        );
        // Finishing releases the lease at once.
        store
            .finish_run(
                &first,
                RunStatus::Success,
                RunCounts::default(),
                None,
                later,
            )
            .await
            .unwrap();
        let second = store
            .start_run(&c, "people", "full", later + secs(30), later)
            .await
            .unwrap()
            .expect("released");
        // Its holder died: after expiry another run takes over and fails the dead one, whose
        // renewal then reports the loss.
        let after = later + secs(31);
        let third = store
            .start_run(&c, "people", "incremental", after + secs(30), after)
            .await
            .unwrap()
            .expect("expired");
        assert!(
            !store
                .renew_run_lease(&second, after + secs(30))
                .await
                .unwrap()
        );
        let runs = store.runs(&c, "people", 5).await.unwrap();
        let status = |id: &str| runs.iter().find(|r| r.id == id).unwrap().status;
        assert_eq!(
            (status(&first), status(&second), status(&third)),
            (RunStatus::Success, RunStatus::Failed, RunStatus::Running)
        );
        let contacts = store.runs(&c, "contacts", 5).await.unwrap();
        assert_eq!(
            (contacts[0].id.as_str(), contacts[0].status),
            (other.as_str(), RunStatus::Failed)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
