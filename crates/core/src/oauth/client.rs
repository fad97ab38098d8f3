//! The authorization-code flow of one integration, on top of the `oauth2` crate.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, HttpClientError, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::certificate::{CLIENT_ASSERTION_TYPE, ClientCertificate};
use super::credentials::{ClientCredential, Credentials, NamedCredential};
use super::error::{ErrorFields, OAuthError, OAuthErrorKind, Stage, classify};
use super::token::{TokenSet, WireToken};
use crate::http::{BodyError, describe, read_limited};
use crate::spec::{ClientAuthentication, OAuth2Spec, fill_template};

/// How long a token request may take before it counts as a transient failure.
pub const DEFAULT_TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a token endpoint's answer that is read: a token response, even with an ID
/// token and a long scope list, is a few KB; anything near this is not one.
const MAX_TOKEN_ANSWER: usize = 1024 * 1024;

/// Parameters the engine sets itself; an integration or caller setting them would make two
/// values of, say, `state` reach the provider, and the wrong one might win.
const RESERVED_AUTHORIZATION_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// One integration's OAuth settings.
#[derive(Debug, Clone)]
pub struct OAuthClientConfig {
    /// The provider's OAuth facts, from its spec.
    pub spec: OAuth2Spec,
    pub client_id: String,
    /// The client's one secret; [`OAuthClient::with_credentials`] replaces it with several
    /// credentials, [`OAuthClient::with_client_assertion`] with a certificate.
    pub client_secret: SecretString,
    /// Must equal a URI registered with the provider, byte for byte.
    pub redirect_uri: String,
    /// Replace the spec's URL templates, e.g. to point at the emulator. They are templates too.
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub admin_consent_url: Option<String>,
    /// The scopes to request, in the provider's naming.
    pub scopes: Vec<String>,
}

/// The start of a flow: send the user to `url`, keep `state` and `pkce_verifier` until the
/// callback arrives.
#[derive(Clone)]
pub struct AuthorizationRequest {
    pub url: String,
    /// Random, 256 bits: the callback must carry it back.
    pub state: String,
    /// Present when the spec asks for PKCE; needed to redeem the code.
    pub pkce_verifier: Option<SecretString>,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("url", &self.url)
            .field("state", &self.state)
            .field(
                "pkce_verifier",
                &self.pkce_verifier.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

type Oauth2Client = oauth2::Client<
    BasicErrorResponse,
    WireToken,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
>;

/// Runs the OAuth flow of one integration with the process's one HTTP client.
///
/// Every failure is an [`OAuthError`] saying what to do about it. Token requests are never
/// retried here: a code must not be redeemed twice, and the host decides when a transient
/// refresh failure is tried again (never two refreshes of one connection at once).
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    config: OAuthClientConfig,
    timeout: Duration,
    /// What token requests authenticate with, in the order they are tried. Shared by clones,
    /// so the credential found to work is preferred by all of them.
    credentials: Arc<Credentials>,
    /// A client assertion's `aud` template instead of the token endpoint's URL.
    assertion_audience: Option<String>,
}

/// A certificate credential and where its assertions are addressed.
#[derive(Debug, Clone)]
pub struct ClientAssertion {
    pub certificate: Arc<ClientCertificate>,
    /// The assertion's `aud` template, for providers that want something else than the token
    /// endpoint the request goes to (the default, and what Microsoft requires).
    pub audience: Option<String>,
}

impl OAuthClient {
    pub fn new(http: reqwest::Client, config: OAuthClientConfig) -> Self {
        let credentials = Credentials::single(
            ClientCredential::Secret(config.client_secret.clone()),
            "client_secret",
        );
        OAuthClient {
            http,
            config,
            timeout: DEFAULT_TOKEN_TIMEOUT,
            credentials: Arc::new(credentials),
            assertion_audience: None,
        }
    }

