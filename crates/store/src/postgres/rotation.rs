//! Key rotation's passes over the tables holding secrets, driven by [`crate::rotation`].

use async_trait::async_trait;
use sqlx::Row;

use super::PostgresStore;
use super::records::{BATCH, id_text};
use crate::StoreResult;
use crate::rotation::{Pass, RotationPasses};
use crate::sealing::{CONNECTIONS, OAUTH_STATES};

#[async_trait]
impl RotationPasses for PostgresStore {
    async fn rotate_connections(&self) -> StoreResult<Pass> {
        let rows = sqlx::query(
            "SELECT id, token_version, access_token, refresh_token, id_token FROM connections",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut pass = Pass::default();
        for row in rows {
            let id: String = row.try_get("id")?;
            let version: i64 = row.try_get("token_version")?;
            let mut columns = Vec::new();
            let mut changed = false;
            for column in ["access_token", "refresh_token", "id_token"] {
                let stored: Option<String> = row.try_get(column)?;
                let rotated = match &stored {
                    Some(s) => self.sealer.rotate(s, CONNECTIONS, &id, column)?,
                    None => None,
                };
                changed |= rotated.is_some();
                columns.push(rotated.or(stored));
            }
            if !changed {
                pass.current += 1;
                continue;
            }
            let updated = sqlx::query(
                "UPDATE connections SET access_token = $1, refresh_token = $2, id_token = $3 \
                 WHERE id = $4 AND token_version = $5",
            )
            .bind(&columns[0])
            .bind(&columns[1])
            .bind(&columns[2])
            .bind(&id)
            .bind(version)
            .execute(&self.pool)
            .await?;
            if updated.rows_affected() == 1 {
                pass.reencrypted += 1;
            } else {
                pass.raced += 1;
            }
        }
        Ok(pass)
    }

    async fn rotate_states(&self) -> StoreResult<Pass> {
        let rows = sqlx::query(
            "SELECT state_hash, pkce_verifier FROM oauth_states WHERE pkce_verifier IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut pass = Pass::default();
        for row in rows {
            let hash: String = row.try_get("state_hash")?;
            let stored: String = row.try_get("pkce_verifier")?;
            let Some(sealed) = self
                .sealer
                .rotate(&stored, OAUTH_STATES, &hash, "pkce_verifier")?
            else {
                pass.current += 1;
                continue;
            };
            sqlx::query(
                "UPDATE oauth_states SET pkce_verifier = $1 \
                 WHERE state_hash = $2 AND pkce_verifier = $3",
            )
            .bind(sealed)
            .bind(&hash)
            .bind(&stored)
            .execute(&self.pool)
            .await?;
            pass.reencrypted += 1;
        }
        Ok(pass)
    }

    async fn rotate_records(&self) -> StoreResult<Pass> {
        self.rotate_record_payloads().await
    }

    /// Vacuums the tables holding secrets, so the space of the rows rotation replaced is
    /// reused. PostgreSQL keeps no way to overwrite dead row versions at once; its write-ahead
    /// log and backups keep old ciphertexts as long as they are kept (see the README).
    async fn compact(&self) -> StoreResult<()> {
        sqlx::query("VACUUM connections, oauth_states, records")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl PostgresStore {
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
}
