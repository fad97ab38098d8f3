//! The PostgreSQL side of records and crawls (sync state and runs are in `runs.rs`).
//!
//! A batch of records is a handful of statements, whatever its size, each carrying the batch as
//! arrays (`UNNEST`): advance the model's clock, compare the batch's hashes with the stored
//! ones (answering only the positions of new and changed records), upsert those, and append
//! the batch's ids to the crawl's seen log. An unchanged record writes nothing but its id in
//! that log. The model's clock row also counts its live and deleted records, moved in the same
//! transaction by each write that changes them ([`count_records`]). Ids are stored as bytes
//! (`BYTEA`), so any id a provider uses survives, NUL included, and sorts as SQLite sorts it.
//!
//! `end_crawl` finds the live records the crawl did not see with one anti-join, then marks
//! them deleted a thousand at a time, each batch its own short transaction.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::{PostgresStore, retrying};
use crate::batch::{Prepared, prepare};
use crate::columns::micros;
use crate::crash_hook;
use crate::records::{CountChange, next_page};
use crate::rows;
use crate::{
    RecordAction, RecordCursor, RecordJson, RecordPage, RecordQuery, SaveOutcome, StoreError,
    StoreResult, StoredRecord,
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
pub(super) const BATCH: usize = 1000;

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

/// Moves the model's counts of live and deleted records by what a write changed, in its
/// transaction, whose first statement advanced (and locked) the clock row holding them.
async fn count_records(
    tx: &mut PgConnection,
    connection: &str,
    model: &str,
    change: CountChange,
) -> StoreResult<()> {
    if change.is_none() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE record_clocks SET live = live + $3, deleted = deleted + $4 \
         WHERE connection_row = $1 AND model = $2",
    )
    .bind(connection)
    .bind(model)
    .bind(change.live)
    .bind(change.deleted)
    .execute(tx)
    .await?;
    Ok(())
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

pub(super) fn id_text(bytes: Vec<u8>) -> StoreResult<String> {
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
        let revived = changed
            .iter()
            .filter(|(_, found, deleted)| *found && *deleted)
            .count() as u64;
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
        let counted = CountChange::saved(outcome.added, revived);
        count_records(&mut tx, connection, model, counted).await?;
        crash_hook::reached("sync.mid_batch");
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
        let marked = sqlx::query(
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
        .await?
        .rows_affected();
        count_records(&mut tx, connection, model, CountChange::deleted(marked)).await?;
        tx.commit().await?;
        Ok(marked)
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
        // The unseen records are marked; the crawl is not ended yet.
        crash_hook::reached("sync.in_end_crawl");
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
        // The row comparison keeps the keyset scan inside `records_by_modification`, read
        // backwards when newest first.
        let (past, direction) = q.direction();
        let within = q.within_window();
        let window_end = match q.scan_limit {
            Some(scanned) => self.window_end(q, scanned).await?,
            None => None,
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT record_id, payload, sealed, first_seen_at, last_modified_at, last_action, \
             deleted_at FROM records WHERE connection_row = $1 AND model = $2 \
             AND ($3::bigint IS NULL OR (last_modified_at, record_id) {past} ($3, $4::bytea)) \
             AND ($5::bigint IS NULL OR last_modified_at > $5) \
             AND (cardinality($6::text[]) = 0 OR last_action = ANY($6)) \
             AND (cardinality($7::bytea[]) = 0 OR record_id = ANY($7)) \
             AND ($9::bigint IS NULL OR (last_modified_at, record_id) {within} ($9, $10::bytea)) \
             ORDER BY last_modified_at {direction}, record_id {direction} LIMIT $8"
        )))
        .bind(&q.connection)
        .bind(&q.model)
        .bind(after_stamp)
        .bind(after_id)
        .bind(q.modified_after.map(micros))
        .bind(&actions)
        .bind(&ids)
        .bind(i64::from(limit) + 1)
        .bind(window_end.as_ref().map(|end| end.modified))
        .bind(window_end.as_ref().map(|end| end.id.as_bytes()))
        .fetch_all(&self.pool)
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
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT last_modified_at, record_id FROM records \
             WHERE connection_row = $1 AND model = $2 \
             AND ($3::bigint IS NULL OR (last_modified_at, record_id) {past} ($3, $4::bytea)) \
             ORDER BY last_modified_at {direction}, record_id {direction} LIMIT 1 OFFSET $5"
        )))
        .bind(&q.connection)
        .bind(&q.model)
        .bind(q.after.as_ref().map(|after| after.modified))
        .bind(q.after.as_ref().map(|after| after.id.as_bytes()))
        .bind(i64::from(scanned.max(1)) - 1)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(RecordCursor {
                modified: row.try_get("last_modified_at")?,
                id: id_text(row.try_get("record_id")?)?,
            })
        })
        .transpose()
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