    /// Authenticates token requests with a certificate (`private_key_jwt`) instead of the
    /// client secret, which is then never sent.
    pub fn with_client_assertion(self, assertion: ClientAssertion) -> Self {
        let credentials = Credentials::single(
            ClientCredential::Certificate(assertion.certificate),
            "client_certificate",
        );
        self.with_credentials(credentials, assertion.audience)
    }

    /// Authenticates token requests with `credentials` instead of the configured secret: the
    /// preferred one, and the others when the provider refuses it (`credentials.rs`).
    /// `assertion_audience` is the `aud` template of certificates' assertions, when it is not
    /// the token endpoint the request goes to.
    pub fn with_credentials(
        mut self,
        credentials: Credentials,
        assertion_audience: Option<String>,
    ) -> Self {
        self.credentials = Arc::new(credentials);
        self.assertion_audience = assertion_audience;
        self
    }

    /// The credentials token requests authenticate with, in the order they are tried.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn config(&self) -> &OAuthClientConfig {
        &self.config
    }

    /// Builds the URL that starts a connection: the spec's `authorization_params`, then
    /// `extra_params` (e.g. `login_hint`), scopes joined with the spec's separator, a fresh
    /// `state` and, when the spec says so, a PKCE S256 challenge.
    pub fn authorization_request(
        &self,
        connection_config: &BTreeMap<String, String>,
        extra_params: &[(String, String)],
    ) -> Result<AuthorizationRequest, OAuthError> {
        let spec = &self.config.spec;
        let auth_url = self.endpoint(
            "authorization_url",
            self.config
                .authorization_url
                .as_deref()
                .unwrap_or(&spec.authorization_url),
            connection_config,
        )?;
        let client = self.oauth2_client(Some(AuthUrl::from_url(auth_url)), None, None)?;
        let state = CsrfToken::new_random_len(32);
        let mut request = client
            .authorize_url(|| state.clone())
            .map_err(|e| misconfigured(format!("authorization_url: {e}")))?;
        if let Some(scope) = self.joined_scopes(&self.config.scopes) {
            request = request.add_scope(scope);
        }
        let mut pkce_verifier = None;
        if spec.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            pkce_verifier = Some(SecretString::from(verifier.into_secret()));
        }
        for (name, value) in spec
            .authorization_params
            .iter()
            .chain(extra_params.iter().map(|(n, v)| (n, v)))
        {
            if RESERVED_AUTHORIZATION_PARAMS.contains(&name.as_str()) {
                return Err(misconfigured(format!(
                    "authorization parameter `{name}` is set by the engine and cannot be overridden"
                )));
            }
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        let (url, _) = request.url();
        Ok(AuthorizationRequest {
            url: url.into(),
            state: state.into_secret(),
            pkce_verifier,
        })
    }

