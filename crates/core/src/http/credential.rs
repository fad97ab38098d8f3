//! Where a connection's credential goes on a request to the provider's API.
//!
//! OAuth connections send `Authorization: Bearer <token>`; API-key connections put the key
//! where the spec's `[auth]` (mode `api_key`) says: a header, optionally formatted
//! (`header_format = "Token {api_key}"`), and/or a query parameter. The proxy and
//! [`ApiClient`](super::ApiClient) both apply credentials through [`Credential::apply`], so the
//! two can never place a key differently.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::spec::ApiKeySpec;

/// A connection's secret and where it goes.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// An OAuth access token, sent as `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// A static API key, placed as `spec` says.
    ApiKey { spec: &'a ApiKeySpec, key: &'a str },
}

/// Deliberately without the secret.
impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Bearer(_) => f.write_str("Credential::Bearer(..)"),
            Credential::ApiKey { spec, .. } => f
                .debug_struct("Credential::ApiKey")
                .field("spec", spec)
                .finish_non_exhaustive(),
        }
    }
}

/// Why a credential could not be placed. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the stored {what} contains characters not allowed in a header")]
    InvalidHeaderValue { what: &'static str },
    #[error("auth.header `{0}` is not a valid header name")]
    InvalidHeaderName(String),
}

impl Credential<'_> {
    /// Sets the credential on an outgoing request: the header it goes in replaces any the
    /// caller set (a caller must not choose the key), and so does its query parameter. Header
    /// values are marked sensitive so they never appear in `Debug` output.
    pub fn apply(&self, headers: &mut HeaderMap, url: &mut Url) -> Result<(), CredentialError> {
        self.apply_to_headers(headers)?;
        if let Some(with_key) = self.url_with_key(url) {
            *url = with_key;
        }
        Ok(())
    }

    /// The header half of [`apply`](Self::apply), for a caller that sends the same URL again
    /// and again and asks [`url_with_key`](Self::url_with_key) whether it changes.
    pub fn apply_to_headers(&self, headers: &mut HeaderMap) -> Result<(), CredentialError> {
        match *self {
            Credential::Bearer(token) => {
                // Made at its exact length: an access token is a JWT of a kilobyte or more,
                // which `format!` would copy again as it grew, on every proxied request.
                let value = sensitive(["Bearer ", token].concat(), "access token")?;
                headers.insert(AUTHORIZATION, value);
            }
            Credential::ApiKey { spec, key } => {
                if let Some(name) = &spec.header {
                    let name = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| CredentialError::InvalidHeaderName(name.clone()))?;
                    let text = match &spec.header_format {
                        Some(format) => format.replace("{api_key}", key),
                        None => key.to_owned(),
                    };
                    headers.insert(name, sensitive(text, "API key")?);
                }
            }
        }
        Ok(())
    }

    /// `url` with the credential's query parameter, when the credential goes in the query.
    pub fn url_with_key(&self, url: &Url) -> Option<Url> {
        let Credential::ApiKey { spec, key } = *self else {
            return None;
        };
        let param = spec.query_param.as_ref()?;
        let mut url = url.clone();
        set_query_param(&mut url, param, key);
        Some(url)
    }
}

/// `text` as a header value marked sensitive; taken by value so its bytes become the value's
/// without a copy.
fn sensitive(text: String, what: &'static str) -> Result<HeaderValue, CredentialError> {
    let mut value =
        HeaderValue::try_from(text).map_err(|_| CredentialError::InvalidHeaderValue { what })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Replaces every `param` in the query with one carrying `value`, keeping the other pairs in
/// order.
fn set_query_param(url: &mut Url, param: &str, value: &str) {
    let others: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| name != param)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(others)
        .append_pair(param, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(header: Option<&str>, format: Option<&str>, query: Option<&str>) -> ApiKeySpec {
        ApiKeySpec {
            header: header.map(str::to_owned),
            header_format: format.map(str::to_owned),
            query_param: query.map(str::to_owned),
        }
    }

    fn applied(credential: Credential<'_>, url: &str) -> (HeaderMap, Url) {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("callers-own"));
        let mut url = Url::parse(url).unwrap();
        credential.apply(&mut headers, &mut url).unwrap();
        (headers, url)
    }

    #[test]
    fn a_bearer_token_goes_in_authorization_and_stays_out_of_debug_output() {
        let (headers, _) = applied(Credential::Bearer("T0KEN"), "https://api.example/x");
        assert_eq!(headers[AUTHORIZATION], "Bearer T0KEN");
        assert!(!format!("{headers:?}").contains("T0KEN"));
        assert!(!format!("{:?}", Credential::Bearer("T0KEN")).contains("T0KEN"));
    }

    #[test]
    fn an_api_key_goes_where_the_spec_says_replacing_the_callers() {
        let plain = spec(Some("X-Api-Key"), None, None);
        let (headers, url) = applied(
            Credential::ApiKey {
                spec: &plain,
                key: "k-1",
            },
            "https://api.example/x?a=1",
        );
        assert_eq!(headers["x-api-key"], "k-1");
        assert!(headers["x-api-key"].is_sensitive());
        assert_eq!(url.query(), Some("a=1"));

        let formatted = spec(Some("Authorization"), Some("Token token={api_key}"), None);
        let (headers, _) = applied(
            Credential::ApiKey {
                spec: &formatted,
                key: "k-2",
            },
            "https://api.example/x",
        );
        assert_eq!(headers[AUTHORIZATION], "Token token=k-2");

        let query = spec(None, None, Some("api_key"));
        let (headers, url) = applied(
            Credential::ApiKey {
                spec: &query,
                key: "k 3&x",
            },
            "https://api.example/x?api_key=forged&b=2&api_key=again",
        );
        assert_eq!(
            headers["x-api-key"], "callers-own",
            "untouched: not the key's header"
        );
        assert_eq!(url.query(), Some("b=2&api_key=k+3%26x"));
    }

    #[test]
    fn unusable_keys_and_header_names_are_errors_without_the_secret() {
        let plain = spec(Some("X-Api-Key"), None, None);
        let mut url = Url::parse("https://api.example/").unwrap();
        let error = Credential::ApiKey {
            spec: &plain,
            key: "line\nbreak-SECRET",
        }
        .apply(&mut HeaderMap::new(), &mut url)
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the stored API key contains characters not allowed in a header"
        );
        let bad_name = spec(Some("X Api Key"), None, None);
        let error = Credential::ApiKey {
            spec: &bad_name,
            key: "k",
        }
        .apply(&mut HeaderMap::new(), &mut url)
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "auth.header `X Api Key` is not a valid header name"
        );
    }
}
