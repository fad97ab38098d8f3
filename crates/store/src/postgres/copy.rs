//! The PostgreSQL side of moving a store: rows read and written as stored (see
//! [`crate::copy`]). Record ids are bytes here and text in the rows moved, so either backend
//! reads what the other wrote.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row};

use super::PostgresStore;
use crate::copy::{self, Cell, Kind, Placeholders, Table};
use crate::{StoreError, StoreResult};

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// Where a table's rows are read from: the table, except the crawl seen log, read as one row
/// per crawl with its batches' ids in one array.
fn source(table: &Table) -> &'static str {
    if table.name == "crawl_seen" {
        "(SELECT connection_row, model, generation, array_agg(seen.id) AS ids \
         FROM crawl_seen, UNNEST(crawl_seen.ids) AS seen (id) \
         GROUP BY connection_row, model, generation) AS crawl_seen"
    } else {
        table.name
    }
}

fn bind<'q>(query: Query<'q>, cell: &Cell, kind: Kind) -> StoreResult<Query<'q>> {
    Ok(match (cell, kind) {
        (Cell::Null, Kind::Int) => query.bind(None::<i64>),
        (Cell::Null, Kind::Bool) => query.bind(None::<bool>),
        (Cell::Null, Kind::Bytes | Kind::RecordId) => query.bind(None::<Vec<u8>>),
        (Cell::Null, Kind::IdList) => query.bind(None::<Vec<Vec<u8>>>),
        (Cell::Null, Kind::Text) => query.bind(None::<String>),
        (Cell::Text(id), Kind::RecordId) => query.bind(id.as_bytes().to_vec()),
        (Cell::Text(text), _) => query.bind(text.clone()),
        (Cell::Int(n), _) => query.bind(*n),
        (Cell::Bool(b), _) => query.bind(*b),
        (Cell::Bytes(bytes), _) => query.bind(bytes.clone()),
        (Cell::Ids(ids), _) => query.bind(
            ids.iter()
                .map(|id| id.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        ),
    })
}

fn text(bytes: Vec<u8>) -> StoreResult<String> {
    String::from_utf8(bytes)
        .map_err(|_| StoreError::Corrupt("a stored record id is not UTF-8".into()))
}

fn cell(row: &PgRow, at: usize, kind: Kind) -> StoreResult<Cell> {
    Ok(match kind {
        Kind::Text => row
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
        Kind::RecordId => match row.try_get::<Option<Vec<u8>>, _>(at)? {
            Some(bytes) => Cell::Text(text(bytes)?),
            None => Cell::Null,
        },
        Kind::IdList => match row.try_get::<Option<Vec<Vec<u8>>>, _>(at)? {
            Some(ids) => Cell::Ids(ids.into_iter().map(text).collect::<StoreResult<_>>()?),
            None => Cell::Null,
        },
    })
}

impl PostgresStore {
    pub(super) async fn count_rows_pg(&self, table: &Table) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            source(table)
        )))
        .fetch_one(&self.pool)
        .await?;
        Ok(count as u64)
    }

    pub(super) async fn read_rows_pg(
        &self,
        table: &Table,
        after: Option<&copy::Row>,
        limit: u32,
    ) -> StoreResult<Vec<copy::Row>> {
        let sql = copy::select_sql(
            table,
            source(table),
            after.is_some(),
            Placeholders::Numbered,
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (at, (_, kind)) in table.key().iter().enumerate() {
            if let Some(after) = after {
                query = bind(query, &after[at], *kind)?;
            }
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.pool).await?;
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

    pub(super) async fn write_rows_pg(&self, table: &Table, rows: &[copy::Row]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = copy::insert_sql(table, rows.len(), Placeholders::Numbered);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in rows {
            for (value, (_, kind)) in row.iter().zip(table.columns) {
                query = bind(query, value, *kind)?;
            }
        }
        let mut tx = self.pool.begin().await?;
        query.execute(&mut *tx).await?;
        if table.name == "activity" {
            // The copied ids were given, not drawn from the identity: move it past them, so
            // the next entry follows them.
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('activity', 'id'), MAX(id)) FROM activity",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