    /// Redeems an authorization code. Never call it twice with the same code.
    pub async fn exchange_code(
        &self,
        connection_config: &BTreeMap<String, String>,
        code: &SecretString,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet, OAuthError> {
        // A refused client credential is refused before the code is looked at, so the code
        // is still unused when another credential is tried.
        self.credentials
            .with_fallback(|credential| {
                self.exchange_code_with(credential, connection_config, code, pkce_verifier)
            })
            .await
    }

    async fn exchange_code_with(
        &self,
        credential: Option<&NamedCredential>,
        connection_config: &BTreeMap<String, String>,
        code: &SecretString,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet, OAuthError> {
        let stage = Stage::CodeExchange;
        let (client, assertion) = self.token_client(connection_config, credential)?;
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.expose_secret().to_owned()))
            .map_err(|e| misconfigured(format!("token_url: {e}")))?;
        if let Some(assertion) = &assertion {
            request = request
                .add_extra_param("client_assertion_type", CLIENT_ASSERTION_TYPE)
                .add_extra_param("client_assertion", assertion.expose_secret().to_owned());
        }
        if let Some(verifier) = pkce_verifier {
            request = request
                .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()));
        }
        // The crate has no scope setter for this grant; Microsoft accepts (and the spec
        // allows) the scope here, which picks the resource the access token is for.
        let scopes = &self.config.scopes;
        if let Some(scope) = self.joined_scopes(scopes) {
            request = request.add_extra_param("scope", scope.to_string());
        }
        let recorder = Recorder::new(&self.http);
        let outcome = tokio::time::timeout(self.timeout, request.request_async(&recorder)).await;
        let token = recorder.finish(stage, self.timeout, outcome)?;
        Ok(token.into_token_set(Utc::now(), scopes))
    }

    /// Redeems a refresh token, optionally asking for `scopes` instead of the configured ones.
    /// Keep the old refresh token when the answer has none.
    pub async fn refresh(
        &self,
        connection_config: &BTreeMap<String, String>,
        refresh_token: &SecretString,
        scopes: Option<&[String]>,
    ) -> Result<TokenSet, OAuthError> {
        self.credentials
            .with_fallback(|credential| {
                self.refresh_with(credential, connection_config, refresh_token, scopes)
            })
            .await
    }

    async fn refresh_with(
        &self,
        credential: Option<&NamedCredential>,
        connection_config: &BTreeMap<String, String>,
        refresh_token: &SecretString,
        scopes: Option<&[String]>,
    ) -> Result<TokenSet, OAuthError> {
        let stage = Stage::Refresh;
        let (client, assertion) = self.token_client(connection_config, credential)?;
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let mut request = client
            .exchange_refresh_token(&token)
            .map_err(|e| misconfigured(format!("token_url: {e}")))?;
        if let Some(assertion) = &assertion {
            request = request
                .add_extra_param("client_assertion_type", CLIENT_ASSERTION_TYPE)
                .add_extra_param("client_assertion", assertion.expose_secret().to_owned());
        }
        let scopes = scopes.unwrap_or(&self.config.scopes);
        if let Some(scope) = self.joined_scopes(scopes) {
            request = request.add_scope(scope);
        }
        let recorder = Recorder::new(&self.http);
        let outcome = tokio::time::timeout(self.timeout, request.request_async(&recorder)).await;
        let token = recorder.finish(stage, self.timeout, outcome)?;
        Ok(token.into_token_set(Utc::now(), scopes))
    }

    /// The URL where an administrator grants consent for the whole organisation. The state is
    /// the caller's, so it can be matched like an authorization state.
    pub fn admin_consent_url(
        &self,
        connection_config: &BTreeMap<String, String>,
        state: &str,
    ) -> Result<String, OAuthError> {
        let template = self
            .config
            .admin_consent_url
            .as_deref()
            .or(self.config.spec.admin_consent_url.as_deref())
            .ok_or_else(|| misconfigured("the provider has no admin consent URL".to_owned()))?;
        let mut url = self.endpoint("admin_consent_url", template, connection_config)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("client_id", &self.config.client_id);
            if let Some(scope) = self.joined_scopes(&self.config.scopes) {
                query.append_pair("scope", &scope);
            }
            query.append_pair("redirect_uri", &self.config.redirect_uri);
            query.append_pair("state", state);
        }
        Ok(url.into())
    }

    fn joined_scopes(&self, scopes: &[String]) -> Option<Scope> {
        (!scopes.is_empty()).then(|| Scope::new(scopes.join(&self.config.spec.scope_separator)))
    }

    /// The client for one token request with `credential`, and the client assertion it
    /// carries when that is a certificate: signed for this request alone, addressed to the
    /// token endpoint it goes to (the connection's tenant filled in).
    fn token_client(
        &self,
        connection_config: &BTreeMap<String, String>,
        credential: Option<&NamedCredential>,
    ) -> Result<(Oauth2Client, Option<SecretString>), OAuthError> {
        let token_url = self.endpoint(
            "token_url",
            self.config
                .token_url
                .as_deref()
                .unwrap_or(&self.config.spec.token_url),
            connection_config,
        )?;
        let credential = credential.map(|c| &c.credential);
        let assertion = match credential {
            Some(ClientCredential::Certificate(certificate)) => {
                let audience = match &self.assertion_audience {
                    Some(template) => fill_template(template, connection_config).map_err(|e| {
                        misconfigured(format!(
                            "client_assertion_audience: {e} — check the connection config"
                        ))
                    })?,
                    None => token_url.as_str().to_owned(),
                };
                let signed = certificate
                    .assertion(&self.config.client_id, &audience, Utc::now())
                    .map_err(misconfigured)?;
                Some(signed)
            }
            _ if self.config.spec.client_authentication == ClientAuthentication::PrivateKeyJwt => {
                return Err(misconfigured(
                    "the provider authenticates clients with private_key_jwt — set client_certificate and client_private_key".to_owned(),
                ));
            }
            _ => None,
        };
        let client = self.oauth2_client(None, Some(TokenUrl::from_url(token_url)), credential)?;
        Ok((client, assertion))
    }

    /// The `oauth2` crate's client, authenticating with `credential` (none for the
    /// authorization URL, which carries no credential).
    fn oauth2_client(
        &self,
        auth_url: Option<AuthUrl>,
        token_url: Option<TokenUrl>,
        credential: Option<&ClientCredential>,
    ) -> Result<Oauth2Client, OAuthError> {
        let redirect = RedirectUrl::new(self.config.redirect_uri.clone()).map_err(|e| {
            misconfigured(format!("redirect_uri `{}`: {e}", self.config.redirect_uri))
        })?;
        let client = oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
            .set_redirect_uri(redirect)
            .set_auth_uri_option(auth_url)
            .set_token_uri_option(token_url);
        // With a certificate (or nothing), no secret is set: the crate then sends `client_id`
        // in the body and the assertion goes with it.
        let Some(ClientCredential::Secret(secret)) = credential else {
            return Ok(client.set_auth_type(AuthType::RequestBody));
        };
        Ok(client
            .set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()))
            .set_auth_type(match self.config.spec.client_authentication {
                ClientAuthentication::Basic => AuthType::BasicAuth,
                ClientAuthentication::Form | ClientAuthentication::PrivateKeyJwt => {
                    AuthType::RequestBody
                }
            }))
    }

    /// Fills a URL template and checks it is `https`, or `http` on a loopback address (the
    /// emulator); tokens and secrets never travel in clear text to anywhere else.
    fn endpoint(
        &self,
        name: &str,
        template: &str,
        connection_config: &BTreeMap<String, String>,
    ) -> Result<Url, OAuthError> {
        let filled = fill_template(template, connection_config)
            .map_err(|e| misconfigured(format!("{name}: {e} — check the connection config")))?;
        let url = Url::parse(&filled)
            .map_err(|e| misconfigured(format!("{name} `{filled}` is not a URL: {e}")))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(domain)) => domain == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => Ok(url),
            "http" if loopback => Ok(url),
            _ => Err(misconfigured(format!(
                "{name} `{filled}` must use https (http only on a loopback address)"
            ))),
        }
    }
}

