//! The OAuth 2.0 engine: authorization URLs, callbacks, code exchange, refresh and admin
//! consent, with every failure classified into what the host should do about it.
//!
//! Built on the `oauth2` crate and the process's one `reqwest` client. It matches Microsoft's
//! identity platform (AADSTS codes, admin consent, lenient token responses) while staying
//! generic: everything provider-specific comes from the spec's [`OAuth2Spec`](crate::spec::OAuth2Spec).

mod callback;
mod certificate;
mod client;
mod credentials;
mod error;
mod token;

pub use callback::{AdminConsent, CallbackCode, parse_admin_consent_callback, parse_callback};
pub use certificate::{
    ASSERTION_LIFETIME, AssertionAlgorithm, CLIENT_ASSERTION_TYPE, CertificateError,
    CertificateInfo, ClientCertificate, PrivateKey,
};
pub use client::{
    AuthorizationRequest, ClientAssertion, DEFAULT_TOKEN_TIMEOUT, OAuthClient, OAuthClientConfig,
};
pub use credentials::{ClientCredential, Credentials, NamedCredential};
pub use error::{ErrorFields, OAuthError, OAuthErrorKind, Stage, classify};
pub use token::TokenSet;
