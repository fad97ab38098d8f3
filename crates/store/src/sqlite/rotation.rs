//! Key rotation's passes over the tables holding secrets, driven by [`crate::rotation`].

use async_trait::async_trait;
use sqlx::Row;

use super::{BEGIN_WRITE, SqliteStore};
use crate::StoreResult;
use crate::rotation::{Pass, RotationPasses};
use crate::sealing::{CONNECTIONS, OAUTH_STATES};

#[async_trait]
impl RotationPasses for SqliteStore {
    async fn rotate_connections(&self) -> StoreResult<Pass> {
        let rows = sqlx::query(
            "SELECT id, token_version, access_token, refresh_token, id_token FROM connections",
        )
        .fetch_all(&self.writer)
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
                "UPDATE connections SET access_token = ?, refresh_token = ?, id_token = ? \
                 WHERE id = ? AND token_version = ?",
            )
            .bind(&columns[0])
            .bind(&columns[1])
            .bind(&columns[2])
            .bind(&id)
            .bind(version)
            .execute(&self.writer)
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
        .fetch_all(&self.writer)
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
                "UPDATE oauth_states SET pkce_verifier = ? WHERE state_hash = ? AND pkce_verifier = ?",
            )
            .bind(sealed)
            .bind(&hash)
            .bind(&stored)
            .execute(&self.writer)
            .await?;
            pass.reencrypted += 1;
        }
        Ok(pass)
    }

    async fn rotate_records(&self) -> StoreResult<Pass> {
        self.rotate_record_payloads().await
    }

    /// Rewrites the file and folds the WAL back into it, so that no copy of a ciphertext under
    /// an old key survives in the WAL or in free pages once the old key is dropped.
    async fn compact(&self) -> StoreResult<()> {
        sqlx::query("VACUUM").execute(&self.writer).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

impl SqliteStore {
    /// Re-encrypts sealed record payloads not under the active key, a thousand at a time.
    pub(super) async fn rotate_record_payloads(&self) -> StoreResult<Pass> {
        let mut pass = Pass::default();
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
                return Ok(pass);
            };
            after = last.try_get("rowid")?;
            let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
            for row in &rows {
                let payload: String = row.try_get("payload")?;
                let connection: String = row.try_get("connection_row")?;
                let model: String = row.try_get("model")?;
                let id: String = row.try_get("record_id")?;
                let Some(sealed) =
                    self.sealer
                        .rotate_payload(&connection, &model, &id, &payload)?
                else {
                    pass.current += 1;
                    continue;
                };
                // Compare-and-swap: a sync that rewrote the record meanwhile wrote it under
                // the active key already.
                sqlx::query("UPDATE records SET payload = ? WHERE rowid = ? AND payload = ?")
                    .bind(sealed)
                    .bind(row.try_get::<i64, _>("rowid")?)
                    .bind(&payload)
                    .execute(&mut *tx)
                    .await?;
                pass.reencrypted += 1;
            }
            tx.commit().await?;
        }
    }
}
