//! The control API's request and response bodies, shared by the server and [`ControlClient`].
//!
//! [`ControlClient`]: crate::ControlClient

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateTenant {
    /// A GUID; random when absent.
    pub id: Option<String>,
    /// The verified domain; `tenantN.onmicrosoft.com` when absent.
    pub domain: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantInfo {
    pub id: String,
    pub domains: Vec<String>,
    pub display_name: String,
}

/// Who may sign in to an app: any organisation, or only its home tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    #[default]
    MultiTenant,
    SingleTenant,
}

/// What `authorize` shows: nothing (redirects at once), or a consent page to accept or decline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    #[default]
    Auto,
    Page,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateApp {
    pub name: Option<String>,
    /// Tenant id or domain.
    pub home_tenant: String,
    pub redirect_uris: Vec<String>,
    /// Lifetime of the client secret; two years when absent.
    pub secret_expires_in_secs: Option<i64>,
    pub audience: Audience,
    pub consent_mode: ConsentMode,
    /// Scopes an admin has already consented to in the home tenant (e.g. `People.Read.All`).
    pub admin_consented_scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppInfo {
    pub client_id: String,
    pub name: String,
    pub home_tenant_id: String,
    /// The first secret's value (empty once every secret was removed).
    pub client_secret: String,
    pub secret_expires_at: DateTime<Utc>,
    /// Every secret the app holds, oldest first, without their values.
    #[serde(default)]
    pub secrets: Vec<SecretInfo>,
    pub redirect_uris: Vec<String>,
    pub audience: Audience,
    pub consent_mode: ConsentMode,
    /// Admin-consented scopes by tenant id.
    pub admin_consents: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateUser {
    /// Tenant id or domain.
    pub tenant: String,
    /// Derived from the display name and the tenant's domain when absent.
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    /// The user principal name when absent.
    pub mail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub mail: String,
    pub tenant_id: String,
    pub people: usize,
    pub consent_revoked: bool,
    pub mfa_required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedPeople {
    pub count: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeopleCount {
    pub count: usize,
}

/// Which tokens to expire. An explicit token wins; else a user's tokens; else every access
/// token. Expired refresh tokens answer AADSTS70008.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpireTokens {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    /// User id or user principal name.
    pub user: Option<String>,
    /// With `user` (or nothing): expire refresh tokens as well as access tokens.
    pub include_refresh_tokens: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    pub access_tokens: usize,
    pub refresh_tokens: usize,
}

/// Changes the app's first secret (`POST /apps/{client_id}/secret`); the per-secret calls
/// are [`AddSecret`] and `…/secrets/{id}/expire` and `DELETE …/secrets/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateSecret {
    /// From the current virtual time; zero or less expires the secret now.
    pub expires_in_secs: i64,
    /// Issue a new secret value (the old one stops working).
    pub rotate: bool,
}

/// A further client secret for an app (Entra's `addPassword`), next to those it holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AddSecret {
    /// From the current virtual time; two years when absent.
    pub expires_in_secs: Option<i64>,
}

/// A secret just added: the only answer that carries its value, as in Entra.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSecret {
    /// The `keyId` that names it in the other calls.
    pub id: String,
    pub value: String,
    pub expires_at: DateTime<Utc>,
}

/// A secret as an app lists it: named, never shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub id: String,
    /// The value's first three characters, as the portal shows them.
    pub hint: String,
    pub expires_at: DateTime<Utc>,
}

/// A certificate to register on an app (Entra's Certificates & secrets → Upload certificate).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddCertificate {
    /// The certificate in PEM (`-----BEGIN CERTIFICATE-----`); only its public key is kept.
    pub certificate: String,
}

/// A certificate registered on an app, as the token endpoint finds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// base64url SHA-256 of the certificate's DER: what `x5t#S256` must name.
    pub thumbprint_sha256: String,
    /// base64url SHA-1 of the DER: what `x5t` must name.
    pub thumbprint_sha1: String,
    /// After it, assertions signed with the certificate's key are refused (AADSTS700027).
    pub not_after: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvanceClock {
    pub seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockInfo {
    pub now: DateTime<Utc>,
    pub offset_secs: i64,
}

/// The documented `error` values of an authorization (or admin consent) redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizeErrorKind {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    ServerError,
    TemporarilyUnavailable,
    InvalidResource,
    LoginRequired,
    InteractionRequired,
    ConsentRequired,
}

impl AuthorizeErrorKind {
    pub fn as_str(self) -> &'static str {
        use AuthorizeErrorKind::*;
        match self {
            InvalidRequest => "invalid_request",
            UnauthorizedClient => "unauthorized_client",
            AccessDenied => "access_denied",
            UnsupportedResponseType => "unsupported_response_type",
            ServerError => "server_error",
            TemporarilyUnavailable => "temporarily_unavailable",
            InvalidResource => "invalid_resource",
            LoginRequired => "login_required",
            InteractionRequired => "interaction_required",
            ConsentRequired => "consent_required",
        }
    }
}

