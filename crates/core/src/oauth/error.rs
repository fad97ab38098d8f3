//! Every OAuth failure, classified into what the host should do about it.
//!
//! The classification is a pure function of where the failure happened ([`Stage`]), the HTTP
//! status and the provider's error fields, so it is tested table-style and shared by the token
//! endpoint and the authorization callbacks. Microsoft's AADSTS numbers are more precise than
//! the OAuth `error` strings (`invalid_grant` covers an expired refresh token and a reused code,
//! which need opposite handling), so a known number decides first.

use std::fmt;

use serde::Deserialize;

/// What the host should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OAuthErrorKind {
    /// The connection's grant no longer works (expired, revoked, consent or MFA missing):
    /// mark the connection broken and ask a person to connect again.
    ReconnectNeeded,
    /// The integration's own settings are wrong (client secret, scopes, tenant, redirect URI):
    /// an administrator must fix the integration; reconnecting does not help.
    IntegrationMisconfigured,
    /// The authorization code was already redeemed. Fail the callback and never retry it.
    CodeAlreadyUsed,
    /// The callback cannot complete (invalid or expired code, PKCE mismatch, malformed or
    /// mismatched callback): start the connection again.
    CallbackRejected,
    /// The user (or administrator) declined consent.
    UserDeclined,
    /// The provider needs the user to sign in or consent interactively.
    InteractionRequired,
    /// A temporary failure (5xx, 429, timeout, connection failure): retry later.
    Transient,
}

impl OAuthErrorKind {
    /// Whether the same request may succeed later without anyone changing anything.
    pub fn is_retryable(self) -> bool {
        self == OAuthErrorKind::Transient
    }
}

/// Where in the flow a failure happened; the same provider error can mean different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The authorization redirect came back with `error=`.
    Authorize,
    /// The admin consent redirect came back with `error=`.
    AdminConsent,
    /// Redeeming an authorization code at the token endpoint.
    CodeExchange,
    /// Redeeming a refresh token at the token endpoint.
    Refresh,
    /// Before anything was sent: the integration or connection config cannot form a request.
    Local,
}

/// The error fields a provider sends, from a token error body or a callback query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorFields {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<u32>,
    #[serde(default)]
    pub suberror: Option<String>,
}

impl ErrorFields {
    /// Reads a token endpoint error body; anything that is not a JSON object yields no fields.
    pub fn from_body(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// The AADSTS number: the first of `error_codes`, else the one that starts the description.
    fn aadsts(&self) -> Option<u32> {
        if let Some(code) = self.error_codes.first() {
            return Some(*code);
        }
        let description = self.error_description.as_deref()?;
        let start = description.find("AADSTS")? + "AADSTS".len();
        let digits: String = description[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }
}

/// A classified OAuth failure. Never contains tokens, codes or secrets: only the provider's
/// error fields, the status and our own text.
///
/// Boxed, so `Result<_, OAuthError>` stays small on the happy path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError(Box<Details>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    kind: OAuthErrorKind,
    stage: Stage,
    error: Option<String>,
    aadsts: Option<u32>,
    suberror: Option<String>,
    status: Option<u16>,
    description: Option<String>,
    fix: String,
    state: Option<String>,
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        match (d.aadsts, &d.error, d.status) {
            (Some(code), _, _) => write!(f, "AADSTS{code}: {}", d.fix),
            (None, Some(error), _) => write!(f, "{error}: {}", d.fix),
            (None, None, Some(status)) if status >= 400 => write!(f, "HTTP {status}: {}", d.fix),
            (None, None, _) => f.write_str(&d.fix),
        }
    }
}

impl std::error::Error for OAuthError {}

impl OAuthError {
    /// A failure found before or outside the provider's answer (bad config, broken callback,
    /// no connection), with our own description.
    pub fn local(kind: OAuthErrorKind, stage: Stage, fix: impl Into<String>) -> Self {
        OAuthError(Box::new(Details {
            kind,
            stage,
            error: None,
            aadsts: None,
            suberror: None,
            status: None,
            description: None,
            fix: fix.into(),
            state: None,
        }))
    }

