//! HTTP execution shared by the host and the test kit: URL resolution that refuses path
//! escapes, bodies read up to a limit, the spec's retry rules, where credentials go
//! ([`Credential`]), and [`ApiClient`], which sends a provider's requests.

mod body;
mod client;
mod credential;
mod retry;
mod url;

pub use body::MAX_ANSWER_SIZE;
pub(crate) use body::{BodyError, read_limited};
pub(crate) use client::describe;
pub use client::{ApiClient, DEFAULT_REQUEST_TIMEOUT, api_base_url, http_client};
pub use credential::{Credential, CredentialError};
pub use retry::RetryPolicy;
pub use url::{UrlRefused, resolve_url};
