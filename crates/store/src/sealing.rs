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

/// Properties of sealing over generated secrets, identities and key rings: what is sealed
/// opens where it was sealed, and nowhere else, under no other key id, and not after any
/// change of a single bit.
#[cfg(test)]
mod properties {
    use std::collections::BTreeMap;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;
    use secrecy::SecretBox;

    use super::*;
    use crate::crypto::CryptoError;

    /// A key ring of one to four keys, some perhaps with the same material under another id
    /// (an operator's copy-paste), and which of them is active.
    fn ring() -> impl Strategy<Value = (BTreeMap<String, u8>, String)> {
        prop::collection::btree_map("k[0-9a-z-]{0,6}", 0u8..3, 1..5).prop_flat_map(|keys| {
            let ids: Vec<String> = keys.keys().cloned().collect();
            (Just(keys), prop::sample::select(ids))
        })
    }

    fn sealer(keys: &BTreeMap<String, u8>, active: &str) -> Sealer {
        let keys = keys
            .iter()
            .map(|(id, byte)| (id.clone(), SecretBox::new(Box::new([*byte; 32]))))
            .collect();
        Sealer::new(Arc::new(KeyRing::new(&keys, active).unwrap()))
    }

    /// Where a secret lives; no part holds NUL, as none can (`Aad`).
    fn place() -> impl Strategy<Value = (String, String, String)> {
        (
            prop_oneof![
                Just(CONNECTIONS.to_owned()),
                Just(OAUTH_STATES.to_owned()),
                "[^\0]{0,8}"
            ],
            prop_oneof!["[0-9a-f-]{36}", "[^\0]{0,12}"],
            prop_oneof![
                prop::sample::select(vec!["access_token", "refresh_token", "id_token"])
                    .prop_map(str::to_owned),
                "[^\0]{0,8}"
            ],
        )
    }

    /// `own` with the parts `moved` names (a bit each) taken from `other`.
    fn mix(
        own: &(String, String, String),
        other: &(String, String, String),
        moved: usize,
    ) -> (String, String, String) {
        let pick = |n: usize, own: &String, other: &String| {
            if moved & (1 << n) != 0 { other } else { own }.clone()
        };
        (
            pick(0, &own.0, &other.0),
            pick(1, &own.1, &other.1),
            pick(2, &own.2, &other.2),
        )
    }

