//! Integrations resolved once at start-up: the provider, its spec, how its connections
//! authenticate (the OAuth client built from the integration's credentials and overrides, or
//! the spec's API-key placement), and the API base URL template.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use plugboard_core::http::Credential;
use plugboard_core::oauth::{
    Credentials, OAuthClient, OAuthClientConfig, OAuthError, OAuthErrorKind, Stage,
};
use plugboard_core::spec::{ApiKeySpec, ApiSpec, AuthSpec, fill_template, template_placeholders};
use plugboard_core::{Provider, ProviderSpec};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::{Config, IntegrationConfig};
use crate::registry::Registry;
use plugboard_store::Connection;

pub struct Integration {
    pub name: String,
    pub provider: Arc<dyn Provider>,
    auth: Auth,
    api_base_url: BaseUrl,
    /// The spec's `api.default_headers`, parsed once rather than on every proxied request.
    pub default_headers: HeaderMap,
    /// Whether a requested scope needs an administrator's consent (e.g. `People.Read.All`).
    pub needs_admin_consent: bool,
    /// When the last of the integration's credentials expires (a secret's configured date, a
    /// certificate's end date): until then one of them still works. `None` when one has no
    /// known expiry.
    pub credentials_expire_on: Option<chrono::NaiveDate>,
}

impl Integration {
    pub fn spec(&self) -> &ProviderSpec {
        self.provider.spec()
    }

    pub fn api(&self) -> &ApiSpec {
        &self.spec().api
    }

    /// The OAuth client, or why there is none: an API-key integration's connections are
    /// created with their key (`POST /connections`), never through an OAuth flow.
    pub fn oauth(&self) -> Result<&OAuthClient, OAuthError> {
        match &self.auth {
            Auth::OAuth2(client) => Ok(client),
            Auth::ApiKey(_) => Err(OAuthError::local(
                OAuthErrorKind::IntegrationMisconfigured,
                Stage::Local,
                format!(
                    "integration `{}` uses API keys: create its connections with                      POST /connections and the key, not through OAuth",
                    self.name
                ),
            )),
        }
    }

    /// Where an API-key integration's keys go; `None` for OAuth integrations.
    pub fn api_key(&self) -> Option<&ApiKeySpec> {
        match &self.auth {
            Auth::ApiKey(spec) => Some(spec),
            Auth::OAuth2(_) => None,
        }
    }

    /// Whether a rejected credential can be replaced by a token refresh. An API key cannot:
    /// the provider's 401 is the answer.
    pub fn refreshes(&self) -> bool {
        matches!(self.auth, Auth::OAuth2(_))
    }

    /// The connection's secret as this integration sends it. API-key connections keep their
    /// key where OAuth connections keep their access token (sealed the same way).
    pub fn credential<'c>(&'c self, connection: &'c Connection) -> Credential<'c> {
        let secret = connection.tokens.access_token.expose_secret();
        match &self.auth {
            Auth::OAuth2(_) => Credential::Bearer(secret),
            Auth::ApiKey(spec) => Credential::ApiKey { spec, key: secret },
        }
    }

    /// The API base URL for a connection, placeholders filled from its config.
    pub fn api_base_url(
        &self,
        connection_config: &BTreeMap<String, String>,
    ) -> Result<Cow<'_, Url>, String> {
        match &self.api_base_url {
            BaseUrl::Fixed(url) => Ok(Cow::Borrowed(url)),
            BaseUrl::Template(template) => {
                let filled = fill_template(template, connection_config)
                    .map_err(|e| format!("api_base_url: {e}"))?;
                Url::parse(&filled)
                    .map(Cow::Owned)
                    .map_err(|e| format!("api_base_url `{filled}`: {e}"))
            }
        }
    }
}

/// How the integration's connections authenticate.
enum Auth {
    /// Boxed: the client is large, and there is one per integration.
    OAuth2(Box<OAuthClient>),
    ApiKey(ApiKeySpec),
}

/// The spec's `api.base_url` or the integration's override. Most have no placeholder and are
/// parsed once; the others are filled per connection.
enum BaseUrl {
    Fixed(Url),
    Template(String),
}

impl BaseUrl {
    fn new(template: String) -> Result<BaseUrl, String> {
        let placeholders = template_placeholders(&template).map_err(|e| e.to_string())?;
        if !placeholders.is_empty() {
            return Ok(BaseUrl::Template(template));
        }
        Url::parse(&template)
            .map(BaseUrl::Fixed)
            .map_err(|e| format!("`{template}`: {e}"))
    }
}

/// Every configured integration by name.
///
/// A SIGHUP reload swaps the whole map at once ([`Integrations::replace`]). Readers take an
/// `Arc` of the integration they use and keep it, so a request in flight finishes with the
/// configuration it started with instead of failing half-way.
pub struct Integrations {
    by_name: RwLock<Arc<BTreeMap<String, Arc<Integration>>>>,
}

