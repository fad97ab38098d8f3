//! The OAuth 2.0 engine: authorization URLs, callbacks, code exchange, refresh and admin
//! consent, with every failure classified into what the host should do about it.
//!
//! Built on the `oauth2` crate and the process's one `reqwest` client. It matches Microsoft's
//! identity platform (AADSTS codes, admin consent, lenient token responses) while staying
//! generic: everything provider-specific comes from the spec's [`OAuth2Spec`](crate::spec::OAuth2Spec).

mod callback;
mod client;
mod error;
mod token;

pub use callback::{AdminConsent, CallbackCode, parse_admin_consent_callback, parse_callback};
pub use client::{AuthorizationRequest, DEFAULT_TOKEN_TIMEOUT, OAuthClient, OAuthClientConfig};
pub use error::{ErrorFields, OAuthError, OAuthErrorKind, Stage, classify};
pub use token::TokenSet;