    /// Secrets of any text and length, NUL and all.
    fn secret() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "\\PC{0,300}", Just(String::new())]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A sealed secret names the active key, opens to itself where it was sealed, and
        /// still does after rotation moved it to another key.
        #[test]
        fn a_sealed_secret_opens_where_it_was_sealed(
            (keys, active) in ring(),
            (table, row, column) in place(),
            secret in secret(),
        ) {
            let sealer = sealer(&keys, &active);
            let value = SecretString::from(secret.clone());
            let stored = sealer.seal(&value, &table, &row, &column);
            prop_assert!(stored.starts_with(&format!("pb1:{active}:")), "{}", stored);
            let opened = sealer.open(Some(stored.clone()), &table, &row, &column).unwrap().unwrap();
            prop_assert_eq!(opened.expose_secret(), secret.as_str());

            let mut rotated_keys = keys.clone();
            rotated_keys.insert("rotated".into(), 9);
            let rotated = self::sealer(&rotated_keys, "rotated");
            let moved = rotated.rotate(&stored, &table, &row, &column).unwrap().unwrap();
            prop_assert!(moved.starts_with("pb1:rotated:"));
            prop_assert_eq!(rotated.rotate(&moved, &table, &row, &column).unwrap(), None);
            let opened = rotated.open(Some(moved), &table, &row, &column).unwrap().unwrap();
            prop_assert_eq!(opened.expose_secret(), secret.as_str());
        }

        /// A secret moved to another table, row or column does not open there.
        #[test]
        fn a_secret_opens_in_no_other_place(
            (keys, active) in ring(),
            place in place(),
            other in place(),
            moved in 1usize..8,
            secret in secret(),
        ) {
            let sealer = sealer(&keys, &active);
            let stored = sealer.seal(&SecretString::from(secret), &place.0, &place.1, &place.2);
            let to = mix(&place, &other, moved);
            prop_assume!(to != place);
            let opened = sealer.open(Some(stored), &to.0, &to.1, &to.2);
            prop_assert!(
                matches!(opened, Err(StoreError::Crypto(CryptoError::Authentication(_)))),
                "{:?}", opened
            );
        }

        /// A record's payload opens for its own connection, model and id only; ids may hold
        /// any character.
        #[test]
        fn a_record_opens_under_its_own_identity_only(
            (keys, active) in ring(),
            record in ("[0-9a-f]{4}", "[A-Za-z]{1,6}", any::<String>()),
            other in ("[0-9a-f]{4}", "[A-Za-z]{1,6}", any::<String>()),
            moved in 1usize..8,
            n in any::<i64>(),
        ) {
            let sealer = sealer(&keys, &active);
            let json = format!("{{\"n\":{n}}}");
            let (stored, sealed) = sealer.payload(&record.0, &record.1, &record.2, &json);
            prop_assert!(sealed);
            let (connection, model, id) = &record;
            let value = sealer.open_payload(connection, model, id, &stored, true).unwrap();
            prop_assert_eq!(value, serde_json::json!({ "n": n }));
            let to = mix(&record, &other, moved);
            prop_assume!(to != record);
            let opened = sealer.open_payload(&to.0, &to.1, &to.2, &stored, true);
            prop_assert!(
                matches!(opened, Err(StoreError::Crypto(CryptoError::Authentication(_)))),
                "{:?}", opened
            );
        }

        /// A ciphertext relabelled with another key id is refused: by that key when the ring
        /// has it, even with the same material, and as unknown otherwise.
        #[test]
        fn a_swapped_key_id_is_refused(
            (keys, active, other) in ring().prop_flat_map(|(keys, active)| {
                let ids: Vec<String> = keys.keys().cloned().collect();
                let other = prop_oneof![prop::sample::select(ids), "k[0-9a-z-]{0,6}"];
                (Just(keys), Just(active), other)
            }),
            (table, row, column) in place(),
            secret in secret(),
        ) {
            prop_assume!(other != active);
            let sealer = sealer(&keys, &active);
            let stored = sealer.seal(&SecretString::from(secret), &table, &row, &column);
            let data = stored.strip_prefix(&format!("pb1:{active}:")).unwrap();
            let relabelled = format!("pb1:{other}:{data}");
            let opened = sealer.open(Some(relabelled), &table, &row, &column);
            let known = keys.contains_key(&other);
            let refused = match opened {
                Err(StoreError::Crypto(CryptoError::Authentication(id))) => known && id == other,
                Err(StoreError::Crypto(CryptoError::UnknownKey(id))) => !known && id == other,
                _ => false,
            };
            prop_assert!(refused, "relabelled `{}` as `{}` in {:?}", active, other, keys);
        }
    }

    proptest! {
        // A few hundred openings a case.
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any one bit flipped, in the stored text or in the bytes it encodes, is refused:
        /// every bit of each case is tried.
        #[test]
        fn a_flipped_bit_is_refused(
            (keys, active) in ring(),
            (table, row, column) in place(),
            secret in prop_oneof![Just(String::new()), "\\PC{1,40}"],
        ) {
            let sealer = sealer(&keys, &active);
            let stored = sealer.seal(&SecretString::from(secret), &table, &row, &column);

            // In the text: within ASCII, so that it is still text.
            for i in 0..stored.len() {
                for bit in 0..7 {
                    let mut text = stored.clone().into_bytes();
                    text[i] ^= 1 << bit;
                    let text = String::from_utf8(text).unwrap();
                    let opened = sealer.open(Some(text.clone()), &table, &row, &column);
                    prop_assert!(opened.is_err(), "{} opened as {}", text, stored);
                }
            }

            // In the nonce, the ciphertext or the tag.
            let data = stored.strip_prefix(&format!("pb1:{active}:")).unwrap();
            let bytes = STANDARD.decode(data).unwrap();
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut bytes = bytes.clone();
                    bytes[i] ^= 1 << bit;
                    let tampered = format!("pb1:{active}:{}", STANDARD.encode(bytes));
                    let opened = sealer.open(Some(tampered), &table, &row, &column);
                    let refused = match &opened {
                        Err(StoreError::Crypto(CryptoError::Authentication(id))) => *id == active,
                        _ => false,
                    };
                    prop_assert!(refused, "{:?}", opened);
                }
            }
        }
    }
}
