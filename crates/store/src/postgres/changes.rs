//! The connection change log on PostgreSQL: written inside the transactions that change a
//! connection, read by every process to drop what it cached (the host's `changes.rs`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::PostgresStore;
use crate::columns::millis;
use crate::{ConnectionChanges, ConnectionKey, StoreResult};

/// Notes in the change log, inside the transaction that made the change, that the connection
/// changed. The position comes from the clock row, whose lock this transaction then holds
/// until it commits, so positions are committed in order.
pub(super) async fn log_change(
    tx: &mut PgConnection,
    key: &ConnectionKey,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "WITH next AS (UPDATE connection_change_clock SET position = position + 1 \
         RETURNING position) \
         INSERT INTO connection_changes (position, integration, connection_id, changed_at) \
         SELECT next.position, $1, $2, $3 FROM next",
    )
    .bind(&key.integration)
    .bind(&key.connection_id)
    .bind(millis(now))
    .execute(tx)
    .await?;
    Ok(())
}

/// [`log_change`] for a connection named by its row identity.
pub(super) async fn log_change_of_row(tx: &mut PgConnection, connection: &str) -> StoreResult<()> {
    sqlx::query(
        "WITH next AS (UPDATE connection_change_clock SET position = position + 1 \
         WHERE EXISTS (SELECT 1 FROM connections WHERE id = $1) RETURNING position) \
         INSERT INTO connection_changes (position, integration, connection_id, changed_at) \
         SELECT next.position, c.integration, c.connection_id, $2 \
         FROM next, connections c WHERE c.id = $1",
    )
    .bind(connection)
    .bind(millis(Utc::now()))
    .execute(tx)
    .await?;
    Ok(())
}

impl PostgresStore {
    pub(super) async fn connection_changes_pg(&self, after: i64) -> StoreResult<ConnectionChanges> {
        let latest: i64 = sqlx::query_scalar("SELECT position FROM connection_change_clock")
            .fetch_one(&self.pool)
            .await?;
        if after == 0 || latest <= after {
            return Ok(ConnectionChanges {
                keys: Vec::new(),
                position: latest.max(after),
            });
        }
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT integration, connection_id FROM connection_changes \
             WHERE position > $1 AND position <= $2 ORDER BY position",
        )
        .bind(after)
        .bind(latest)
        .fetch_all(&self.pool)
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