/// The `oauth2` crate's HTTP client: the shared reqwest client, plus a note of the status and,
/// for failures, the body. The crate's own errors drop the status, and classifying a 503 or a
/// 401 needs it.
struct Recorder {
    /// Owned (a cheap handle on the shared pool), so no lifetime but the call's own is involved
    /// and the token request futures stay `Send` for the host.
    http: reqwest::Client,
    answer: Mutex<Option<(u16, Vec<u8>)>>,
}

impl Recorder {
    fn new(http: &reqwest::Client) -> Self {
        Recorder {
            http: http.clone(),
            answer: Mutex::new(None),
        }
    }

    /// The `oauth2` crate's reqwest client, but with the answer read up to
    /// [`MAX_TOKEN_ANSWER`]: the crate's own reads a body of any size into memory.
    async fn exchange(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, HttpClientError<reqwest::Error>> {
        let request = reqwest::Request::try_from(request).map_err(Box::new)?;
        let response = self.http.execute(request).await.map_err(Box::new)?;
        let mut answer = oauth2::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let body = read_limited(response, MAX_TOKEN_ANSWER)
            .await
            .map_err(|e| match e {
                BodyError::Read(e) => HttpClientError::Reqwest(Box::new(e)),
                too_large @ BodyError::TooLarge { .. } => {
                    HttpClientError::Other(too_large.to_string())
                }
            })?;
        answer.body(body).map_err(HttpClientError::Http)
    }

    /// Turns the outcome of a token request into tokens or a classified error.
    fn finish(
        self,
        stage: Stage,
        timeout: Duration,
        outcome: Result<Result<WireToken, TokenRequestError>, tokio::time::error::Elapsed>,
    ) -> Result<WireToken, OAuthError> {
        let transient = |fix: String| OAuthError::local(OAuthErrorKind::Transient, stage, fix);
        let failure = match outcome {
            Ok(Ok(token)) => return Ok(token),
            Err(_) => {
                return Err(transient(format!(
                    "the token endpoint did not answer within {}s — retry later",
                    timeout.as_secs()
                )));
            }
            Ok(Err(failure)) => failure,
        };
        // `Other` is only ever an answer refused for its size: a token endpoint that answers
        // with megabytes is not one.
        if let RequestTokenError::Request(HttpClientError::Other(why)) = &failure {
            return Err(OAuthError::local(
                OAuthErrorKind::IntegrationMisconfigured,
                stage,
                format!("the token endpoint's answer was refused: {why} — check token_url"),
            ));
        }
        if let RequestTokenError::Request(e) = &failure {
            let why = match e {
                HttpClientError::Reqwest(e) => describe(e),
                other => other.to_string(),
            };
            return Err(transient(format!(
                "the token endpoint could not be reached ({why}) — retry later"
            )));
        }
        let answer = self
            .answer
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        match answer {
            Some((status, body)) if status != 200 => {
                Err(classify(stage, Some(status), &ErrorFields::from_body(&body)))
            }
            // A 200 that is not a token: name only the field, since the body holds secrets. A
            // body cut off mid-way is a network hiccup; a complete one without a token means
            // the URL points at something that is not a token endpoint.
            Some((status, _)) => {
                let (kind, fix) = match &failure {
                    RequestTokenError::Parse(e, _) if e.inner().is_eof() => (
                        OAuthErrorKind::Transient,
                        "the token response was cut off — retry later".to_owned(),
                    ),
                    RequestTokenError::Parse(e, _) => (
                        OAuthErrorKind::IntegrationMisconfigured,
                        format!(
                            "the token endpoint's answer is not a token response (invalid at `{}`) — check token_url",
                            e.path()
                        ),
                    ),
                    other => (
                        OAuthErrorKind::IntegrationMisconfigured,
                        format!(
                            "the token endpoint's answer is not a token response ({other}) — check token_url"
                        ),
                    ),
                };
                Err(OAuthError::local(kind, stage, fix).with_status(status))
            }
            None => Err(OAuthError::local(
                OAuthErrorKind::IntegrationMisconfigured,
                stage,
                "the token request could not be built — check client_id, redirect_uri and token_url".to_owned(),
            )),
        }
    }
}

type TokenRequestError = RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>;

impl<'c> AsyncHttpClient<'c> for Recorder {
    type Error = HttpClientError<reqwest::Error>;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self.exchange(request).await?;
            let status = response.status().as_u16();
            let body = if status == 200 {
                Vec::new()
            } else {
                response.body().clone()
            };
            *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = Some((status, body));
            Ok(response)
        })
    }
}

fn misconfigured(fix: String) -> OAuthError {
    OAuthError::local(OAuthErrorKind::IntegrationMisconfigured, Stage::Local, fix)
}