impl Integrations {
    /// Resolves the configured integrations. OAuth 2.0 and API-key providers can be integrated
    /// today; configuration validation already checked that each provider exists.
    pub fn resolve(
        config: &Config,
        registry: &Registry,
        http: &reqwest::Client,
    ) -> Result<Integrations, String> {
        let redirect_uri = config.server.redirect_uri();
        let mut by_name = BTreeMap::new();
        for (name, integration) in &config.integrations {
            let resolved = resolve_one(name, integration, registry, http, &redirect_uri)?;
            by_name.insert(name.clone(), Arc::new(resolved));
        }
        Ok(Integrations {
            by_name: RwLock::new(Arc::new(by_name)),
        })
    }

    fn current(&self) -> Arc<BTreeMap<String, Arc<Integration>>> {
        self.by_name
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Integration>> {
        self.current().get(name).cloned()
    }

    /// The integrations as they are now, by name.
    pub fn iter(&self) -> impl Iterator<Item = Arc<Integration>> + use<> {
        let current = self.current();
        current.values().cloned().collect::<Vec<_>>().into_iter()
    }

    /// Puts `new`'s integrations in place of these, all at once (a configuration reload).
    pub fn replace(&self, new: Integrations) {
        let new = new.current();
        *self.by_name.write().unwrap_or_else(PoisonError::into_inner) = new;
    }
}

fn resolve_one(
    name: &str,
    config: &IntegrationConfig,
    registry: &Registry,
    http: &reqwest::Client,
    redirect_uri: &str,
) -> Result<Integration, String> {
    let provider = registry
        .get(&config.provider)
        .ok_or_else(|| format!("integrations.{name}: no provider `{}`", config.provider))?
        .clone();
    let spec = provider.spec();
    let (auth, needs_admin_consent) = match &spec.auth {
        AuthSpec::Oauth2(oauth_spec) => {
            let needs_admin_consent = config
                .scopes
                .iter()
                .any(|scope| oauth_spec.scope(scope).is_some_and(|s| s.admin_consent));
            let client = OAuthClient::new(
                http.clone(),
                OAuthClientConfig {
                    spec: oauth_spec.clone(),
                    client_id: config.client_id.clone(),
                    // Unused: the credentials below replace it.
                    client_secret: SecretString::from(String::new()),
                    redirect_uri: redirect_uri.to_owned(),
                    authorization_url: config.overrides.authorization_url.clone(),
                    token_url: config.overrides.token_url.clone(),
                    admin_consent_url: config.overrides.admin_consent_url.clone(),
                    scopes: config.scopes.clone(),
                },
            );
            // Ordered by validity today: the valid one that expires last is tried first.
            let today = chrono::Utc::now().date_naive();
            let credentials = Credentials::new(config.credentials.clone(), today);
            let client = client.with_credentials(
                credentials,
                config.overrides.client_assertion_audience.clone(),
            );
            (Auth::OAuth2(Box::new(client)), needs_admin_consent)
        }
        AuthSpec::ApiKey(key_spec) => (Auth::ApiKey(key_spec.clone()), false),
        other => {
            return Err(format!(
                "integrations.{name}: provider `{}` uses auth mode `{}`, which this host does not support yet",
                spec.id,
                other.mode()
            ));
        }
    };
    let base_url = config
        .overrides
        .api_base_url
        .clone()
        .unwrap_or_else(|| spec.api.base_url.clone());
    let api_base_url =
        BaseUrl::new(base_url).map_err(|e| format!("integrations.{name}: api base URL {e}"))?;
    let mut default_headers = HeaderMap::new();
    for (header, value) in &spec.api.default_headers {
        let parsed = (
            HeaderName::try_from(header.as_str()),
            HeaderValue::from_str(value),
        );
        let (Ok(header), Ok(value)) = parsed else {
            return Err(format!(
                "provider `{}`: api.default_headers.{header} is not a valid header",
                spec.id
            ));
        };
        default_headers.insert(header, value);
    }
    Ok(Integration {
        name: name.to_owned(),
        api_base_url,
        default_headers,
        provider,
        auth,
        needs_admin_consent,
        credentials_expire_on: last_expiry(config),
    })
}

/// When the last of the integration's credentials expires; `None` when there is none or one
/// has no known expiry (it may outlive the others).
fn last_expiry(config: &IntegrationConfig) -> Option<chrono::NaiveDate> {
    let mut dates = config.credentials.iter().map(|c| c.expires);
    let first = dates.next()??;
    dates.try_fold(first, |last, date| Some(last.max(date?)))
}
