//! Sealing and opening what the store keeps secret, the same in every backend: each secret is
//! encrypted by the [`KeyRing`] bound to its table, row identity and column, so a ciphertext
//! moved to another row (by a bug, or by someone with write access to the database) fails to
//! open instead of being used for the wrong connection.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::crypto::{Aad, KeyRing};
use crate::{StoreError, StoreResult};

/// Tables whose rows hold sealed columns; part of each ciphertext's associated data.
pub const CONNECTIONS: &str = "connections";
pub const OAUTH_STATES: &str = "oauth_states";
pub const RECORDS: &str = "records";

/// The key ring, and whether record payloads are sealed too (the default).
#[derive(Debug)]
pub struct Sealer {
    keys: Arc<KeyRing>,
    seal_records: bool,
}

impl Sealer {
    pub fn new(keys: Arc<KeyRing>) -> Self {
        Sealer {
            keys,
            seal_records: true,
        }
    }

    /// Stores record payloads sealed (`true`, the default) or as plain JSON from now on.
    /// Payloads already stored stay readable either way.
    pub fn set_seal_records(&mut self, seal: bool) {
        self.seal_records = seal;
    }

    pub fn seals_records(&self) -> bool {
        self.seal_records
    }

    pub fn seal(&self, value: &SecretString, table: &str, row: &str, column: &str) -> String {
        self.keys
            .encrypt(value.expose_secret(), Aad { table, row, column })
    }

    pub fn seal_opt(
        &self,
        value: &Option<SecretString>,
        table: &str,
        row: &str,
        column: &str,
    ) -> Option<String> {
        value.as_ref().map(|v| self.seal(v, table, row, column))
    }

    pub fn open(
        &self,
        stored: Option<String>,
        table: &str,
        row: &str,
        column: &str,
    ) -> StoreResult<Option<SecretString>> {
        stored
            .map(|s| self.keys.decrypt(&s, Aad { table, row, column }))
            .transpose()
            .map_err(StoreError::from)
    }

    /// The ciphertext re-encrypted under the active key, or `None` when it is under it already.
    pub fn rotate(
        &self,
        stored: &str,
        table: &str,
        row: &str,
        column: &str,
    ) -> StoreResult<Option<String>> {
        if self.keys.is_current(stored) {
            return Ok(None);
        }
        Ok(Some(
            self.keys.reencrypt(stored, Aad { table, row, column })?,
        ))
    }

    /// A record's payload as stored: sealed (bound to the record) unless records are kept
    /// plain, and whether it was sealed.
    pub fn payload(&self, connection: &str, model: &str, id: &str, json: &str) -> (String, bool) {
        if !self.seal_records {
            return (json.to_owned(), false);
        }
        let row = row_identity(connection, model, id);
        let sealed = self.keys.encrypt(
            json,
            Aad {
                table: RECORDS,
                row: &row,
                column: "payload",
            },
        );
        (sealed, true)
    }

    pub fn open_payload(
        &self,
        connection: &str,
        model: &str,
        id: &str,
        payload: &str,
        sealed: bool,
    ) -> StoreResult<Value> {
        let parse = |text: &str| {
            serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt(format!("record payload is not JSON: {e}")))
        };
        if !sealed {
            return parse(payload);
        }
        let row = row_identity(connection, model, id);
        let plain = self.keys.decrypt(
            payload,
            Aad {
                table: RECORDS,
                row: &row,
                column: "payload",
            },
        )?;
        parse(plain.expose_secret())
    }

    /// A sealed record payload re-encrypted under the active key, or `None` when it is current.
    pub fn rotate_payload(
        &self,
        connection: &str,
        model: &str,
        id: &str,
        payload: &str,
    ) -> StoreResult<Option<String>> {
        let row = row_identity(connection, model, id);
        self.rotate(payload, RECORDS, &row, "payload")
    }
}

/// The record's identity for the ciphertext's associated data: provider ids may contain any
/// character (NUL included), so the identity is a hash of connection, model and id.
pub fn row_identity(connection: &str, model: &str, id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(connection.as_bytes());
    hasher.update([0]);
    hasher.update(model.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    // Hex by hand: this runs for every record written, and `format!` per byte was a visible
    // share of an initial sync.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for byte in hasher.finalize() {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    text
}
