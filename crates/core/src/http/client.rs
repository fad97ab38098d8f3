//! Executing a provider's [`HttpRequest`] against its API, with the spec's retries.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::body::{BodyError, MAX_ANSWER_SIZE, read_limited};
use super::credential::Credential;
use super::retry::RetryPolicy;
use super::url::resolve_url;
use crate::context::{HttpRequest, HttpResponse};
use crate::error::{ErrorKind, ProviderError};
use crate::spec::{ApiSpec, fill_template};

/// How long a request may take, body included, unless the caller sets another limit.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds the one HTTP client the process uses.
///
/// Redirects are never followed: an authorization server's redirect carries the code to be
/// read, and following an API redirect would send the bearer token wherever the provider (or an
/// attacker controlling a response) points. One client shares one connection pool.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("plugboard/", env!("CARGO_PKG_VERSION")))
        .build()
        // Building only fails when the TLS backend cannot initialise, which is a broken build.
        .expect("the HTTP client (rustls, no redirects) must build")
}

/// The API base URL of a spec, with connection config placeholders (such as a region) filled.
pub fn api_base_url(
    api: &ApiSpec,
    connection_config: &BTreeMap<String, String>,
) -> Result<Url, ProviderError> {
    let filled = fill_template(&api.base_url, connection_config)
        .map_err(|e| ProviderError::invalid_input(format!("api.base_url: {e}")))?;
    Url::parse(&filled)
        .map_err(|e| ProviderError::invalid_input(format!("api.base_url `{filled}`: {e}")))
}

/// Sends requests of one connection's provider API.
///
/// Error statuses are answers, not errors: after the retries for a retryable status are
/// exhausted the last response is returned, so the caller sees the status and body (use
/// [`RetryPolicy::retries_status`] to tell exhaustion apart). Only failures without an answer
/// become [`ErrorKind::Transport`] errors, and so does an answer larger than
/// [`MAX_ANSWER_SIZE`], which is read no further and not asked for again (the provider would
/// only send it again). The bearer token is marked sensitive and never appears in an error or
/// a log line.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: Url,
    default_headers: Vec<(String, String)>,
    retry: RetryPolicy,
    timeout: Duration,
}

impl ApiClient {
    /// A client for `api`, sending to `base_url` (normally [`api_base_url`]; tests pass the
    /// emulator's address).
    pub fn new(http: reqwest::Client, api: &ApiSpec, base_url: Url) -> Self {
        ApiClient {
            http,
            base_url,
            default_headers: api
                .default_headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
            retry: RetryPolicy::from_spec(&api.retry),
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Limits each attempt, body included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Resolves, sends and reads `request` with an OAuth bearer token, retrying as the policy
    /// says.
    pub async fn send(
        &self,
        request: &HttpRequest,
        bearer: Option<&str>,
    ) -> Result<HttpResponse, ProviderError> {
        self.send_with(request, bearer.map(Credential::Bearer))
            .await
    }

    /// Like [`send`](Self::send), with any kind of credential (an API key goes where the
    /// spec says).
    pub async fn send_with(
        &self,
        request: &HttpRequest,
        credential: Option<Credential<'_>>,
    ) -> Result<HttpResponse, ProviderError> {
        let mut url = resolve_url(&self.base_url, &request.url)
            .map_err(|e| ProviderError::invalid_input(e.to_string()))?;
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            ProviderError::invalid_input(format!("`{}` is not an HTTP method", request.method))
        })?;
        let headers = self.headers(request, credential, &mut url)?;
        // Named in errors and logs: the path only, since query values may hold personal data.
        let target = format!("{method} {}", url.path());

        let mut attempt = 1;
        loop {
            let mut builder = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .timeout(self.timeout);
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            match Self::exchange(builder).await {
                Ok(response) => {
                    match self
                        .retry
                        .delay_after_status(attempt, response.status, &response.headers)
                    {
                        Some(delay) => {
                            tracing::warn!(%target, status = response.status, attempt, ?delay, "retrying");
                            tokio::time::sleep(delay).await;
                        }
                        None => return Ok(response),
                    }
                }
                Err(failure) => {
                    let message = format!("{target}: {}", failure.message);
                    let retry = if failure.repeatable {
                        self.retry.delay_after_transport_error(
                            attempt,
                            method.as_str(),
                            failure.connect,
                        )
                    } else {
                        None
                    };
                    match retry {
                        Some(delay) => {
                            tracing::warn!(error = %message, attempt, ?delay, "retrying");
                            tokio::time::sleep(delay).await;
                        }
                        None => {
                            return Err(ProviderError::new(
                                ErrorKind::Transport,
                                format!("{message} (after {attempt} attempt(s))"),
                            ));
                        }
                    }
                }
            }
            attempt += 1;
        }
    }

