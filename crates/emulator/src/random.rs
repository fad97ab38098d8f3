//! Random identifiers: GUIDs, opaque codes and tokens, trace ids.
//!
//! Only seed data is deterministic; everything minted at run time is random, like the real
//! service, so clients cannot come to depend on predictable values.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng, RngCore};

pub fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An opaque URL-safe string carrying `bytes` random bytes.
pub fn opaque(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// `expires_in` as Microsoft hands it out: randomised between 3600 and 5399 seconds.
pub fn token_lifetime_secs() -> i64 {
    rand::thread_rng().gen_range(3600..=5399)
}
