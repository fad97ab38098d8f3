//! A running emulator with a demo tenant, app and user, and the engine configured against it.

use std::collections::BTreeMap;

use plugboard_core::oauth::{OAuthClient, OAuthClientConfig};
use plugboard_core::spec::{ApiSpec, ClientAuthentication, OAuth2Spec};
use plugboard_emulator::{
    ControlClient, DemoOptions, DemoSetup, Emulator, EmulatorOptions, RunningEmulator,
};
use secrecy::SecretString;

pub const REDIRECT_URI: &str = "http://127.0.0.1:5555/callback";

/// Microsoft's OAuth facts as a provider spec states them; tests override the URLs.
pub const OAUTH_SPEC: &str = r#"
authorization_url = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"
token_url = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
admin_consent_url = "https://login.microsoftonline.com/{tenant}/v2.0/adminconsent"
pkce = true
scopes = [
    { name = "openid", default = true },
    { name = "offline_access", default = true },
    { name = "User.Read", default = true },
    { name = "People.Read", default = true },
    { name = "People.Read.All", admin_consent = true },
]
"#;

pub struct Harness {
    pub emulator: RunningEmulator,
    pub control: ControlClient,
    pub demo: DemoSetup,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
        let control = emulator.control();
        let demo = control
            .setup_demo(DemoOptions {
                redirect_uris: vec![REDIRECT_URI.to_owned()],
                people: 5,
                seed: 7,
            })
            .await
            .unwrap();
        Harness {
            emulator,
            control,
            demo,
            http: plugboard_core::http::http_client(),
        }
    }

    pub fn config(&self, auth: ClientAuthentication) -> OAuthClientConfig {
        let mut spec: OAuth2Spec = toml::from_str(OAUTH_SPEC).unwrap();
        spec.client_authentication = auth;
        let base = self.emulator.url();
        OAuthClientConfig {
            scopes: spec.default_scopes(),
            spec,
            client_id: self.demo.client_id.clone(),
            client_secret: SecretString::from(self.demo.client_secret.clone()),
            redirect_uri: REDIRECT_URI.to_owned(),
            authorization_url: Some(format!("{base}/{{tenant}}/oauth2/v2.0/authorize")),
            token_url: Some(format!("{base}/{{tenant}}/oauth2/v2.0/token")),
            admin_consent_url: Some(format!("{base}/{{tenant}}/v2.0/adminconsent")),
        }
    }

    pub fn oauth(&self) -> OAuthClient {
        self.oauth_with(self.config(ClientAuthentication::Form))
    }

    pub fn oauth_with(&self, config: OAuthClientConfig) -> OAuthClient {
        OAuthClient::new(self.http.clone(), config)
    }

    /// The connection config of a connection to the demo tenant.
    pub fn tenant(&self) -> BTreeMap<String, String> {
        tenant(&self.demo.tenant_id)
    }

    pub fn graph_api() -> ApiSpec {
        toml::from_str(
            r#"
            base_url = "https://graph.microsoft.com"
            [retry]
            statuses = [429, 503]
            max_attempts = 3
            initial_backoff = "50ms"
            max_backoff = "2s"
            "#,
        )
        .unwrap()
    }
}

pub fn tenant(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("tenant".to_owned(), tenant.to_owned())])
}
