//! Moving a whole store to another database, row by row as stored: secrets and sealed payloads
//! travel as their ciphertexts (never opened), records keep their stamps, ids and cursors, and
//! runs, checkpoints and deliveries come along.
//!
//! Each table is described once ([`TABLES`]) by its columns' logical kinds; each backend reads
//! and writes a kind in its own encoding (a record id is text in SQLite and bytes in
//! PostgreSQL; a crawl's seen ids a JSON array in one and an array of bytes in the other).
//! [`copy`] pages through every table in key order, so its memory stays flat however large the
//! store.

use std::sync::Arc;

use crate::{Store, StoreError, StoreResult};

/// What a column holds, whatever the backend's type for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Bool,
    Bytes,
    /// A provider's record id.
    RecordId,
    /// A list of record ids (a crawl's seen log).
    IdList,
}

/// One value as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Bytes(Vec<u8>),
    Ids(Vec<String>),
}

pub type Row = Vec<Cell>;

/// A table as copied: its columns and kinds, and the leading columns that order and key it.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// How many leading columns form the key the copy pages by.
    pub key_len: usize,
}

impl Table {
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(name, _)| *name).collect()
    }

    pub fn key(&self) -> &'static [(&'static str, Kind)] {
        &self.columns[..self.key_len]
    }
}

use Kind::{Bool, Bytes, IdList, Int, RecordId, Text};

