//! The SQLite side of records and crawls (sync state and runs are in `runs.rs`).
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
//! that has passed a (stamp, id) position never misses a record committed later. The same row
//! counts the model's live and deleted records, moved by each write that changes them
//! ([`count_records`]).

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row};

use super::{BEGIN_WRITE, SCAN_CACHE_KIB, SqliteStore, WRITER_CACHE_KIB};
use crate::batch::{Prepared, prepare};
use crate::columns::micros;
use crate::crash_hook;
use crate::records::{CountChange, next_page};
use crate::rows;
use crate::{
    RecordAction, RecordCursor, RecordJson, RecordPage, RecordQuery, SaveOutcome, StoreError,
    StoreResult, StoredRecord,
};

/// Ids per `IN (…)` list, well below SQLite's limit on bound parameters.
const IDS_PER_QUERY: usize = 500;
/// Rows per multi-row upsert (11 parameters each).
const ROWS_PER_UPSERT: usize = 80;

/// Which records of a batch to write, by position in the batch and in its order: the new ones
/// (or ones deleted before) as added, those whose content hash differs as updated; and how
/// many of the added were deleted before, which move from the model's deleted count to its
/// live one. SQLite compares them in one statement — ids go in as a JSON array, hashes as one
/// blob of 32 bytes each — and answers with one row of positions, because sqlx hands over each
/// result row through a channel, and a row per unchanged record cost more than the lookup
/// itself. The hash index is named because the planner otherwise picks the primary key's,
/// which makes it read the table's rows (encrypted payloads and all) instead of the index
/// alone; it holds `deleted_at`, so counting the deleted ones reads nothing more.
async fn changed_positions(
    tx: &mut sqlx::SqliteConnection,
    connection: &str,
    model: &str,
    ids: &str,
    hashes: &[u8],
) -> StoreResult<(Vec<(usize, RecordAction)>, u64)> {
    let (added, updated, revived): (String, String, i64) = sqlx::query_as(
        "SELECT \
           json_group_array(batch.key) FILTER (WHERE stored.record_id IS NULL \
             OR stored.deleted_at IS NOT NULL), \
           json_group_array(batch.key) FILTER (WHERE stored.record_id IS NOT NULL \
             AND stored.deleted_at IS NULL \
             AND stored.hash IS NOT substr(?4, batch.key * 32 + 1, 32)), \
           COUNT(stored.deleted_at) \
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
    Ok((changed, revived as u64))
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

/// Moves the model's counts of live and deleted records by what a write changed, in its
/// transaction; its clock row exists, as `next_stamp` began the transaction.
async fn count_records(
    tx: &mut sqlx::SqliteConnection,
    connection: &str,
    model: &str,
    change: CountChange,
) -> StoreResult<()> {
    if change.is_none() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE record_clocks SET live = live + ?, deleted = deleted + ? \
         WHERE connection_row = ? AND model = ?",
    )
    .bind(change.live)
    .bind(change.deleted)
    .bind(connection)
    .bind(model)
    .execute(tx)
    .await?;
    Ok(())
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
        let (changed, revived) =
            changed_positions(&mut tx, connection, model, &ids, &hashes).await?;

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
        count_records(
            &mut tx,
            connection,
            model,
            CountChange::saved(added, revived),
        )
        .await?;

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
        crash_hook::reached("sync.mid_batch");
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
        count_records(&mut tx, connection, model, CountChange::deleted(deleted)).await?;
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
        count_records(&mut tx, connection, model, CountChange::deleted(deleted)).await?;
        forget_seen(&mut tx, connection, model).await?;
        sqlx::query("UPDATE crawls SET in_progress = 0 WHERE connection_row = ? AND model = ?")
            .bind(connection)
            .bind(model)
            .execute(&mut *tx)
            .await?;
        crash_hook::reached("sync.in_end_crawl");
        tx.commit().await?;
        Ok(Some(deleted))
    }

    pub(super) async fn records_sqlite(&self, q: &RecordQuery) -> StoreResult<RecordPage> {
        let mut sql = String::from(
            "SELECT record_id, payload, sealed, first_seen_at, last_modified_at, last_action, \
             deleted_at FROM records WHERE connection_row = ? AND model = ?",
        );
        let (past, direction) = q.direction();
        if q.after.is_some() {
            sql.push_str(&format!(" AND (last_modified_at, record_id) {past} (?, ?)"));
        }
        let window_end = match q.scan_limit {
            Some(scanned) => self.window_end(q, scanned).await?,
            None => None,
        };
        if window_end.is_some() {
            let within = q.within_window();
            sql.push_str(&format!(
                " AND (last_modified_at, record_id) {within} (?, ?)"
            ));
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
        sql.push_str(&format!(
            " ORDER BY last_modified_at {direction}, record_id {direction} LIMIT ?"
        ));
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(&q.connection)
            .bind(&q.model);
        if let Some(after) = &q.after {
            query = query.bind(after.modified).bind(&after.id);
        }
        if let Some(end) = &window_end {
            query = query.bind(end.modified).bind(&end.id);
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
        let next = next_page(more, &records, window_end);
        Ok(RecordPage { records, next })
    }

    /// The last of the `scanned` records a page may examine, from its cursor in its order; none
    /// when fewer remain (the page then examines them all).
    async fn window_end(&self, q: &RecordQuery, scanned: u32) -> StoreResult<Option<RecordCursor>> {
        let (past, direction) = q.direction();
        let after = if q.after.is_some() {
            format!(" AND (last_modified_at, record_id) {past} (?, ?)")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT last_modified_at, record_id FROM records WHERE connection_row = ? AND model = ?{after} \
             ORDER BY last_modified_at {direction}, record_id {direction} LIMIT 1 OFFSET ?"
        );
        let mut query = sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(sql))
            .bind(&q.connection)
            .bind(&q.model);
        if let Some(after) = &q.after {
            query = query.bind(after.modified).bind(&after.id);
        }
        let end = query
            .bind(i64::from(scanned.max(1)) - 1)
            .fetch_optional(&self.reader)
            .await?;
        Ok(end.map(|(modified, id)| RecordCursor { modified, id }))
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
}
