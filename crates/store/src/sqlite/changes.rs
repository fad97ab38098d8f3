//! The connection change log on SQLite: written inside the transactions that change a
//! connection, read by every process to drop what it cached (the host's `changes.rs`).

use chrono::{DateTime, Utc};

use super::SqliteStore;
use crate::columns::millis;
use crate::{ConnectionChanges, ConnectionKey, StoreResult};

/// Notes in the change log, inside the transaction that made the change, that the connection
/// changed, so other processes drop what they cached of it.
pub(super) async fn log_change(
    tx: &mut sqlx::SqliteConnection,
    key: &ConnectionKey,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO connection_changes (integration, connection_id, changed_at) VALUES (?, ?, ?)",
    )
    .bind(&key.integration)
    .bind(&key.connection_id)
    .bind(millis(now))
    .execute(tx)
    .await?;
    Ok(())
}

/// [`log_change`] for a connection named by its row identity.
pub(super) async fn log_change_of_row(
    tx: &mut sqlx::SqliteConnection,
    connection: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO connection_changes (integration, connection_id, changed_at) \
         SELECT integration, connection_id, ? FROM connections WHERE id = ?",
    )
    .bind(millis(Utc::now()))
    .bind(connection)
    .execute(tx)
    .await?;
    Ok(())
}

impl SqliteStore {
    pub(super) async fn connection_changes_sqlite(
        &self,
        after: i64,
    ) -> StoreResult<ConnectionChanges> {
        let latest: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM connection_changes")
                .fetch_one(&self.reader)
                .await?;
        if after == 0 || latest <= after {
            return Ok(ConnectionChanges {
                keys: Vec::new(),
                position: latest.max(after),
            });
        }
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT integration, connection_id FROM connection_changes \
             WHERE position > ? AND position <= ? ORDER BY position",
        )
        .bind(after)
        .bind(latest)
        .fetch_all(&self.reader)
        .await?;
        Ok(ConnectionChanges {
            keys: keys
                .into_iter()
                .map(|(integration, id)| ConnectionKey::new(integration, id))
                .collect(),
            position: latest,
        })
    }
}
