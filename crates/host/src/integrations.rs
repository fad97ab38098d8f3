//! Integrations resolved once at start-up: the provider, its spec, the OAuth client built from
//! the integration's credentials and overrides, and the API base URL template.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use plugboard_core::oauth::{OAuthClient, OAuthClientConfig};
use plugboard_core::spec::{ApiSpec, fill_template, template_placeholders};
use plugboard_core::{Provider, ProviderSpec};
use url::Url;

use crate::config::{Config, IntegrationConfig};
use crate::registry::Registry;

pub struct Integration {
    pub name: String,
    pub provider: Arc<dyn Provider>,
    pub oauth: OAuthClient,
    api_base_url: BaseUrl,
    /// The spec's `api.default_headers`, parsed once rather than on every proxied request.
    pub default_headers: HeaderMap,
    /// Whether a requested scope needs an administrator's consent (e.g. `People.Read.All`).
    pub needs_admin_consent: bool,
    pub client_secret_expires_at: Option<chrono::NaiveDate>,
}

impl Integration {
    pub fn spec(&self) -> &ProviderSpec {
        self.provider.spec()
    }

    pub fn api(&self) -> &ApiSpec {
        &self.spec().api
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
pub struct Integrations {
    by_name: BTreeMap<String, Arc<Integration>>,
}

impl Integrations {
    /// Resolves the configured integrations. Only OAuth 2.0 providers can be integrated today;
    /// configuration validation already checked that each provider exists.
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
        Ok(Integrations { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Integration>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Integration>> {
        self.by_name.values()
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
    let oauth_spec = spec.auth.as_oauth2().ok_or_else(|| {
        format!(
            "integrations.{name}: provider `{}` uses auth mode `{}`, which this host does not support yet",
            spec.id,
            spec.auth.mode()
        )
    })?;
    let needs_admin_consent = config
        .scopes
        .iter()
        .any(|scope| oauth_spec.scope(scope).is_some_and(|s| s.admin_consent));
    let oauth = OAuthClient::new(
        http.clone(),
        OAuthClientConfig {
            spec: oauth_spec.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            redirect_uri: redirect_uri.to_owned(),
            authorization_url: config.overrides.authorization_url.clone(),
            token_url: config.overrides.token_url.clone(),
            admin_consent_url: config.overrides.admin_consent_url.clone(),
            scopes: config.scopes.clone(),
        },
    );
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
        oauth,
        needs_admin_consent,
        client_secret_expires_at: config.client_secret_expires_at,
    })
}
