//! Fuzz target `token_response`: what a token endpoint answers, success or error.
//!
//! A 200 body reads as a token set or fails as malformed, never panics, and is lenient as
//! documented (any `expires_in`, absent or null optional tokens); an expiry far in the future
//! or at the end of time is no overflow; the token set's `Debug` shows no token. Any other
//! status is classified, and the error shows one bounded line without control characters.

use chrono::{DateTime, TimeZone, Utc};
use plugboard_fuzz::proptest::prelude::*;
use plugboard_fuzz::proptest::sample::select;
use plugboard_fuzz::{Target, inputs};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::{TokenSet, WireToken};
use crate::oauth::{ErrorFields, Stage, classify};

const KEYS: &[&str] = &[
    "access_token",
    "token_type",
    "expires_in",
    "ext_expires_in",
    "refresh_token",
    "id_token",
    "scope",
    "error",
    "error_description",
    "error_codes",
    "suberror",
    "correlation_id",
];

const SEEDS: &[&str] = &[
    r#"{"token_type":"Bearer","scope":"People.Read User.Read","expires_in":4377,"ext_expires_in":"4377","access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.sig","refresh_token":"0.AXEA-refresh","id_token":"idt"}"#,
    r#"{"access_token":"at","expires_in":"soon","refresh_token":null}"#,
    r#"{"error":"invalid_grant","error_description":"AADSTS70008: The provided authorization code or refresh token has expired.\r\nTrace ID: x","error_codes":[70008],"suberror":"bad_token"}"#,
    r#"{"error":"invalid_client","error_codes":[7000215]}"#,
    "<html>Service Unavailable</html>",
];

/// The provider's text kept in an error: 500 characters and an ellipsis, a control character
/// written as an escape of at most six (`\u{9f}`).
const MAX_DESCRIPTION: usize = 500 * 6 + 1;

#[test]
fn fuzz_token_response() {
    let status = prop_oneof![select(vec![200u16, 400, 401, 429, 500, 503]), any::<u16>()];
    let json = inputs::mutate(
        inputs::json(KEYS).prop_map(|v| serde_json::to_vec(&v).expect("a value writes")),
        KEYS,
    );
    let body = prop_oneof![inputs::mixed(SEEDS, KEYS), json];
    Target::new(env!("CARGO_MANIFEST_DIR"), "token_response")
        .run((status, body), |(status, body): &(u16, Vec<u8>)| {
            check(*status, body)
        });
}

fn check(status: u16, body: &[u8]) -> Result<(), String> {
    if status != 200 {
        for stage in [Stage::CodeExchange, Stage::Refresh] {
            let error = classify(stage, Some(status), &ErrorFields::from_body(body));
            let shown = error.to_string();
            let description = error.description().unwrap_or_default();
            if shown.contains(char::is_control)
                || description.contains(char::is_control)
                || description.chars().count() > MAX_DESCRIPTION
            {
                return Err(format!(
                    "an error not fit to show: {shown:?} / {description:?}"
                ));
            }
        }
        return Ok(());
    }
    let requested = ["People.Read".to_owned()];
    let ends = [
        Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap(),
        DateTime::<Utc>::MAX_UTC,
    ];
    for now in ends {
        let wire = match serde_json::from_slice::<WireToken>(body) {
            Ok(wire) => wire,
            Err(e) if should_read(body) => {
                return Err(format!("a lenient token response refused: {e}"));
            }
            Err(_) => return Ok(()),
        };
        well_formed(&wire.into_token_set(now, &requested), now)?;
    }
    Ok(())
}

/// Whether the body is a response the engine promises to read: written as serde_json writes
/// an object (so no duplicate key), a string `access_token`, a string `token_type` if any, and
/// the other tokens and `scope` strings or null; `expires_in` may be anything.
fn should_read(body: &[u8]) -> bool {
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let canonical = serde_json::to_vec(&members).is_ok_and(|written| written == body);
    let string_or = |key: &str, null_too: bool| match members.get(key) {
        None | Some(Value::String(_)) => true,
        Some(Value::Null) => null_too,
        Some(_) => false,
    };
    canonical
        && members.get("access_token").is_some_and(Value::is_string)
        && string_or("token_type", false)
        && ["refresh_token", "id_token", "scope"]
            .iter()
            .all(|key| string_or(key, true))
}

fn well_formed(tokens: &TokenSet, now: DateTime<Utc>) -> Result<(), String> {
    if tokens.expires_at.is_some_and(|at| at < now)
        || tokens.ext_expires_at.is_some_and(|at| at < now)
    {
        return Err(format!("an expiry before the answer: {tokens:?}"));
    }
    if tokens
        .scopes
        .iter()
        .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(format!("scopes not split on whitespace: {tokens:?}"));
    }
    let shown = format!("{tokens:?}");
    let secrets = [
        Some(&tokens.access_token),
        tokens.refresh_token.as_ref(),
        tokens.id_token.as_ref(),
    ];
    for secret in secrets
        .into_iter()
        .flatten()
        .map(ExposeSecret::expose_secret)
    {
        let elsewhere = tokens.token_type.contains(secret)
            || tokens.scopes.iter().any(|s| s.contains(secret))
            || tokens.extra.keys().any(|k| k.contains(secret))
            || "TokenSet access_token refresh_token id_token [redacted] None Some".contains(secret);
        if secret.len() >= 16 && !elsewhere && shown.contains(secret) {
            return Err(format!("a token shows in the token set's Debug: {shown}"));
        }
    }
    Ok(())
}