    pub fn kind(&self) -> OAuthErrorKind {
        self.0.kind
    }

    pub fn stage(&self) -> Stage {
        self.0.stage
    }

    /// The OAuth `error` string, e.g. `invalid_grant`.
    pub fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// Microsoft's AADSTS number, e.g. `70008`.
    pub fn aadsts(&self) -> Option<u32> {
        self.0.aadsts
    }

    pub fn suberror(&self) -> Option<&str> {
        self.0.suberror.as_deref()
    }

    /// The token endpoint's HTTP status; `None` for callbacks and failures without an answer.
    pub fn status(&self) -> Option<u16> {
        self.0.status
    }

    /// The first line of the provider's description (trace and correlation ids dropped).
    pub fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// One line telling a person what to do.
    pub fn fix(&self) -> &str {
        &self.0.fix
    }

    /// The `state` of the callback that carried the error, so the host can find its flow.
    pub fn state(&self) -> Option<&str> {
        self.0.state.as_deref()
    }

    /// Whether the provider refused the client's own credential — a secret that is wrong or
    /// expired, a certificate it does not know or that has expired, an assertion outside its
    /// time range — rather than the request or the grant. Another credential of the same app
    /// may be accepted, so the engine tries it (`credentials.rs`).
    pub fn rejects_client_credential(&self) -> bool {
        let d = &self.0;
        if d.kind != IntegrationMisconfigured
            || !matches!(d.stage, Stage::CodeExchange | Stage::Refresh)
        {
            return false;
        }
        match d.aadsts {
            Some(code) => CLIENT_CREDENTIAL_REFUSED.contains(&code),
            // RFC 6749's code for a failed client authentication, or a bare 401.
            None => {
                d.error.as_deref() == Some("invalid_client")
                    || (d.error.is_none() && d.status == Some(401))
            }
        }
    }

    pub(crate) fn with_state(mut self, state: Option<String>) -> Self {
        self.0.state = state;
        self
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.0.status = Some(status);
        self
    }
}

/// Microsoft's codes for a client credential the app does not accept: a wrong secret
/// (7000215), an expired one (7000222), a certificate unknown, expired or not matching its key
/// (700027), an assertion outside its time range (700024).
const CLIENT_CREDENTIAL_REFUSED: &[u32] = &[7000215, 7000222, 700027, 700024];

/// Classifies a provider error: `status` is the token endpoint's status (`None` for a
/// callback), `fields` what the provider said.
pub fn classify(stage: Stage, status: Option<u16>, fields: &ErrorFields) -> OAuthError {
    let aadsts = fields.aadsts();
    let error = fields.error.as_deref().map(str::to_ascii_lowercase);
    let (kind, fix) = decide(stage, status, error.as_deref(), aadsts);
    OAuthError(Box::new(Details {
        kind,
        stage,
        error: fields.error.as_deref().map(printable),
        aadsts,
        suberror: fields.suberror.as_deref().map(printable),
        status,
        description: fields
            .error_description
            .as_deref()
            .map(|d| printable(&first_line(d))),
        fix: fix.into(),
        state: None,
    }))
}

/// The most characters of a provider's text kept in an error.
const MAX_PROVIDER_TEXT: usize = 500;

/// Text from outside (a provider's answer, or a callback URL anyone can craft) made safe to log
/// and show: control characters — newlines that would forge log lines, ANSI escapes that would
/// repaint a terminal — written as escapes, and the length capped.
fn printable(text: &str) -> String {
    match text.char_indices().nth(MAX_PROVIDER_TEXT) {
        Some((cut, _)) => format!("{}…", crate::text::escape_controls(&text[..cut])),
        None => crate::text::escape_controls(text),
    }
}

/// The first line of a description, without the trace, correlation and timestamp that
/// Microsoft appends (they differ per request and only help Microsoft's support).
fn first_line(description: &str) -> String {
    let line = description.lines().next().unwrap_or_default();
    let line = line.split(" Trace ID:").next().unwrap_or(line);
    line.trim().to_owned()
}

