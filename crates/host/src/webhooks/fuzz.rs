//! Fuzz target `webhook_payload`: an event's body built from what a sync, a connection or a
//! credential reports (any JSON, any event type, any time from year 0 to 9999), and its signature.
//!
//! The body is JSON that reads back as the id, type, time and data it was built from; the
//! activity log finds the connection exactly when the data names one; the signature is
//! `sha256=` and 64 lowercase hex digits, and a key longer than a block signs as its hash does
//! (RFC 2104). Reading a stored body back never panics, whatever the store holds.

use chrono::DateTime;
use plugboard_fuzz::proptest::prelude::*;
use plugboard_fuzz::proptest::sample::select;
use plugboard_fuzz::{Target, inputs};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{event_body, event_connection, hex, hmac_sha256};
use plugboard_store::ConnectionKey;

const KEYS: &[&str] = &[
    "integration",
    "connection_id",
    "sync",
    "model",
    "run_id",
    "status",
    "error",
    "added",
    "updated",
    "deleted",
    "credential",
    "expires_at",
    "days",
];

const EVENT_TYPES: &[&str] = &[
    "sync.succeeded",
    "sync.failed",
    "connection.created",
    "connection.deleted",
    "connection.refresh_failed",
    "integration.credential_expiring",
];

type Input = ((String, String), (i64, Vec<u8>));

#[test]
fn fuzz_webhook_payload() {
    let event_type = prop_oneof![select(EVENT_TYPES).prop_map(str::to_owned), any::<String>()];
    let connection = (any::<String>(), any::<String>(), inputs::json(KEYS)).prop_map(
        |(integration, connection_id, extra)| {
            serde_json::json!({"integration": integration, "connection_id": connection_id, "extra": extra})
        },
    );
    let data = prop_oneof![inputs::json(KEYS), connection]
        .prop_map(|data| serde_json::to_vec(&data).expect("a value writes"));
    // Sometimes mutated: then it stands for a body as the store may hold it.
    let data = inputs::text(prop_oneof![3 => data.clone(), 1 => inputs::mutate(data, KEYS)]);
    let at = prop_oneof![Just(0), Just(253_402_300_799), any::<i64>()];
    let secret = prop_oneof![inputs::bytes(80), inputs::bytes(200)];
    Target::new(env!("CARGO_MANIFEST_DIR"), "webhook_payload").run(
        ((event_type, data), (at, secret)),
        |((event_type, data), (at, secret)): &Input| check(event_type, data, *at, secret),
    );
}

fn check(event_type: &str, data: &str, at: i64, secret: &[u8]) -> Result<(), String> {
    let stored = event_connection(data);
    let Ok(data) = serde_json::from_str::<Value>(data) else {
        return match stored {
            None => Ok(()),
            Some(key) => Err(format!(
                "a connection {key:?} read from a body that is not JSON"
            )),
        };
    };
    // Events are stamped now; any time RFC 3339 writes (years 0 to 9999) reads back.
    let seconds = at.rem_euclid(253_402_300_800);
    let created_at = DateTime::from_timestamp(seconds, 0).ok_or("a time chrono holds")?;
    let id = "0b0e3a52-4a8c-4f25-9c5e-2f1a9d6c7e11";
    let body = event_body(id, event_type, created_at, data.clone());

    let read: Value = serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}: {body}"))?;
    let read_at = read["created_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    if read["id"] != id
        || read["type"] != event_type
        || read["data"] != data
        || read_at.map(|t| t.to_utc()) != Some(created_at)
    {
        return Err(format!("the body does not read back as built: {body}"));
    }

    let names = |data: &Value| {
        Some(ConnectionKey::new(
            data.get("integration")?.as_str()?,
            data.get("connection_id")?.as_str()?,
        ))
    };
    if event_connection(&body) != names(&data) {
        return Err(format!(
            "the connection read from {body} is {:?}",
            event_connection(&body)
        ));
    }

    let signature = format!("sha256={}", hex(&hmac_sha256(secret, body.as_bytes())));
    let digits = &signature["sha256=".len()..];
    if digits.len() != 64
        || !digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(format!("a malformed signature {signature}"));
    }
    if secret.len() > 64
        && hmac_sha256(&Sha256::digest(secret), body.as_bytes())
            != hmac_sha256(secret, body.as_bytes())
    {
        return Err("a long key does not sign as its hash".to_owned());
    }
    Ok(())
}
