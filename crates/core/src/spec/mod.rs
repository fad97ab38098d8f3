//! The declarative provider spec: a provider's auth and API facts as data.
//!
//! A provider crate ships a `provider.toml` next to its code and embeds it with
//! `include_str!`; [`ProviderSpec::parse`] turns it into these types and validates it. Keeping the
//! facts here (URLs, scopes, pagination, retry rules) rather than in provider code is what lets
//! the host own auth, retries and limits, and lets a provider that is only auth + proxy exist
//! without any Rust at all.

mod duration;
#[cfg(test)]
mod fuzz;
mod parse;
mod template;
mod validate;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use duration::HumanDuration;
pub use parse::SpecError;
pub use template::{TemplateError, fill_template, template_placeholders};

/// A provider's complete description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderSpec {
    /// Stable, kebab-case identifier, e.g. `microsoft-people`. Config files refer to it.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub docs_url: String,
    /// Per-connection settings (such as Microsoft's tenant) that fill URL placeholders.
    #[serde(default)]
    pub connection_config: BTreeMap<String, ConnectionParam>,
    pub auth: AuthSpec,
    pub api: ApiSpec,
    /// How the host identifies the connected account after a connection is made.
    #[serde(default)]
    pub account: Option<AccountSpec>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelSpec>,
    #[serde(default)]
    pub syncs: Vec<SyncSpec>,
    #[serde(default)]
    pub actions: Vec<ActionSpec>,
}

/// One per-connection setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionParam {
    #[serde(default)]
    pub description: String,
    /// Used when a connection does not set the parameter; without one the parameter is required.
    #[serde(default)]
    pub default: Option<String>,
}

/// How a connection authenticates. The host implements `oauth2` and `api_key` today; the other
/// modes are part of the format so specs and code can grow into them without a breaking change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AuthSpec {
    Oauth2(OAuth2Spec),
    ApiKey(ApiKeySpec),
    Basic(BasicSpec),
    Oauth2ClientCredentials(ClientCredentialsSpec),
}

impl AuthSpec {
    /// The spec's name for this mode, as written in `auth.mode`.
    pub fn mode(&self) -> &'static str {
        match self {
            AuthSpec::Oauth2(_) => "oauth2",
            AuthSpec::ApiKey(_) => "api_key",
            AuthSpec::Basic(_) => "basic",
            AuthSpec::Oauth2ClientCredentials(_) => "oauth2_client_credentials",
        }
    }

    pub fn as_api_key(&self) -> Option<&ApiKeySpec> {
        match self {
            AuthSpec::ApiKey(spec) => Some(spec),
            _ => None,
        }
    }

    pub fn as_oauth2(&self) -> Option<&OAuth2Spec> {
        match self {
            AuthSpec::Oauth2(spec) => Some(spec),
            _ => None,
        }
    }
}

/// The OAuth 2.0 authorization-code flow (with refresh tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Spec {
    /// URL template; `{name}` placeholders are filled from the connection config.
    #[serde(default)]
    pub authorization_url: String,
    #[serde(default)]
    pub token_url: String,
    /// Where an administrator grants consent for the whole organisation, if the provider has it.
    #[serde(default)]
    pub admin_consent_url: Option<String>,
    #[serde(default)]
    pub scopes: Vec<ScopeSpec>,
    #[serde(default = "default_scope_separator")]
    pub scope_separator: String,
    /// Send a PKCE S256 challenge. Recommended even for confidential clients.
    #[serde(default = "default_true")]
    pub pkce: bool,
    /// Extra query parameters on the authorization URL (e.g. `prompt`, `response_mode`).
    #[serde(default)]
    pub authorization_params: BTreeMap<String, String>,
    #[serde(default)]
    pub client_authentication: ClientAuthentication,
}

impl OAuth2Spec {
    /// The scopes requested when an integration does not choose its own.
    pub fn default_scopes(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|s| s.default)
            .map(|s| s.name.clone())
            .collect()
    }

    pub fn scope(&self, name: &str) -> Option<&ScopeSpec> {
        self.scopes.iter().find(|s| s.name == name)
    }
}