use OAuthErrorKind::*;

fn decide(
    stage: Stage,
    status: Option<u16>,
    error: Option<&str>,
    aadsts: Option<u32>,
) -> (OAuthErrorKind, &'static str) {
    if matches!(status, Some(429)) || matches!(status, Some(s) if s >= 500) {
        return (
            Transient,
            "the provider is unavailable or throttling — retry later",
        );
    }
    let by_code = aadsts.and_then(|code| by_aadsts(stage, code));
    let by_string = error.map(|error| by_error(stage, error));
    match (by_code, by_string) {
        // At a callback the `error` string is the documented contract (`interaction_required`
        // comes with AADSTS50076, which at the token endpoint means "reconnect"), so the code
        // only contributes its more precise fix when it agrees on the kind.
        (Some(code), Some(string))
            if matches!(stage, Stage::Authorize | Stage::AdminConsent) && code.0 != string.0 =>
        {
            string
        }
        (Some(code), _) => code,
        (None, Some(string)) => string,
        (None, None) => by_status(status),
    }
}

fn by_status(status: Option<u16>) -> (OAuthErrorKind, &'static str) {
    match status {
        Some(401 | 403) => (
            IntegrationMisconfigured,
            "the provider refused the client's credentials — check client_id and client_secret",
        ),
        Some(404 | 405) => (
            IntegrationMisconfigured,
            "the token URL does not point at a token endpoint — check the token_url and the tenant",
        ),
        Some(_) => (
            IntegrationMisconfigured,
            "the provider answered without an OAuth error — check the token_url",
        ),
        None => (
            CallbackRejected,
            "the callback carries neither a code nor an OAuth error — start the connection again",
        ),
    }
}

/// Microsoft's numbers that decide the kind whatever the `error` string says.
fn by_aadsts(stage: Stage, code: u32) -> Option<(OAuthErrorKind, &'static str)> {
    let at_exchange = stage == Stage::CodeExchange;
    Some(match code {
        54005 => (
            CodeAlreadyUsed,
            "the authorization code was already redeemed — start the connection again; a code is never retried",
        ),
        50148 => (
            CallbackRejected,
            "the PKCE code_verifier does not match the code_challenge — start the connection again",
        ),
        70008 if at_exchange => (
            CallbackRejected,
            "the authorization code expired before it was redeemed — start the connection again",
        ),
        70008 => (
            ReconnectNeeded,
            "the refresh token has expired — the user must connect again",
        ),
        9002313 if at_exchange => (
            CallbackRejected,
            "the authorization code is malformed or invalid — start the connection again",
        ),
        70000 => (
            ReconnectNeeded,
            "the granted scopes are unauthorized or expired — the user must connect again",
        ),
        700082 => (
            ReconnectNeeded,
            "the refresh token expired after 90 days of inactivity — the user must connect again",
        ),
        50173 => (
            ReconnectNeeded,
            "the grant was revoked (password change or administrator revocation) — the user must connect again",
        ),
        65001 => (
            ReconnectNeeded,
            "consent is missing for the requested scopes — the user must connect again, or an administrator must grant admin consent",
        ),
        50076 => (
            ReconnectNeeded,
            "multi-factor authentication is required by policy — the user must connect again and complete MFA",
        ),
        65004 if stage == Stage::AdminConsent => (
            UserDeclined,
            "the administrator declined to grant consent — ask them to grant it again",
        ),
        65004 => (
            UserDeclined,
            "the user declined to consent — ask them to connect again and accept",
        ),
        7000215 => (
            IntegrationMisconfigured,
            "the client secret is wrong (often the secret's ID was used instead of its value) — copy the secret's Value from Entra ID (Certificates & secrets) into client_secret",
        ),
        7000222 => (
            IntegrationMisconfigured,
            "the client secret has expired — create a new secret in Entra ID (Certificates & secrets) and update client_secret",
        ),
        70011 => (
            IntegrationMisconfigured,
            "a requested scope is not valid — check the integration's scopes against the provider's",
        ),
        50194 => (
            IntegrationMisconfigured,
            "the app is single-tenant and cannot use `common` — set the connection's tenant to the tenant's ID or domain, or make the app multi-tenant",
        ),
        90002 => (
            IntegrationMisconfigured,
            "the tenant does not exist — check the connection's tenant",
        ),
        700016 => (
            IntegrationMisconfigured,
            "the client_id is unknown in this tenant — check client_id and the tenant",
        ),
        500112 => (
            CallbackRejected,
            "the redirect_uri differs from the one the code was issued for — start the connection again",
        ),
        7000218 => (
            IntegrationMisconfigured,
            "no client credential was sent — set client_secret",
        ),
        700027 => (
            IntegrationMisconfigured,
            "the certificate is not registered on the app, has expired there, or the key does not match it — upload client_certificate in Entra ID (Certificates & secrets)",
        ),
        700024 => (
            IntegrationMisconfigured,
            "the client assertion is not within its valid time range — check this server's clock (NTP)",
        ),
        700023 => (
            IntegrationMisconfigured,
            "the client assertion's audience is not the token endpoint — check token_url and client_assertion_audience",
        ),
        700021 => (
            IntegrationMisconfigured,
            "the client assertion's issuer or subject is not the client_id — check client_id",
        ),
        // The emulator's code for a replayed `jti` (Entra documents none): every request signs
        // a fresh assertion, so the next one succeeds.
        7000274 => (
            Transient,
            "the client assertion was already used — retry; each request signs a new one",
        ),
        90130 => (
            IntegrationMisconfigured,
            "admin consent needs the tenant's ID or domain, or `organizations`, not `common` — set the connection's tenant",
        ),
        50011 | 500113 => (
            IntegrationMisconfigured,
            "the redirect URI is not registered for the app — add it exactly in Entra ID (Authentication) or fix redirect_uri",
        ),
        _ => return None,
    })
}

