//! How values are kept in columns, the same in every backend: times as integers (Unix
//! milliseconds for connections and OAuth flows, microseconds for records and runs), maps and
//! lists as JSON text. Integers rather than each database's own time type keep the two
//! backends' rows identical, so `store copy` moves them unchanged and a records cursor means
//! the same position in either.

use chrono::{DateTime, Utc};

use crate::{StoreError, StoreResult};

pub fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub fn from_millis(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} is out of range")))
}

pub fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

pub fn from_micros(us: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} is out of range")))
}

pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps, lists and JSON values always serialise")
}

pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("bad JSON column: {e}")))
}

/// A database URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(an unparsable database URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/plugboard?sslmode=require"),
            "postgres://app:***@db:5432/plugboard?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/plugboard"),
            "postgres://db/plugboard"
        );
        assert_eq!(redact_url("not a url"), "(an unparsable database URL)");
    }
}
