//! The key ring: AES-256-GCM encryption of secrets at rest.
//!
//! Every ciphertext names the key that made it (`pb1:{key_id}:{base64(nonce ‖ ciphertext)}`),
//! so keys can be rotated without a flag day: old rows stay readable while any key in the ring
//! can open them, and `plugboard keys rotate` re-encrypts them under the active key.
//!
//! Each ciphertext is bound to where it lives by the associated data ([`Aad`]: table, row
//! identity, column, key id). A token copied into another row or column, by a bug or by someone
//! with write access to the database, fails to decrypt instead of being used for the wrong
//! connection.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox, SecretString};

const FORMAT: &str = "pb1";
const NONCE_LEN: usize = 12;

/// Where a ciphertext lives. It is authenticated with the ciphertext, never stored in it.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub table: &'a str,
    /// An identity that is never reused by another row (a UUID or a hash), not a user-chosen name.
    pub row: &'a str,
    pub column: &'a str,
}

impl Aad<'_> {
    fn bytes(&self, key_id: &str) -> Vec<u8> {
        // NUL cannot appear in any of the parts, so the encoding is unambiguous.
        [FORMAT, key_id, self.table, self.row, self.column]
            .join("\0")
            .into_bytes()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("a stored secret is not in the `pb1:<key id>:<data>` format")]
    Malformed,
    #[error(
        "a stored secret was encrypted with key `{0}`, which is not in security.encryption_keys"
    )]
    UnknownKey(String),
    /// Wrong key material under the right id, a ciphertext moved to another row, or tampering.
    #[error("a stored secret failed authentication under key `{0}`")]
    Authentication(String),
}

/// The encryption keys by id, and which one encrypts new data.
pub struct KeyRing {
    keys: BTreeMap<String, Aes256Gcm>,
    active: String,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

impl KeyRing {
    /// `active` must be one of `keys`; configuration validation guarantees it.
    pub fn new(keys: &BTreeMap<String, SecretBox<[u8; 32]>>, active: &str) -> Option<KeyRing> {
        if !keys.contains_key(active) {
            return None;
        }
        let keys = keys
            .iter()
            .map(|(id, key)| {
                let key = Key::<Aes256Gcm>::from_slice(key.expose_secret());
                (id.clone(), Aes256Gcm::new(key))
            })
            .collect();
        Some(KeyRing {
            keys,
            active: active.to_owned(),
        })
    }

    pub fn encrypt(&self, plaintext: &str, aad: Aad<'_>) -> String {
        let cipher = &self.keys[&self.active];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: &aad.bytes(&self.active),
        };
        // Encryption only fails for messages longer than GCM's 64 GiB limit.
        let sealed = cipher
            .encrypt(&nonce, payload)
            .expect("secret within AES-GCM limits");
        let mut data = nonce.to_vec();
        data.extend_from_slice(&sealed);
        format!("{FORMAT}:{}:{}", self.active, STANDARD.encode(data))
    }

    pub fn decrypt(&self, stored: &str, aad: Aad<'_>) -> Result<SecretString, CryptoError> {
        let (key_id, data) = parse(stored)?;
        let cipher = self
            .keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        let data = STANDARD.decode(data).map_err(|_| CryptoError::Malformed)?;
        if data.len() < NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: &aad.bytes(key_id),
        };
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| CryptoError::Authentication(key_id.to_owned()))?;
        let text = String::from_utf8(plain).map_err(|_| CryptoError::Malformed)?;
        Ok(SecretString::from(text))
    }

    /// Whether a stored value is already under the active key, so rotation can skip it.
    pub fn is_current(&self, stored: &str) -> bool {
        parse(stored).is_ok_and(|(key_id, _)| key_id == self.active)
    }

    /// Decrypts and encrypts again under the active key.
    pub fn reencrypt(&self, stored: &str, aad: Aad<'_>) -> Result<String, CryptoError> {
        let plain = self.decrypt(stored, aad)?;
        Ok(self.encrypt(plain.expose_secret(), aad))
    }
}

fn parse(stored: &str) -> Result<(&str, &str), CryptoError> {
    let mut parts = stored.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(FORMAT), Some(key_id), Some(data)) if !key_id.is_empty() => Ok((key_id, data)),
        _ => Err(CryptoError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[(&str, u8)], active: &str) -> KeyRing {
        let keys = ids
            .iter()
            .map(|(id, byte)| (id.to_string(), SecretBox::new(Box::new([*byte; 32]))))
            .collect();
        KeyRing::new(&keys, active).unwrap()
    }

    const AAD: Aad<'static> = Aad {
        table: "connections",
        row: "row-1",
        column: "access_token",
    };

    #[test]
    fn round_trips_and_names_the_key() {
        let ring = ring(&[("k1", 1)], "k1");
        let sealed = ring.encrypt("token-value", AAD);
        assert!(sealed.starts_with("pb1:k1:"), "{sealed}");
        assert!(!sealed.contains("token-value"));
        assert_eq!(
            ring.decrypt(&sealed, AAD).unwrap().expose_secret(),
            "token-value"
        );
        assert_ne!(ring.encrypt("token-value", AAD), sealed, "nonces are fresh");
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_or_column_does_not_open() {
        let ring = ring(&[("k1", 1)], "k1");
        let sealed = ring.encrypt("token-value", AAD);
        let other_row = Aad {
            row: "row-2",
            ..AAD
        };
        let other_column = Aad {
            column: "refresh_token",
            ..AAD
        };
        for aad in [other_row, other_column] {
            assert_eq!(
                ring.decrypt(&sealed, aad).unwrap_err(),
                CryptoError::Authentication("k1".into())
            );
        }
    }

    #[test]
    fn rotation_keeps_old_data_readable_and_moves_it_to_the_active_key() {
        let old = ring(&[("k1", 1)], "k1");
        let sealed = old.encrypt("secret", AAD);
        let both = ring(&[("k1", 1), ("k2", 2)], "k2");
        assert!(!both.is_current(&sealed));
        let moved = both.reencrypt(&sealed, AAD).unwrap();
        assert!(both.is_current(&moved) && moved.starts_with("pb1:k2:"));
        let new_only = ring(&[("k2", 2)], "k2");
        assert_eq!(
            new_only.decrypt(&moved, AAD).unwrap().expose_secret(),
            "secret"
        );
        assert_eq!(
            new_only.decrypt(&sealed, AAD).unwrap_err(),
            CryptoError::UnknownKey("k1".into())
        );
    }

    #[test]
    fn wrong_key_material_and_garbage_are_errors() {
        let sealed = ring(&[("k1", 1)], "k1").encrypt("secret", AAD);
        let impostor = ring(&[("k1", 9)], "k1");
        assert!(matches!(
            impostor.decrypt(&sealed, AAD),
            Err(CryptoError::Authentication(_))
        ));
        for garbage in ["", "plain", "pb1::abc", "pb1:k1:!!!", "pb1:k1:AAAA"] {
            assert_eq!(
                impostor.decrypt(garbage, AAD).unwrap_err(),
                CryptoError::Malformed
            );
        }
    }
}