/// The outcome forced on an app's next authorize or admin consent request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NextOutcome {
    pub error: AuthorizeErrorKind,
    /// A realistic `AADSTSnnnn: …` text for the error when absent.
    #[serde(default)]
    pub error_description: Option<String>,
}

/// Misbehaviour for the next `count` requests whose path starts with `path_prefix`, in which a
/// `*` segment (`/*/oauth2/v2.0/token`) stands for any one segment (every tenant at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRule {
    /// `GET`, `POST`, …; any method when absent.
    #[serde(default)]
    pub method: Option<String>,
    pub path_prefix: String,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(flatten)]
    pub kind: FaultKind,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status and an error body shaped for the path (Graph or OAuth).
    Status {
        status: u16,
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// Wait, then answer normally.
    Delay { ms: u64 },
    /// 200 with a truncated JSON body.
    MalformedBody,
    /// Close the connection without a complete response: the client sees a transport error.
    DropConnection,
    /// 200 with the real page, but its `@odata.nextLink` points back at the page itself (the
    /// request's own absolute URL): paging that is stuck, as a client following next links
    /// verbatim meets it. A response that is not a successful page passes unchanged.
    RepeatNextLink,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Token endpoint requests by `grant_type` (`"missing"` when absent).
    pub token_requests: BTreeMap<String, u64>,
    /// Graph requests by path, without the query string.
    pub graph_requests: BTreeMap<String, u64>,
    /// 429 responses sent, whether by throttling or by a fault.
    pub throttled: u64,
    /// Most Graph requests seen in flight at once for a mailbox (user id), counting rejected ones.
    pub max_concurrency_per_mailbox: BTreeMap<String, u32>,
    /// Most Graph requests seen in flight at once overall.
    pub max_concurrency: u32,
    /// Token endpoint errors by AADSTS code (e.g. `"7000222"`).
    #[serde(default)]
    pub token_errors: BTreeMap<String, u64>,
    /// Token requests whose client authenticated, by the credential that did: a secret's id,
    /// or `certificate:` and the certificate's SHA-256 thumbprint.
    #[serde(default)]
    pub client_credentials: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThrottleSettings {
    /// In-flight Graph requests allowed per (app, mailbox); the next one gets a 429.
    pub max_concurrent_per_mailbox: u32,
    /// Requests allowed per (app, mailbox) and window.
    pub requests_per_window: u32,
    pub window_secs: u64,
    /// `Retry-After` on throttling 429s; when absent, 1 for concurrency and the rest of the
    /// window for the budget.
    pub retry_after_secs: Option<u64>,
}

impl Default for ThrottleSettings {
    /// Outlook's published limits: 4 concurrent requests, 10,000 per 10 minutes.
    fn default() -> Self {
        ThrottleSettings {
            max_concurrent_per_mailbox: 4,
            requests_per_window: 10_000,
            window_secs: 600,
            retry_after_secs: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub throttling: ThrottleSettings,
    /// Added to every Graph response.
    pub graph_latency_ms: u64,
    /// What redeeming a refresh token does to it.
    #[serde(default)]
    pub refresh_token_rotation: RefreshTokenRotation,
}

/// What redeeming a refresh token does to it. Microsoft keeps the old token valid (`Off`, the
/// default); other providers rotate refresh tokens and revoke the one used, some the whole
/// family when a used one comes back, which punishes a client that lost the new token (say,
/// by crashing before storing it) and tries the old one again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshTokenRotation {
    /// Microsoft's behaviour: a refresh returns a new refresh token and the old one stays valid.
    #[default]
    Off,
    /// A refresh token works once; used again, it is refused as revoked.
    RevokeUsed,
    /// As `RevokeUsed`, and using a used token again also revokes every token issued from the
    /// same sign-in (the family), the newest included: reuse is read as theft.
    RevokeFamilyOnReuse,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateSettings {
    pub throttling: Option<ThrottleSettings>,
    pub graph_latency_ms: Option<u64>,
    pub refresh_token_rotation: Option<RefreshTokenRotation>,
}

/// See [`ControlClient::setup_demo`](crate::ControlClient::setup_demo).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoOptions {
    pub redirect_uris: Vec<String>,
    pub people: usize,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            redirect_uris: Vec::new(),
            people: 200,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoSetup {
    pub tenant_id: String,
    pub tenant_domain: String,
    pub client_id: String,
    pub client_secret: String,
    pub user_id: String,
    pub user_principal_name: String,
}

/// A new API Management subscription for the `/apim` API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateSubscription {
    /// Shown by `GET /apim/subscription`; generated when absent.
    pub name: Option<String>,
}

/// An API Management subscription and its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    pub id: String,
    pub name: String,
    /// Sent as `Ocp-Apim-Subscription-Key` or `?subscription-key=`.
    pub key: String,
}
