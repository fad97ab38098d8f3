//! Token responses: parsed leniently, held as secrets.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use oauth2::{AccessToken, RefreshToken, Scope, TokenType};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The tokens of a connection after a code exchange or a refresh.
///
/// Secrets are [`SecretString`]s, and `Debug` shows only which tokens are present and the names
/// of the extra fields, so a token set can be logged by accident without leaking anything.
#[derive(Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// Absent when the provider did not issue one (no `offline_access`, or a refresh that does
    /// not rotate): the host then keeps the refresh token it has.
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    /// As the provider wrote it, normally `Bearer`.
    pub token_type: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Microsoft's `ext_expires_in`: how long the token stays usable while Entra ID is down.
    pub ext_expires_at: Option<DateTime<Utc>>,
    /// Granted scopes as the provider reports them (Microsoft uses short names), or the
    /// requested ones when it does not say.
    pub scopes: Vec<String>,
    /// Response fields this engine does not know, kept for the host.
    pub extra: BTreeMap<String, Value>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("ext_expires_at", &self.ext_expires_at)
            .field("scopes", &self.scopes)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A token endpoint's success body as providers really send it: `expires_in` as a number or a
/// string, optional `refresh_token`/`id_token`, and anything else kept in `extra`.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireToken {
    access_token: AccessToken,
    #[serde(default)]
    token_type: WireTokenType,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    ext_expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
    /// Only there because [`oauth2::TokenResponse`] must lend a parsed list; the engine reads
    /// `scope` itself.
    #[serde(skip)]
    parsed_scopes: Option<Vec<Scope>>,
}

impl fmt::Debug for WireToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireToken").finish_non_exhaustive()
    }
}

impl WireToken {
    /// Converts the wire form; `requested` stands in for an omitted `scope` (RFC 6749 §5.1).
    pub(crate) fn into_token_set(self, now: DateTime<Utc>, requested: &[String]) -> TokenSet {
        let at = |seconds: Option<u64>| {
            seconds
                .and_then(|s| i64::try_from(s).ok())
                .and_then(ChronoDuration::try_seconds)
                .and_then(|d| now.checked_add_signed(d))
        };
        let scopes: Vec<String> = self
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        TokenSet {
            access_token: SecretString::from(self.access_token.into_secret()),
            refresh_token: self
                .refresh_token
                .map(|t| SecretString::from(t.into_secret()))
                .filter(|t| !secrecy::ExposeSecret::expose_secret(t).is_empty()),
            id_token: self
                .id_token
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            token_type: self.token_type.0,
            expires_at: at(self.expires_in),
            ext_expires_at: at(self.ext_expires_in),
            scopes: if scopes.is_empty() {
                requested.to_vec()
            } else {
                scopes
            },
            extra: self.extra,
        }
    }
}

impl oauth2::TokenResponse for WireToken {
    type TokenType = WireTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &WireTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<std::time::Duration> {
        self.expires_in.map(std::time::Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.parsed_scopes.as_ref()
    }
}

/// Any token type string; a missing one is taken to be `Bearer`, the only kind in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct WireTokenType(String);

impl Default for WireTokenType {
    fn default() -> Self {
        WireTokenType("Bearer".to_owned())
    }
}

impl TokenType for WireTokenType {}

/// Seconds as a JSON number or a numeric string; anything else counts as absent rather than
/// failing a token response that is otherwise fine.
fn lenient_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use secrecy::ExposeSecret;

    use super::*;

    fn parse(json: &str) -> TokenSet {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        serde_json::from_str::<WireToken>(json)
            .unwrap()
            .into_token_set(now, &["People.Read".to_owned()])
    }

    #[test]
    fn parses_microsofts_response() {
        let tokens = parse(
            r#"{"token_type":"Bearer","scope":"People.Read User.Read","expires_in":4377,"ext_expires_in":"4377","access_token":"at","refresh_token":"rt","id_token":"idt","foo":1}"#,
        );
        assert_eq!(tokens.access_token.expose_secret(), "at");
        assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "rt");
        assert_eq!(tokens.id_token.unwrap().expose_secret(), "idt");
        assert_eq!(tokens.scopes, ["People.Read", "User.Read"]);
        assert_eq!(
            tokens.expires_at.unwrap().to_rfc3339(),
            "2025-01-01T01:12:57+00:00"
        );
        assert_eq!(tokens.ext_expires_at, tokens.expires_at);
        assert_eq!(tokens.extra.keys().collect::<Vec<_>>(), ["foo"]);
    }

    #[test]
    fn tolerates_missing_and_odd_fields() {
        let tokens = parse(r#"{"access_token":"at","expires_in":"soon","refresh_token":null}"#);
        assert_eq!(tokens.token_type, "Bearer");
        assert!(tokens.refresh_token.is_none() && tokens.id_token.is_none());
        assert_eq!(tokens.expires_at, None);
        assert_eq!(tokens.scopes, ["People.Read"]);
        let tokens = parse(r#"{"access_token":"at","token_type":"bearer","expires_in":"3600"}"#);
        assert_eq!(tokens.token_type, "bearer");
        assert!(tokens.expires_at.is_some());
    }

    #[test]
    fn debug_reveals_no_token() {
        let tokens = parse(
            r#"{"access_token":"AT-SECRET","refresh_token":"RT-SECRET","id_token":"ID-SECRET","x":"X-SECRET"}"#,
        );
        let shown = format!("{tokens:?}");
        for secret in ["AT-SECRET", "RT-SECRET", "ID-SECRET", "X-SECRET"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