    /// Default headers, then the request's own (which win), then the credential (which may
    /// also add a query parameter to `url`).
    fn headers(
        &self,
        request: &HttpRequest,
        credential: Option<Credential<'_>>,
        url: &mut Url,
    ) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
        for (name, value) in self.default_headers.iter().chain(&request.headers) {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ProviderError::invalid_input(format!("`{name}` is not a valid header name"))
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                ProviderError::invalid_input(format!("header `{name}` has an invalid value"))
            })?;
            headers.insert(name, value);
        }
        if let Some(credential) = credential {
            credential
                .apply(&mut headers, url)
                .map_err(|e| ProviderError::new(ErrorKind::Auth, e.to_string()))?;
        }
        Ok(headers)
    }

    async fn exchange(builder: reqwest::RequestBuilder) -> Result<HttpResponse, TransportFailure> {
        let response = builder.send().await.map_err(TransportFailure::from)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = read_limited(response, MAX_ANSWER_SIZE)
            .await
            .map_err(|e| TransportFailure {
                connect: false,
                repeatable: !matches!(e, BodyError::TooLarge { .. }),
                message: format!("reading the body of the {status} answer failed: {e}"),
            })?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

struct TransportFailure {
    /// The connection was never established, so the server cannot have seen the request.
    connect: bool,
    /// Asking again could get an answer: false when the answer came and was refused.
    repeatable: bool,
    message: String,
}

impl From<reqwest::Error> for TransportFailure {
    fn from(e: reqwest::Error) -> Self {
        TransportFailure {
            connect: e.is_connect(),
            repeatable: true,
            message: describe(&e),
        }
    }
}

/// A reqwest error and its causes on one line, without the URL (its query may hold personal
/// data; the caller names the method and path itself).
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the body could not be read"
    } else {
        "the request failed"
    };
    let mut text = kind.to_owned();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::AUTHORIZATION;

    #[test]
    fn request_headers_override_defaults_and_the_bearer_overrides_both() {
        let api: ApiSpec = toml::from_str(
            "base_url = \"https://graph.example\"\n[default_headers]\nConsistencyLevel = \"eventual\"\nPrefer = \"a\"",
        )
        .unwrap();
        let client = ApiClient::new(
            http_client(),
            &api,
            api_base_url(&api, &BTreeMap::new()).unwrap(),
        );
        let request = HttpRequest::get("/v1.0/me")
            .header("prefer", "b")
            .header("Authorization", "Basic mine");
        let mut url = client.base_url().clone();
        let headers = client
            .headers(&request, Some(Credential::Bearer("TOKEN")), &mut url)
            .unwrap();
        assert_eq!(headers["consistencylevel"], "eventual");
        assert_eq!(headers["prefer"], "b");
        assert_eq!(headers[AUTHORIZATION], "Bearer TOKEN");
        assert!(headers[AUTHORIZATION].is_sensitive());
        assert!(!format!("{headers:?}").contains("TOKEN"));

        let without = client.headers(&request, None, &mut url).unwrap();
        assert_eq!(without[AUTHORIZATION], "Basic mine");
        assert!(
            client
                .headers(
                    &HttpRequest::get("/").header("bad name", "x"),
                    None,
                    &mut url
                )
                .is_err()
        );
    }

    #[test]
    fn fills_the_base_url_template() {
        let api: ApiSpec =
            toml::from_str("base_url = \"https://{region}.api.example/v2\"").unwrap();
        let region = BTreeMap::from([("region".to_owned(), "eu".to_owned())]);
        assert_eq!(
            api_base_url(&api, &region).unwrap().as_str(),
            "https://eu.api.example/v2"
        );
        let evil = BTreeMap::from([("region".to_owned(), "evil.example/x?".to_owned())]);
        assert_eq!(
            api_base_url(&api, &evil).unwrap_err().kind,
            ErrorKind::InvalidInput
        );
    }
}