fn by_error(stage: Stage, error: &str) -> (OAuthErrorKind, &'static str) {
    match error {
        "invalid_grant" if stage == Stage::CodeExchange => (
            CallbackRejected,
            "the authorization code is invalid or expired — start the connection again",
        ),
        "invalid_grant" => (
            ReconnectNeeded,
            "the provider no longer accepts the grant — the user must connect again",
        ),
        "invalid_client" => (
            IntegrationMisconfigured,
            "the provider refused the client's credentials — check client_id and client_secret",
        ),
        "invalid_scope" => (
            IntegrationMisconfigured,
            "a requested scope is not valid — check the integration's scopes against the provider's",
        ),
        "unauthorized_client" => (
            IntegrationMisconfigured,
            "the app may not use this flow — check the app registration (supported account types, platform)",
        ),
        "invalid_request"
        | "invalid_resource"
        | "unsupported_response_type"
        | "unsupported_grant_type" => (
            IntegrationMisconfigured,
            "the provider refused the request as malformed — check the integration's URLs, redirect_uri and scopes",
        ),
        "access_denied" if stage == Stage::AdminConsent => {
            (UserDeclined, "the administrator declined to grant consent")
        }
        "access_denied" => (
            UserDeclined,
            "the user declined to consent — ask them to connect again and accept",
        ),
        "consent_required" | "interaction_required" | "login_required" => (
            InteractionRequired,
            "the provider needs the user to sign in or consent interactively — connect again without `prompt=none`",
        ),
        "server_error" | "temporarily_unavailable" => (
            Transient,
            "the provider is temporarily unavailable — retry later",
        ),
        _ if matches!(stage, Stage::Authorize | Stage::AdminConsent) => (
            CallbackRejected,
            "the provider rejected the authorization with an unrecognised error — start the connection again",
        ),
        _ => (
            IntegrationMisconfigured,
            "the provider answered with an unrecognised OAuth error — check the integration's settings",
        ),
    }
}

#[cfg(test)]
mod tests;
