//! Connections and the OAuth flows that make them: the data types the connection methods of
//! [`Store`](crate::Store) take and return.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;

use crate::{StoreError, StoreResult};

/// How callers name a connection: the integration and the caller-chosen connection id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionKey {
    pub integration: String,
    pub connection_id: String,
}

impl ConnectionKey {
    pub fn new(integration: impl Into<String>, connection_id: impl Into<String>) -> Self {
        ConnectionKey {
            integration: integration.into(),
            connection_id: connection_id.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Ok,
    /// The credentials stopped working for good; only a person reconnecting fixes it.
    NeedsReconnect,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Ok => "ok",
            ConnectionStatus::NeedsReconnect => "needs_reconnect",
        }
    }

    pub(crate) fn parse(text: &str) -> StoreResult<Self> {
        match text {
            "ok" => Ok(ConnectionStatus::Ok),
            "needs_reconnect" => Ok(ConnectionStatus::NeedsReconnect),
            other => Err(StoreError::Corrupt(format!(
                "unknown connection status `{other}`"
            ))),
        }
    }
}

/// A connection's credentials, decrypted.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The OAuth access token, or an API-key connection's key (which has nothing else here):
    /// either way the secret sent with each request, sealed and rotated alike.
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Connection {
    /// Row identity: never reused, bound into the ciphertexts.
    pub id: String,
    pub key: ConnectionKey,
    pub provider: String,
    pub connection_config: BTreeMap<String, String>,
    /// What the provider's account endpoint said about the connected account.
    pub account: Option<Value>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub tokens: Tokens,
    /// Bumped by every change of credentials.
    pub token_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A connection made (or made again) by a completed OAuth flow.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub key: ConnectionKey,
    pub provider: String,
    pub connection_config: BTreeMap<String, String>,
    pub account: Option<Value>,
    pub tokens: Tokens,
}

/// The result of a token refresh. Absent refresh and id tokens keep the stored ones, because
/// providers may not send a new refresh token on every refresh.
#[derive(Debug, Clone)]
pub struct TokenUpdate {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

/// What taking a connection's refresh lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshLease {
    /// Another owner holds it and it has not expired (or there is no such connection).
    NotTaken,
    /// Taken: it was free, or already the owner's.
    Taken,
    /// Taken over from another owner whose lease expired without being released: that owner
    /// stopped in the middle of a refresh (it crashed, or stalled for the whole lease), maybe
    /// after the provider issued new tokens and before they were stored. With a provider that
    /// revokes a refresh token once it is used, the stored one may then be dead.
    TakenOver,
}

impl RefreshLease {
    pub fn taken(self) -> bool {
        self != RefreshLease::NotTaken
    }
}

/// What a connect session token allows: starting one OAuth flow for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSession {
    pub integration: String,
    pub connection_id: String,
    pub connection_config: BTreeMap<String, String>,
    pub return_url: Option<String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Connect,
    AdminConsent,
}

impl Flow {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Flow::Connect => "connect",
            Flow::AdminConsent => "admin_consent",
        }
    }

    pub(crate) fn parse(text: &str) -> StoreResult<Self> {
        match text {
            "connect" => Ok(Flow::Connect),
            "admin_consent" => Ok(Flow::AdminConsent),
            other => Err(StoreError::Corrupt(format!("unknown OAuth flow `{other}`"))),
        }
    }
}

/// An OAuth flow in progress, keyed by the hash of its `state` parameter.
#[derive(Debug, Clone)]
pub struct OAuthState {
    pub flow: Flow,
    pub integration: String,
    pub connection_id: String,
    pub connection_config: BTreeMap<String, String>,
    pub return_url: Option<String>,
    pub pkce_verifier: Option<SecretString>,
    /// Hash of the cookie that binds the flow to the browser that started it.
    pub browser_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// What `keys rotate` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rows whose secrets were re-encrypted under the active key.
    pub reencrypted: u64,
    /// Rows already under the active key.
    pub current: u64,
}