/// Every table worth moving, parents before children. The connection change log is not
/// among them: it only tells running processes what changed lately; nor are the dashboard's
/// sign-ins (`console_sessions`): a store is moved with its servers stopped, and the operator
/// signs in to the moved deployment again rather than carrying sign-ins into another database.
pub const TABLES: &[Table] = &[
    Table {
        name: "connections",
        columns: &[
            ("id", Text),
            ("integration", Text),
            ("connection_id", Text),
            ("provider", Text),
            ("connection_config", Text),
            ("account", Text),
            ("status", Text),
            ("status_reason", Text),
            ("access_token", Text),
            ("refresh_token", Text),
            ("id_token", Text),
            ("expires_at", Int),
            ("scopes", Text),
            ("token_version", Int),
            ("refresh_lease_owner", Text),
            ("refresh_lease_until", Int),
            ("refresh_failed_at", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        key_len: 1,
    },
    Table {
        name: "connect_sessions",
        columns: &[
            ("token_hash", Text),
            ("integration", Text),
            ("connection_id", Text),
            ("connection_config", Text),
            ("return_url", Text),
            ("expires_at", Int),
            ("created_at", Int),
        ],
        key_len: 1,
    },
    Table {
        name: "oauth_states",
        columns: &[
            ("state_hash", Text),
            ("flow", Text),
            ("integration", Text),
            ("connection_id", Text),
            ("connection_config", Text),
            ("return_url", Text),
            ("pkce_verifier", Text),
            ("browser_hash", Text),
            ("expires_at", Int),
            ("created_at", Int),
        ],
        key_len: 1,
    },
    Table {
        name: "records",
        columns: &[
            ("connection_row", Text),
            ("model", Text),
            ("record_id", RecordId),
            ("payload", Text),
            ("sealed", Bool),
            ("hash", Bytes),
            ("first_seen_at", Int),
            ("last_modified_at", Int),
            ("last_action", Text),
            ("deleted_at", Int),
        ],
        key_len: 3,
    },
    // A model's clock, with its counts of live and deleted records: copied as they are, as
    // the records they count are.
    Table {
        name: "record_clocks",
        columns: &[
            ("connection_row", Text),
            ("model", Text),
            ("stamp", Int),
            ("live", Int),
            ("deleted", Int),
        ],
        key_len: 2,
    },
    Table {
        name: "crawls",
        columns: &[
            ("connection_row", Text),
            ("model", Text),
            ("generation", Int),
            ("in_progress", Bool),
        ],
        key_len: 2,
    },
    // A crawl's seen log is read as one row per crawl (its batches' ids together).
    Table {
        name: "crawl_seen",
        columns: &[
            ("connection_row", Text),
            ("model", Text),
            ("generation", Int),
            ("ids", IdList),
        ],
        key_len: 3,
    },
    Table {
        name: "sync_states",
        columns: &[
            ("connection_row", Text),
            ("sync_name", Text),
            ("checkpoint", Text),
            ("paused", Bool),
            ("frequency_secs", Int),
            ("run_lease_owner", Text),
            ("run_lease_until", Int),
            ("last_run_failed", Bool),
        ],
        key_len: 2,
    },
    Table {
        name: "sync_runs",
        columns: &[
            ("id", Text),
            ("connection_row", Text),
            ("sync_name", Text),
            ("mode", Text),
            ("started_at", Int),
            ("finished_at", Int),
            ("status", Text),
            ("added", Int),
            ("updated", Int),
            ("deleted", Int),
            ("error", Text),
        ],
        key_len: 1,
    },
    Table {
        name: "sync_run_logs",
        columns: &[
            ("run_id", Text),
            ("seq", Int),
            ("at", Int),
            ("level", Text),
            ("message", Text),
        ],
        key_len: 2,
    },
    Table {
        name: "webhook_deliveries",
        columns: &[
            ("id", Text),
            ("event_type", Text),
            ("created_at", Int),
            ("attempts", Int),
            ("status", Int),
            ("error", Text),
            ("delivered", Bool),
            ("body", Text),
        ],
        key_len: 1,
    },
    Table {
        name: "activity",
        columns: &[
            ("id", Int),
            ("kind", Text),
            ("succeeded", Bool),
            ("integration", Text),
            ("connection_id", Text),
            ("summary", Text),
            ("reference", Text),
            ("at", Int),
        ],
        key_len: 1,
    },
    Table {
        name: "credential_notices",
        columns: &[
            ("integration", Text),
            ("credential", Text),
            ("expires_on", Text),
            ("days_ahead", Int),
            ("sent_at", Int),
        ],
        key_len: 4,
    },
    Table {
        name: "integration_states",
        columns: &[
            ("integration", Text),
            ("credential_failed_at", Int),
            ("credential_failure", Text),
        ],
        key_len: 1,
    },
];

/// Rows per page read from the source and per statement written to the target.
pub const PAGE: u32 = 500;

/// How far [`copy`] got: a table's rows copied so far out of its total.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub table: &'a str,
    pub copied: u64,
    pub total: u64,
}

/// The number of rows of each table, by name.
pub type Counts = Vec<(&'static str, u64)>;

/// Copies every table of `from` into `to`, which must hold no data: `to` is checked first and
/// left untouched when it does. Reports progress after every page, and checks at the end that
/// both hold as many rows of each table. The counts copied.
pub async fn copy(
    from: &Arc<dyn Store>,
    to: &Arc<dyn Store>,
    mut progress: impl FnMut(Progress<'_>),
) -> StoreResult<Counts> {
    let held = counts(to).await?;
    let occupied: Vec<String> = held
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(table, n)| format!("{n} row(s) in {table}"))
        .collect();
    if !occupied.is_empty() {
        return Err(StoreError::Database(format!(
            "the target already holds data ({}); copy only into an empty store",
            occupied.join(", ")
        )));
    }
    let mut copied_counts = Vec::new();
    for table in TABLES {
        let total = from.count_rows(table).await?;
        let mut copied = 0;
        let mut after: Option<Row> = None;
        progress(Progress {
            table: table.name,
            copied,
            total,
        });
        loop {
            let rows = from.read_rows(table, after.as_ref(), PAGE).await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = Some(last[..table.key_len].to_vec());
            to.write_rows(table, &rows).await?;
            copied += rows.len() as u64;
            progress(Progress {
                table: table.name,
                copied,
                total: total.max(copied),
            });
        }
        copied_counts.push((table.name, copied));
    }
    let source = counts(from).await?;
    let target = counts(to).await?;
    if source != target || target != copied_counts {
        return Err(StoreError::Database(format!(
            "the counts differ after copying: source {source:?}, target {target:?}; was the \
             source written to during the copy?"
        )));
    }
    Ok(target)
}

/// The number of rows of each table of [`TABLES`].
pub async fn counts(store: &Arc<dyn Store>) -> StoreResult<Counts> {
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push((table.name, store.count_rows(table).await?));
    }
    Ok(counts)
}

/// A cell that should hold an id list, as one; stores write only what they read, so another
/// cell here is a bug.
pub fn ids(cell: &Cell) -> StoreResult<&[String]> {
    match cell {
        Cell::Ids(ids) => Ok(ids),
        other => Err(StoreError::Corrupt(format!(
            "expected a list of ids, got {other:?}"
        ))),
    }
}

/// How a backend writes bound parameters.
#[derive(Debug, Clone, Copy)]
pub enum Placeholders {
    /// `?`
    Question,
    /// `$1`, `$2`, …
    Numbered,
}

impl Placeholders {
    /// `n` placeholders separated by commas, the first being parameter `first` (from 1).
    pub fn list(self, first: usize, n: usize) -> String {
        (first..first + n)
            .map(|i| match self {
                Placeholders::Question => "?".to_owned(),
                Placeholders::Numbered => format!("${i}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The statement reading a page of `table` from `source` (the table, or a subquery shaped like
/// it), after a key when `after`; its parameters are the key's cells, then the limit.
pub fn select_sql(table: &Table, source: &str, after: bool, style: Placeholders) -> String {
    let columns = table.column_names().join(", ");
    let key: Vec<&str> = table.key().iter().map(|(name, _)| *name).collect();
    let key = key.join(", ");
    let (filter, limit_at) = if after {
        (
            format!(" WHERE ({key}) > ({})", style.list(1, table.key_len)),
            table.key_len + 1,
        )
    } else {
        (String::new(), 1)
    };
    format!(
        "SELECT {columns} FROM {source}{filter} ORDER BY {key} LIMIT {}",
        style.list(limit_at, 1)
    )
}

/// The statement inserting `rows` rows into `table`.
pub fn insert_sql(table: &Table, rows: usize, style: Placeholders) -> String {
    let width = table.columns.len();
    let values: Vec<String> = (0..rows)
        .map(|row| format!("({})", style.list(row * width + 1, width)))
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        table.name,
        table.column_names().join(", "),
        values.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_page_by_key_and_insert_every_column() {
        let records = TABLES.iter().find(|t| t.name == "records").unwrap();
        assert_eq!(
            select_sql(records, "records", true, Placeholders::Numbered),
            "SELECT connection_row, model, record_id, payload, sealed, hash, first_seen_at, \
             last_modified_at, last_action, deleted_at FROM records \
             WHERE (connection_row, model, record_id) > ($1, $2, $3) \
             ORDER BY connection_row, model, record_id LIMIT $4"
        );
        let clocks = TABLES.iter().find(|t| t.name == "record_clocks").unwrap();
        assert_eq!(
            insert_sql(clocks, 2, Placeholders::Question),
            "INSERT INTO record_clocks (connection_row, model, stamp, live, deleted) \
             VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)"
        );
    }
}
