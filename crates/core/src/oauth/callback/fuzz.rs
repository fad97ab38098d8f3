//! Fuzz target `callback_query`: the query of a redirect to `/oauth/callback` (or the admin
//! consent callback), which anyone can craft.
//!
//! A success is exactly one non-empty `code` and one `state` and no `error`, read as sent; a
//! refusal shows no control character (no forged log line, no terminal escape) and no more
//! than a line of the provider's text; neither panics.

use plugboard_fuzz::{Target, inputs};
use secrecy::ExposeSecret;

use super::{parse_admin_consent_callback, parse_callback};
use crate::oauth::OAuthError;

const SEEDS: &[&str] = &[
    "?code=abc%2Bdef&state=s1&session_state=x&client_info=y",
    "code=M.C1_BAY.2.U.abc-123&state=9f8e7d",
    "error=access_denied&error_description=AADSTS65004%3A+User+declined.&state=s2",
    "error=interaction_required&error_subcode=cancel&state=s3",
    "admin_consent=True&tenant=4b6d1a1c-0000-4000-8000-000000000001&scope=https%3A%2F%2Fgraph.microsoft.com%2FPeople.Read.All+User.Read&state=s",
    "admin_consent=False&tenant=t&state=s",
];

const DICTIONARY: &[&str] = &[
    "code=",
    "state=",
    "error=",
    "error_description=",
    "error_subcode=",
    "suberror=",
    "admin_consent=",
    "tenant=",
    "scope=",
    "AADSTS",
    "AADSTS700082",
    "%0D%0A",
    "%1B%5B",
    "%E2%80%AE",
    "&code=x",
    "&state=y",
    "&error=z",
    "True",
    "+",
];

/// The provider's text kept in an error: 500 characters and an ellipsis, a control character
/// written as an escape of at most six (`\u{9f}`).
const MAX_DESCRIPTION: usize = 500 * 6 + 1;

#[test]
fn fuzz_callback_query() {
    Target::new(env!("CARGO_MANIFEST_DIR"), "callback_query").run(
        inputs::text(inputs::mixed(SEEDS, DICTIONARY)),
        |query: &String| check(query),
    );
}

fn check(query: &str) -> Result<(), String> {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.strip_prefix('?').unwrap_or(query).as_bytes())
            .into_owned()
            .collect();
    let values = |name: &str| -> Vec<&str> {
        params
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    match parse_callback(query) {
        Ok(callback) => {
            let code = callback.code.expose_secret();
            if values("code") != [code] || values("state") != [callback.state.as_str()] {
                return Err(format!("accepted, but not as sent: {callback:?}"));
            }
            if code.is_empty() || !values("error").is_empty() {
                return Err(format!(
                    "accepted without a code or with an error: {callback:?}"
                ));
            }
            let shown = format!("{callback:?}");
            if code.len() >= 8 && !callback.state.contains(code) && shown.contains(code) {
                return Err(format!("the code shows in {shown}"));
            }
        }
        Err(error) => {
            clear(&error)?;
            if !values("error").is_empty()
                && let [state] = values("state")[..]
                && error.state() != Some(state)
            {
                return Err(format!("an error callback lost its state: {error:?}"));
            }
        }
    }
    match parse_admin_consent_callback(query) {
        Ok(consent) => {
            if consent.tenant.is_empty() || values("state") != [consent.state.as_str()] {
                return Err(format!(
                    "consent accepted without a tenant or state: {consent:?}"
                ));
            }
            if consent
                .scopes
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
            {
                return Err(format!("scopes not split on whitespace: {consent:?}"));
            }
            Ok(())
        }
        Err(error) => clear(&error),
    }
}

/// An error is shown in pages and logs: one line of bounded length, no control character.
fn clear(error: &OAuthError) -> Result<(), String> {
    let shown = error.to_string();
    if shown.contains(char::is_control) || shown.chars().count() > 2_000 {
        return Err(format!("an error not fit to show: {shown:?}"));
    }
    let description = error.description().unwrap_or_default();
    if description.contains(char::is_control) || description.chars().count() > MAX_DESCRIPTION {
        return Err(format!("a description not fit to show: {description:?}"));
    }
    Ok(())
}