fn default_scope_separator() -> String {
    " ".to_owned()
}

fn default_true() -> bool {
    true
}

/// How the client proves its identity at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthentication {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    Form,
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    Basic,
    /// A JWT signed with the private key of a certificate registered at the provider
    /// (OpenID Connect `private_key_jwt`, RFC 7523): the integration must configure a
    /// certificate, and no secret is sent.
    PrivateKeyJwt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Requested unless the integration chooses its own scopes.
    #[serde(default)]
    pub default: bool,
    /// Only an administrator can grant it (Microsoft's `*.All` scopes).
    #[serde(default)]
    pub admin_consent: bool,
}

/// A static key sent in a header or query parameter (both, when both are set). Each connection
/// brings its own key; the integration has no client id or secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// Header that carries the key, e.g. `Authorization` or `X-Api-Key`.
    #[serde(default)]
    pub header: Option<String>,
    /// Template for the header value; `{api_key}` is replaced by the key.
    #[serde(default)]
    pub header_format: Option<String>,
    /// Query parameter that carries the key, for APIs that want it in the URL.
    #[serde(default)]
    pub query_param: Option<String>,
}

/// HTTP Basic with a username and password per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicSpec {}

/// OAuth 2.0 client credentials: the integration itself is the principal, no user consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsSpec {
    #[serde(default)]
    pub token_url: String,
    #[serde(default)]
    pub scopes: Vec<ScopeSpec>,
    #[serde(default)]
    pub client_authentication: ClientAuthentication,
}

/// Facts about the provider's HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiSpec {
    /// Requests name paths below this URL; the path carries any version (`/v1.0/me`).
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub default_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub retry: RetrySpec,
    /// Most requests in flight per connection from syncs and actions.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    /// Named pagination presets that provider code refers to.
    #[serde(default)]
    pub pagination: BTreeMap<String, PaginationSpec>,
}

/// Which responses are retried, and how long to wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrySpec {
    #[serde(default = "default_retry_statuses")]
    pub statuses: Vec<u16>,
    /// Header holding the seconds (or HTTP date) to wait before retrying.
    #[serde(default = "default_retry_after_header")]
    pub retry_after_header: String,
    /// Attempts in all, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First delay of the exponential backoff used when no `Retry-After` is given.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: HumanDuration,
    /// Longest wait, whatever `Retry-After` says.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            statuses: default_retry_statuses(),
            retry_after_header: default_retry_after_header(),
            max_attempts: default_max_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

fn default_retry_statuses() -> Vec<u16> {
    vec![429, 502, 503, 504]
}

fn default_retry_after_header() -> String {
    "Retry-After".to_owned()
}

fn default_max_attempts() -> u32 {
    5
}

fn default_initial_backoff() -> HumanDuration {
    HumanDuration(Duration::from_millis(500))
}

fn default_max_backoff() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// The provider's documented request budget per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitSpec {
    pub requests: u32,
    pub per: HumanDuration,
}

/// How a list endpoint pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaginationSpec {
    /// The body carries the absolute URL of the next page (OData's `@odata.nextLink`), which is
    /// followed verbatim; the last page has none.
    NextLink {
        /// JSON pointer to the next link, e.g. `/@odata.nextLink`.
        next_link: String,
        /// JSON pointer to the array of records, e.g. `/value`.
        records: String,
        /// Query parameter that sets the page size on the first request.
        #[serde(default)]
        page_size_param: Option<String>,
        #[serde(default)]
        page_size: Option<u32>,
        /// The largest page the provider serves: the bound on the page size an integration
        /// may choose for its syncs (`[integrations.<key>.syncs.<name>] page_size`).
        #[serde(default)]
        max_page_size: Option<u32>,
    },
    /// The body carries an opaque cursor that is sent back as a query parameter.
    Cursor {
        /// JSON pointer to the next cursor, a JSON string; absent, null, empty or not a string
        /// ends the crawl.
        cursor: String,
        /// Query parameter the cursor is sent in.
        cursor_param: String,
        records: String,
        #[serde(default)]
        page_size_param: Option<String>,
        #[serde(default)]
        page_size: Option<u32>,
        #[serde(default)]
        max_page_size: Option<u32>,
    },
}

