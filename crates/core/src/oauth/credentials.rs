//! The client credentials an integration authenticates with at the token endpoint: one secret
//! or certificate usually, two (or a few) while one is rolled over to the next.
//!
//! Entra lets an app hold several secrets and certificates at once, precisely so that a new one
//! can be deployed before the old one expires. The engine prefers the valid credential that
//! expires last; when the provider refuses the credential itself (wrong, expired, unknown — see
//! [`OAuthError::rejects_client_credential`]) it tries each other one once, and the one that
//! worked is preferred from then on, so a secret expiring mid-run costs one extra token request
//! and no failed request. Credentials are named in logs by their configuration key and expiry,
//! never by their value.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;
use secrecy::SecretString;

use super::certificate::ClientCertificate;
use super::error::OAuthError;

/// What proves the client's identity on a token request.
#[derive(Clone)]
pub enum ClientCredential {
    /// Sent as the spec's client authentication says (Basic or in the form).
    Secret(SecretString),
    /// A `private_key_jwt` client assertion signed for each request; no secret is sent.
    Certificate(Arc<ClientCertificate>),
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Secret(_) => f.write_str("Secret([redacted])"),
            ClientCredential::Certificate(certificate) => {
                f.debug_tuple("Certificate").field(certificate).finish()
            }
        }
    }
}

/// A credential with what names it in logs and messages.
#[derive(Debug, Clone)]
pub struct NamedCredential {
    pub credential: ClientCredential,
    /// Its key in the configuration, e.g. `integrations.microsoft.credentials[1]`.
    pub name: String,
    /// Its last valid day, when known: a secret's configured date, a certificate's end date.
    pub expires: Option<NaiveDate>,
}

impl NamedCredential {
    /// How logs name it: `integrations.microsoft.credentials[1], expires 2027-05-01`.
    pub fn label(&self) -> String {
        match self.expires {
            Some(date) => format!("{}, expires {date}", self.name),
            None => format!("{}, no expiry configured", self.name),
        }
    }

    fn expired(&self, today: NaiveDate) -> bool {
        self.expires.is_some_and(|date| date < today)
    }
}

/// The credentials of one integration, in the order they are tried.
#[derive(Debug)]
pub struct Credentials {
    /// The valid ones first, latest expiry first (one without a date counts as the latest: it
    /// is not known to expire), then the expired ones; ties keep the configuration's order.
    list: Vec<NamedCredential>,
    /// The position in `list` tried first: the first, until another worked when it was refused.
    preferred: AtomicUsize,
}

impl Credentials {
    /// Orders `list` by validity on `today` and expiry. An empty list leaves token requests
    /// without a client credential (the provider then says so).
    pub fn new(mut list: Vec<NamedCredential>, today: NaiveDate) -> Self {
        list.sort_by_key(|c| {
            (
                c.expired(today),
                std::cmp::Reverse(c.expires.unwrap_or(NaiveDate::MAX)),
            )
        });
        Credentials {
            list,
            preferred: AtomicUsize::new(0),
        }
    }

    /// One credential, named by its key.
    pub fn single(credential: ClientCredential, name: impl Into<String>) -> Self {
        Credentials {
            list: vec![NamedCredential {
                credential,
                name: name.into(),
                expires: None,
            }],
            preferred: AtomicUsize::new(0),
        }
    }

    /// The credential the next token request starts with.
    pub fn preferred(&self) -> Option<&NamedCredential> {
        self.list.get(self.preferred.load(Ordering::Relaxed))
    }

    /// Every credential, in the order of preference taken at construction.
    pub fn iter(&self) -> impl Iterator<Item = &NamedCredential> {
        self.list.iter()
    }

    /// Whether some credential is a certificate (the client then signs assertions).
    pub fn has_certificate(&self) -> bool {
        self.list
            .iter()
            .any(|c| matches!(c.credential, ClientCredential::Certificate(_)))
    }

