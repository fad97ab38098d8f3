//! Issued authorization codes, access tokens and refresh tokens.
//!
//! Tokens are JWT-shaped for realism, but the emulator never parses them: it looks them up
//! here, which keeps expiry and revocation exact and instant.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::control::types::{ExpireTokens, Expired};
use crate::random;
use crate::scopes::Scopes;

pub const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// Refresh tokens die after 90 days without use.
pub const REFRESH_INACTIVITY: TimeDelta = TimeDelta::days(90);

/// What a user granted an app: the basis of codes and refresh tokens.
#[derive(Debug, Clone)]
pub struct Grant {
    pub client_id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub scopes: Scopes,
}

pub struct AuthorizationCode {
    pub grant: Grant,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub redeemed: bool,
}

pub struct AccessToken {
    pub client_id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub scopes: Vec<&'static str>,
    pub expires_at: DateTime<Utc>,
}

pub struct RefreshToken {
    pub grant: Grant,
    pub issued_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// When the user's sessions were revoked: AADSTS50173 from then on.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Expired through the control API: AADSTS70008.
    pub expired: bool,
    /// The sign-in the token descends from: the token an authorization code gave and every
    /// token issued by refreshing it or its successors share it.
    pub family: String,
    /// When it was redeemed while refresh tokens rotate: refused as revoked from then on.
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct TokenStore {
    pub codes: HashMap<String, AuthorizationCode>,
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
}

impl TokenStore {
    pub fn issue_code(&mut self, code: AuthorizationCode) -> String {
        let value = format!("1.A{}", random::opaque(96));
        self.codes.insert(value.clone(), code);
        value
    }

    /// A new refresh token of `family` (the one it was refreshed from), or of a family of its
    /// own (from an authorization code).
    pub fn issue_refresh(
        &mut self,
        grant: Grant,
        family: Option<String>,
        now: DateTime<Utc>,
    ) -> String {
        let value = format!("0.A{}", random::opaque(160));
        let token = RefreshToken {
            grant,
            issued_at: now,
            last_used_at: now,
            revoked_at: None,
            expired: false,
            family: family.unwrap_or_else(random::guid),
            used_at: None,
        };
        self.refresh.insert(value.clone(), token);
        value
    }

    pub fn expire(
        &mut self,
        which: &ExpireTokens,
        user_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Expired {
        let past = now - TimeDelta::seconds(1);
        let mut expired = Expired {
            access_tokens: 0,
            refresh_tokens: 0,
        };
        if which.access_token.is_some() || which.refresh_token.is_some() {
            if let Some(token) = which
                .access_token
                .as_ref()
                .and_then(|t| self.access.get_mut(t))
            {
                token.expires_at = past;
                expired.access_tokens += 1;
            }
            if let Some(token) = which
                .refresh_token
                .as_ref()
                .and_then(|t| self.refresh.get_mut(t))
            {
                token.expired = true;
                expired.refresh_tokens += 1;
            }
            return expired;
        }
        let owned = |owner: &str| user_id.is_none_or(|id| id == owner);
        for token in self.access.values_mut().filter(|t| owned(&t.user_id)) {
            token.expires_at = past;
            expired.access_tokens += 1;
        }
        if which.include_refresh_tokens {
            for token in self
                .refresh
                .values_mut()
                .filter(|t| owned(&t.grant.user_id))
            {
                token.expired = true;
                expired.refresh_tokens += 1;
            }
        }
        expired
    }

    /// Revokes every refresh token of the family not revoked yet, as a rotating provider does
    /// when a used token comes back. How many were.
    pub fn revoke_family(&mut self, family: &str, now: DateTime<Utc>) -> usize {
        let mut revoked = 0;
        for token in self
            .refresh
            .values_mut()
            .filter(|t| t.family == family && t.revoked_at.is_none())
        {
            token.revoked_at = Some(now);
            revoked += 1;
        }
        revoked
    }

    /// Revokes every refresh token the user holds, as a password reset does.
    pub fn revoke_refresh_tokens(&mut self, user_id: &str, now: DateTime<Utc>) -> usize {
        let mut revoked = 0;
        for token in self
            .refresh
            .values_mut()
            .filter(|t| t.grant.user_id == user_id && t.revoked_at.is_none())
        {
            token.revoked_at = Some(now);
            revoked += 1;
        }
        revoked
    }
}
