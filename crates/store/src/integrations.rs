//! What the store keeps about integrations themselves rather than their connections: which
//! credential expiry notices were sent, and whether the integration's own client credential is
//! refused. Both are decided by the database, so replicas announce each notice and each change
//! of state once between them.

use chrono::{DateTime, NaiveDate, Utc};

/// One `integration.credential_expiring` notice: a credential of an integration, named by its
/// configuration key and expiry (a replaced credential at the same key is another one), and
/// how many days ahead of that expiry it is announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialNotice {
    pub integration: String,
    /// The credential's configuration key, e.g. `integrations.microsoft.credentials[1]`.
    pub credential: String,
    pub expires_on: NaiveDate,
    /// 30, 7 or 1: the threshold crossed.
    pub days_ahead: i64,
}

/// An integration whose client credential the provider refuses: since when, and why (the
/// provider's classified error, which never holds a credential's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFailure {
    pub integration: String,
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// An expiry date as both backends store it: `YYYY-MM-DD` text, which sorts as the date does.
pub(crate) fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}
