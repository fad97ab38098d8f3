//! The one error type that crosses between provider code and the host.

use serde::{Deserialize, Serialize};

/// What went wrong in provider code or in a context call it made.
///
/// Owned and serialisable so it can cross a dynamic-library boundary unchanged. Messages never
/// contain tokens or secrets: the host builds them from statuses and provider error bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ErrorKind {
    /// The provider answered with an error status after the host's retries.
    Http { status: u16 },
    /// The request never got an answer: connection refused or dropped, timeout.
    Transport,
    /// The connection's credentials no longer work; a person has to reconnect.
    Auth,
    /// The caller's input (an action's input, a request) is not acceptable.
    InvalidInput,
    /// No such sync, action or pagination preset, or no such thing at the provider as the
    /// caller named (a user, say).
    NotFound,
    /// A response could not be understood (malformed JSON, missing field).
    Decode,
    /// Pagination went wrong, e.g. a next link that was already followed.
    Pagination,
    /// The host could not store records, checkpoints or logs.
    Storage,
    /// A bug: a panic, a broken invariant.
    Internal,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decode, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The HTTP status, when the provider answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::Http { status } => Some(status),
            _ => None,
        }
    }
}
