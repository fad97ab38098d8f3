//! A batch of records on its way into the store: de-duplicated and hashed before any backend
//! sees it, so both backends detect an unchanged record from the same hash.

use std::borrow::Cow;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::RecordJson;

/// A record ready to be written: its JSON and content hash, computed before any encryption.
#[derive(Debug)]
pub struct Prepared<'a> {
    pub id: Cow<'a, str>,
    pub json: Cow<'a, str>,
    pub hash: [u8; 32],
}

/// SHA-256 of the record's model, id and JSON text. Computed on the plaintext, so an unchanged
/// record is recognised without decrypting what is stored.
pub fn content_hash(model: &str, id: &str, json: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(model.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    hasher.update([0]);
    hasher.update(json.as_bytes());
    hasher.finalize().into()
}

/// The batch with one entry per id, hashed, in the order ids first appear; the last save of an
/// id within a batch wins, as it would in separate calls.
pub fn prepare<'a>(model: &str, records: Vec<RecordJson<'a>>) -> Vec<Prepared<'a>> {
    let mut position: HashMap<String, usize> = HashMap::with_capacity(records.len());
    let mut batch: Vec<Prepared> = Vec::with_capacity(records.len());
    for RecordJson { id, json } in records {
        let hash = content_hash(model, &id, &json);
        let prepared = Prepared { id, json, hash };
        match position.get(prepared.id.as_ref()) {
            Some(&at) => batch[at] = prepared,
            None => {
                position.insert(prepared.id.clone().into_owned(), batch.len());
                batch.push(prepared);
            }
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &'static str, json: &'static str) -> RecordJson<'static> {
        RecordJson {
            id: Cow::Borrowed(id),
            json: Cow::Borrowed(json),
        }
    }

    #[test]
    fn the_last_save_of_an_id_wins_in_the_place_of_its_first() {
        let batch = prepare("M", vec![rec("a", "1"), rec("b", "2"), rec("a", "3")]);
        let seen: Vec<(&str, &str)> = batch.iter().map(|p| (&*p.id, &*p.json)).collect();
        assert_eq!(seen, [("a", "3"), ("b", "2")]);
        assert_eq!(batch[0].hash, content_hash("M", "a", "3"));
    }

    #[test]
    fn the_hash_separates_model_id_and_data() {
        assert_ne!(content_hash("M", "ab", "c"), content_hash("M", "a", "bc"));
        assert_ne!(content_hash("Ma", "b", "c"), content_hash("M", "ab", "c"));
    }
}