impl PaginationSpec {
    /// JSON pointer to the records of a page.
    pub fn records_pointer(&self) -> &str {
        match self {
            PaginationSpec::NextLink { records, .. } | PaginationSpec::Cursor { records, .. } => {
                records
            }
        }
    }

    /// The page size parameter and its default value, if the preset sets one.
    pub fn page_size(&self) -> Option<(&str, u32)> {
        Some((self.page_size_param()?, self.sizes().0?))
    }

    /// The query parameter that sets the page size, if the provider has one.
    pub fn page_size_param(&self) -> Option<&str> {
        match self {
            PaginationSpec::NextLink {
                page_size_param, ..
            }
            | PaginationSpec::Cursor {
                page_size_param, ..
            } => page_size_param.as_deref(),
        }
    }

    /// The largest page size the provider serves, if the spec says.
    pub fn max_page_size(&self) -> Option<u32> {
        self.sizes().1
    }

    /// `(page_size, max_page_size)` as written.
    fn sizes(&self) -> (Option<u32>, Option<u32>) {
        match self {
            PaginationSpec::NextLink {
                page_size,
                max_page_size,
                ..
            }
            | PaginationSpec::Cursor {
                page_size,
                max_page_size,
                ..
            } => (*page_size, *max_page_size),
        }
    }
}

/// Where the connected account's identity is read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSpec {
    /// Path below the API base URL, e.g. `/v1.0/me`.
    pub path: String,
    /// JSON pointers into the response.
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    #[serde(default)]
    pub description: String,
}

/// A sync keeps a copy of one model of the provider's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncSpec {
    pub name: String,
    pub model: String,
    #[serde(default)]
    pub description: String,
    /// How often the host runs it unless an integration says otherwise.
    pub frequency: HumanDuration,
    /// Scopes the connection needs for the sync to work.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// An action is a one-off call made on a connection's behalf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A short description of the input JSON, for people reading the spec.
    #[serde(default)]
    pub input: Option<String>,
}

impl ProviderSpec {
    pub fn sync(&self, name: &str) -> Option<&SyncSpec> {
        self.syncs.iter().find(|s| s.name == name)
    }

    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }

    pub fn pagination(&self, preset: &str) -> Option<&PaginationSpec> {
        self.api.pagination.get(preset)
    }

    /// The largest page size an integration may choose for a sync: the smallest
    /// `max_page_size` of the pagination presets, as the spec does not say which preset a sync
    /// pages with. `None` when no preset declares one, and then no page size may be chosen.
    pub fn max_page_size(&self) -> Option<u32> {
        self.api
            .pagination
            .values()
            .filter_map(PaginationSpec::max_page_size)
            .min()
    }

    /// The connection config with defaults applied and every value checked, or what is wrong.
    pub fn resolve_connection_config(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, Vec<String>> {
        let mut problems = Vec::new();
        for key in given.keys() {
            if !self.connection_config.contains_key(key) {
                problems.push(format!(
                    "connection_config.{key}: unknown parameter for provider `{}`",
                    self.id
                ));
            }
        }
        let mut resolved = BTreeMap::new();
        for (key, param) in &self.connection_config {
            match given.get(key).or(param.default.as_ref()) {
                Some(value) => match template::check_value(value) {
                    Ok(()) => {
                        resolved.insert(key.clone(), value.clone());
                    }
                    Err(why) => problems.push(format!("connection_config.{key}: {why}")),
                },
                None => problems.push(format!("connection_config.{key}: required, not set")),
            }
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(problems)
        }
    }
}
