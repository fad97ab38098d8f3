//! The SQLite side of moving a store: rows read and written as stored (see [`crate::copy`]).

use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{AssertSqlSafe, Row};

use super::{BEGIN_WRITE, SqliteStore};
use crate::copy::{self, Cell, Kind, Placeholders, Table};
use crate::{StoreError, StoreResult};

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// Where a table's rows are read from: the table, except the crawl seen log, read as one row
/// per crawl with its batches' ids in one JSON array.
fn source(table: &Table) -> &'static str {
    if table.name == "crawl_seen" {
        "(SELECT crawl_seen.connection_row AS connection_row, crawl_seen.model AS model, \
         crawl_seen.generation AS generation, json_group_array(seen.value) AS ids \
         FROM crawl_seen, json_each(crawl_seen.ids) AS seen \
         GROUP BY crawl_seen.connection_row, crawl_seen.model, crawl_seen.generation)"
    } else {
        table.name
    }
}

fn bind<'q>(query: Query<'q>, cell: &Cell, kind: Kind) -> StoreResult<Query<'q>> {
    Ok(match (cell, kind) {
        (Cell::Null, _) => query.bind(None::<String>),
        (Cell::Text(text), _) => query.bind(text.clone()),
        (Cell::Int(n), _) => query.bind(*n),
        (Cell::Bool(b), _) => query.bind(*b),
        (Cell::Bytes(bytes), _) => query.bind(bytes.clone()),
        (Cell::Ids(ids), _) => query.bind(
            serde_json::to_string(ids)
                .map_err(|e| StoreError::Database(format!("encoding ids: {e}")))?,
        ),
    })
}

fn cell(row: &SqliteRow, at: usize, kind: Kind) -> StoreResult<Cell> {
    Ok(match kind {
        Kind::Text | Kind::RecordId => row
            .try_get::<Option<String>, _>(at)?
            .map_or(Cell::Null, Cell::Text),
        Kind::Int => row
            .try_get::<Option<i64>, _>(at)?
            .map_or(Cell::Null, Cell::Int),
        Kind::Bool => row
            .try_get::<Option<bool>, _>(at)?
            .map_or(Cell::Null, Cell::Bool),
        Kind::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(at)?
            .map_or(Cell::Null, Cell::Bytes),
        Kind::IdList => match row.try_get::<Option<String>, _>(at)? {
            Some(json) => Cell::Ids(
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("a seen log is not JSON: {e}")))?,
            ),
            None => Cell::Null,
        },
    })
}

impl SqliteStore {
    pub(super) async fn count_rows_sqlite(&self, table: &Table) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            source(table)
        )))
        .fetch_one(&self.reader)
        .await?;
        Ok(count as u64)
    }

    pub(super) async fn read_rows_sqlite(
        &self,
        table: &Table,
        after: Option<&copy::Row>,
        limit: u32,
    ) -> StoreResult<Vec<copy::Row>> {
        let sql = copy::select_sql(
            table,
            source(table),
            after.is_some(),
            Placeholders::Question,
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (at, (_, kind)) in table.key().iter().enumerate() {
            if let Some(after) = after {
                query = bind(query, &after[at], *kind)?;
            }
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(at, (_, kind))| cell(row, at, *kind))
                    .collect()
            })
            .collect()
    }

    pub(super) async fn write_rows_sqlite(
        &self,
        table: &Table,
        rows: &[copy::Row],
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = copy::insert_sql(table, rows.len(), Placeholders::Question);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in rows {
            for (value, (_, kind)) in row.iter().zip(table.columns) {
                query = bind(query, value, *kind)?;
            }
        }
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