    /// Runs one token request with the preferred credential and, when the provider refuses
    /// that credential, once with each other one, until one is accepted. The error returned
    /// when every credential is refused is the preferred one's; any other failure (a refused
    /// grant, a provider that is down) is returned as it is, since another credential would
    /// not change it.
    pub(crate) async fn with_fallback<'c, T, F, Fut>(&'c self, attempt: F) -> Result<T, OAuthError>
    where
        F: Fn(Option<&'c NamedCredential>) -> Fut,
        Fut: Future<Output = Result<T, OAuthError>>,
    {
        let first = self.preferred.load(Ordering::Relaxed);
        if self.list.is_empty() {
            return attempt(None).await;
        }
        let order = std::iter::once(first).chain((0..self.list.len()).filter(|&i| i != first));
        let mut refused: Option<OAuthError> = None;
        for (tries, index) in order.enumerate() {
            let credential = &self.list[index];
            match attempt(Some(credential)).await {
                Ok(value) => {
                    if tries > 0 {
                        self.switched(first, index);
                    }
                    return Ok(value);
                }
                Err(error) if error.rejects_client_credential() => {
                    tracing::warn!(
                        credential = %credential.label(),
                        error = %error,
                        "the provider refused the integration's client credential"
                    );
                    refused.get_or_insert(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(refused.expect("every credential was tried and refused"))
    }

    /// Another credential than the preferred one worked: it is preferred from now on (unless a
    /// concurrent request already moved on), and the operator learns which one it is.
    fn switched(&self, from: usize, to: usize) {
        let used = self.list[to].label();
        let refused = self.list[from].label();
        let moved = self
            .preferred
            .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if moved {
            tracing::warn!(
                credential = %used,
                refused = %refused,
                "the integration's client credential {refused} was refused; {used} worked and is used from now on"
            );
        } else {
            tracing::info!(credential = %used, refused = %refused, "the client credential {used} worked after {refused} was refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, expires: Option<&str>) -> NamedCredential {
        NamedCredential {
            credential: ClientCredential::Secret(SecretString::from(format!("value-of-{name}"))),
            name: name.to_owned(),
            expires: expires.map(|d| d.parse().unwrap()),
        }
    }

    fn names(credentials: &Credentials) -> Vec<&str> {
        credentials.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn the_valid_credential_that_expires_last_comes_first() {
        let today = "2027-03-01".parse().unwrap();
        let credentials = Credentials::new(
            vec![
                secret("old", Some("2027-04-01")),
                secret("expired", Some("2027-02-28")),
                secret("new", Some("2028-04-01")),
                secret("today", Some("2027-03-01")),
            ],
            today,
        );
        assert_eq!(names(&credentials), ["new", "old", "today", "expired"]);
        assert_eq!(credentials.preferred().unwrap().name, "new");

        // A credential without a date is not known to expire: it counts as the latest.
        let credentials = Credentials::new(
            vec![secret("dated", Some("2028-01-01")), secret("undated", None)],
            today,
        );
        assert_eq!(names(&credentials), ["undated", "dated"]);
        // Equal dates keep the configuration's order.
        let credentials = Credentials::new(
            vec![
                secret("a", Some("2028-01-01")),
                secret("b", Some("2028-01-01")),
            ],
            today,
        );
        assert_eq!(names(&credentials), ["a", "b"]);
    }

    #[test]
    fn labels_name_the_key_and_the_expiry_and_debug_never_the_value() {
        let credential = secret("integrations.ms.credentials[1]", Some("2027-05-01"));
        assert_eq!(
            credential.label(),
            "integrations.ms.credentials[1], expires 2027-05-01"
        );
        assert_eq!(
            secret("client_secret", None).label(),
            "client_secret, no expiry configured"
        );
        let debug = format!("{credential:?}");
        assert!(!debug.contains("value-of"), "{debug}");
    }
}
