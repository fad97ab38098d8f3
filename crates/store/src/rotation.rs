//! Key rotation's passes, the same in every backend: each backend supplies one pass over each
//! table holding secrets (re-encrypting what is not under the active key, each row by a
//! compare-and-swap) and a compaction; this drives them until nothing races.

use async_trait::async_trait;

use crate::{Rotation, StoreError, StoreResult};

/// What one pass over a table did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub reencrypted: u64,
    pub current: u64,
    /// Rows whose compare-and-swap lost to a concurrent write (a token refresh).
    pub raced: u64,
}

impl std::ops::Add for Pass {
    type Output = Pass;

    fn add(self, other: Pass) -> Pass {
        Pass {
            reencrypted: self.reencrypted + other.reencrypted,
            current: self.current + other.current,
            raced: self.raced + other.raced,
        }
    }
}

#[async_trait]
pub trait RotationPasses: Sync {
    async fn rotate_connections(&self) -> StoreResult<Pass>;
    async fn rotate_states(&self) -> StoreResult<Pass>;
    async fn rotate_records(&self) -> StoreResult<Pass>;
    /// Leaves no copy of an old ciphertext where the database keeps deleted data, as far as the
    /// backend can.
    async fn compact(&self) -> StoreResult<()>;
}

/// Re-encrypts every secret under the active key. A row refreshed between a pass's read and its
/// write is skipped by the compare-and-swap; a server running with the same active key has
/// then already written it under that key, which the next pass confirms.
pub async fn reencrypt_all(passes: &impl RotationPasses) -> StoreResult<Rotation> {
    let mut rotation = Rotation::default();
    for pass in 0..5 {
        let done = passes.rotate_connections().await?
            + passes.rotate_states().await?
            + passes.rotate_records().await?;
        rotation.reencrypted += done.reencrypted;
        if pass == 0 {
            rotation.current = done.current;
        }
        if done.raced == 0 {
            passes.compact().await?;
            return Ok(rotation);
        }
    }
    Err(StoreError::Database(
        "connections kept changing during rotation; is a server running with another active key?"
            .into(),
    ))
}
