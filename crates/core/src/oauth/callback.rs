//! Reading what an authorization server sends back to the redirect URI.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;

use super::error::{ErrorFields, OAuthError, OAuthErrorKind, Stage, classify};

/// A successful authorization callback.
#[derive(Clone)]
pub struct CallbackCode {
    /// Single use and short lived, but still a credential: kept secret until it is redeemed.
    pub code: SecretString,
    pub state: String,
}

impl fmt::Debug for CallbackCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackCode")
            .field("code", &"[redacted]")
            .field("state", &self.state)
            .finish()
    }
}

/// A successful admin consent callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConsent {
    /// The tenant that granted consent (a GUID at Microsoft).
    pub tenant: String,
    pub scopes: Vec<String>,
    pub state: String,
}

/// Parses the query of an authorization callback (with or without the leading `?`).
///
/// Unknown parameters are ignored, as Microsoft adds some (`session_state`, `client_info`). A
/// repeated `code` or `state` is refused: two values mean someone tampered with the URL. On an
/// `error=` callback the error carries the callback's `state`, so the host can end the right
/// flow.
pub fn parse_callback(query: &str) -> Result<CallbackCode, OAuthError> {
    let params = Params::parse(query, Stage::Authorize);
    let state = params.single("state")?;
    if params.has("error") {
        return Err(classify(Stage::Authorize, None, &params.error_fields()).with_state(state));
    }
    let state = state.ok_or_else(|| {
        rejected(
            Stage::Authorize,
            "the callback has no `state` — start the connection again",
        )
    })?;
    match params.single("code")? {
        Some(code) if !code.is_empty() => Ok(CallbackCode {
            code: SecretString::from(code),
            state,
        }),
        _ => Err(classify(Stage::Authorize, None, &ErrorFields::default()).with_state(Some(state))),
    }
}

/// Parses the query of an admin consent callback: `admin_consent=True&tenant=…&scope=…&state=…`
/// on success, `error=…&error_description=…&state=…` on failure.
pub fn parse_admin_consent_callback(query: &str) -> Result<AdminConsent, OAuthError> {
    let stage = Stage::AdminConsent;
    let params = Params::parse(query, stage);
    let state = params.single("state")?;
    if params.has("error") {
        return Err(classify(stage, None, &params.error_fields()).with_state(state));
    }
    let granted = params
        .single("admin_consent")?
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let tenant = params.single("tenant")?.filter(|t| !t.is_empty());
    match (granted, tenant, state) {
        (true, Some(tenant), Some(state)) => Ok(AdminConsent {
            tenant,
            scopes: params
                .single("scope")?
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            state,
        }),
        (_, _, state) => Err(rejected(
            stage,
            "the admin consent callback lacks `admin_consent=True`, `tenant` or `state` — ask the administrator to grant consent again",
        )
        .with_state(state)),
    }
}

fn rejected(stage: Stage, fix: &str) -> OAuthError {
    OAuthError::local(OAuthErrorKind::CallbackRejected, stage, fix)
}

struct Params {
    stage: Stage,
    values: BTreeMap<String, Vec<String>>,
}

impl Params {
    fn parse(query: &str, stage: Stage) -> Self {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            values
                .entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        Params { stage, values }
    }

    fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    fn single(&self, name: &str) -> Result<Option<String>, OAuthError> {
        match self.values.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([value]) => Ok(Some(value.clone())),
            Some(_) => Err(rejected(
                self.stage,
                &format!("the callback repeats `{name}` — start the connection again"),
            )),
        }
    }

    /// The error fields, first value of each, so a malformed error callback is still classified.
    fn error_fields(&self) -> ErrorFields {
        let first = |name: &str| self.values.get(name).and_then(|v| v.first()).cloned();
        ErrorFields {
            error: first("error"),
            error_description: first("error_description"),
            error_codes: Vec::new(),
            suberror: first("error_subcode").or_else(|| first("suberror")),
        }
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn reads_code_and_state_and_ignores_the_rest() {
        let cb = parse_callback("?code=abc%2Bdef&state=s1&session_state=x&client_info=y").unwrap();
        assert_eq!(cb.code.expose_secret(), "abc+def");
        assert_eq!(cb.state, "s1");
        assert!(!format!("{cb:?}").contains("abc"));
    }

    /// Anyone can craft a callback URL: what it says reaches logs and pages without a line
    /// break or a terminal escape of its own.
    #[test]
    fn an_error_callback_cannot_forge_log_lines_or_terminal_escapes() {
        let err = parse_callback(
            "error=denied%0A2026-12-07T00:00:00Z+INFO+forged&error_subcode=%1B%5B31mred\
             &error_description=one%0D%0Atwo%1B%5B0m&state=s",
        )
        .unwrap_err();
        let shown = format!("{err} {err:?}");
        for c in ['\n', '\r', '\u{1b}'] {
            assert!(!shown.contains(c), "{shown:?}");
        }
        assert!(shown.contains("denied\\n2026"), "{shown}");
        let long = format!("error=x&error_description={}&state=s", "a".repeat(10_000));
        let err = parse_callback(&long).unwrap_err();
        assert!(err.description().unwrap().chars().count() <= 501);
    }

    #[test]
    fn classifies_error_callbacks_and_keeps_state() {
        let err = parse_callback(
            "error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent+to+access+the+app.&state=s2",
        )
        .unwrap_err();
        assert_eq!(err.kind(), OAuthErrorKind::UserDeclined);
        assert_eq!(err.aadsts(), Some(65004));
        assert_eq!(err.state(), Some("s2"));
        assert_eq!(
            err.description(),
            Some("AADSTS65004: User declined to consent to access the app.")
        );
        let err = parse_callback("error=interaction_required&state=s3").unwrap_err();
        assert_eq!(err.kind(), OAuthErrorKind::InteractionRequired);
    }

    #[test]
    fn refuses_broken_callbacks() {
        for query in [
            "state=s",
            "code=&state=s",
            "code=c",
            "code=a&code=b&state=s",
            "code=a&state=s&state=t",
            "",
        ] {
            let err = parse_callback(query).unwrap_err();
            assert_eq!(
                err.kind(),
                OAuthErrorKind::CallbackRejected,
                "{query}: {err}"
            );
        }
    }

    #[test]
    fn reads_admin_consent() {
        let ok = parse_admin_consent_callback(
            "admin_consent=True&tenant=4b6d1a1c-0000-4000-8000-000000000001&scope=https%3A%2F%2Fgraph.microsoft.com%2FPeople.Read.All+User.Read&state=s",
        )
        .unwrap();
        assert_eq!(ok.tenant, "4b6d1a1c-0000-4000-8000-000000000001");
        assert_eq!(
            ok.scopes,
            ["https://graph.microsoft.com/People.Read.All", "User.Read"]
        );
        assert_eq!(ok.state, "s");

        let err = parse_admin_consent_callback(
            "error=access_denied&error_description=AADSTS65004%3A+declined&state=s",
        )
        .unwrap_err();
        assert_eq!(err.kind(), OAuthErrorKind::UserDeclined);
        assert_eq!(err.state(), Some("s"));

        let err = parse_admin_consent_callback("admin_consent=False&tenant=t&state=s").unwrap_err();
        assert_eq!(err.kind(), OAuthErrorKind::CallbackRejected);
    }
}
