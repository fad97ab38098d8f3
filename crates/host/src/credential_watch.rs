//! An integration's own client credentials — its secrets and certificates, not its
//! connections' tokens — watched once for the whole deployment.
//!
//! When one of them nears its expiry, an `integration.credential_expiring` event goes out 30, 7
//! and 1 days ahead, each once: the store's `credential_notices` row, inserted if absent, is the
//! claim to send it, so replicas checking the same day send it once between them. When the
//! provider refuses every credential of the integration, that is the operator's problem and
//! not the end users': the integration is marked misconfigured in the store (every replica
//! sees it) and one `integration.credential_failed` event goes out, instead of each connection
//! being reported broken; the first token request the provider accepts again clears the mark
//! and sends one `integration.recovered`. Both changes are compare-and-swaps in the store.
//! Credentials are named by their configuration key and expiry, never by their value.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use plugboard_core::oauth::NamedCredential;
use plugboard_store::{CredentialNotice, Store};
use serde_json::json;

use crate::config::secret_expiring;
use crate::integrations::Integrations;
use crate::webhooks::Webhooks;

/// How many days ahead of a credential's expiry `integration.credential_expiring` is sent.
pub const NOTICE_DAYS: [i64; 3] = [30, 7, 1];

/// The notices due for `credential` on `today`: every threshold already reached, so a server
/// started five days before an expiry sends the 30-day and the 7-day notice. None once the
/// credential has expired (token requests then say so) or when its expiry is unknown.
pub fn due(
    integration: &str,
    credential: &NamedCredential,
    today: NaiveDate,
) -> Vec<CredentialNotice> {
    let Some(expires_on) = credential.expires else {
        return Vec::new();
    };
    let days = (expires_on - today).num_days();
    NOTICE_DAYS
        .iter()
        .filter(|&&ahead| (0..=ahead).contains(&days))
        .map(|&days_ahead| CredentialNotice {
            integration: integration.to_owned(),
            credential: credential.name.clone(),
            expires_on,
            days_ahead,
        })
        .collect()
}

/// Checks every integration's credentials on `today`: sends the notices due that no process
/// sent yet, and with `log`, warns of each credential within [`secret_expiring`]'s window (the
/// server's daily reminder; at start-up the configuration's own warnings already said it).
pub async fn check_expiry(
    integrations: &Integrations,
    store: &dyn Store,
    webhooks: Option<&Arc<Webhooks>>,
    today: NaiveDate,
    log: bool,
) {
    for integration in integrations.iter() {
        let Ok(client) = integration.oauth() else {
            continue;
        };
        for credential in client.credentials().iter() {
            if log
                && let Some(expires) = credential.expires
                && let Some(days) = secret_expiring(expires, today)
            {
                tracing::warn!(integration = %integration.name, credential = %credential.label(), days, "the integration's client credential expires soon (or has expired): create a new one and add it to the config");
            }
            // Without webhooks nobody listens, so no notice is claimed either.
            let Some(webhooks) = webhooks else {
                continue;
            };
            for notice in due(&integration.name, credential, today) {
                match store.claim_credential_notice(&notice, Utc::now()).await {
                    Ok(true) => {
                        tracing::info!(integration = %notice.integration, credential = %credential.label(), days_ahead = notice.days_ahead, "announcing the credential's expiry");
                        webhooks.send(
                            "integration.credential_expiring",
                            json!({
                                "integration": notice.integration,
                                "credential": notice.credential,
                                "kind": kind(credential),
                                "expires_at": notice.expires_on,
                                "days_ahead": notice.days_ahead,
                                "days_left": (notice.expires_on - today).num_days(),
                            }),
                        );
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(integration = %notice.integration, credential = %credential.label(), %error, "claiming the credential's expiry notice failed; it is tried again tomorrow");
                    }
                }
            }
        }
    }
}

/// `secret` or `certificate`: what the operator has to renew.
pub fn kind(credential: &NamedCredential) -> &'static str {
    match credential.credential {
        plugboard_core::oauth::ClientCredential::Secret(_) => "secret",
        plugboard_core::oauth::ClientCredential::Certificate(_) => "certificate",
    }
}

/// The provider refused every client credential of `integration` (`reason`, the classified
/// provider error, holds no credential's value): marks it misconfigured and, if it was not
/// already, sends `integration.credential_failed`.
pub async fn refused(
    store: &dyn Store,
    webhooks: Option<&Arc<Webhooks>>,
    integration: &str,
    reason: &str,
) {
    match store
        .set_credential_failing(integration, Some((reason, Utc::now())))
        .await
    {
        Ok(true) => {
            tracing::error!(integration, %reason, "the provider refuses every client credential of the integration: it is marked misconfigured until one is accepted; its connections are kept");
            if let Some(webhooks) = webhooks {
                webhooks.send(
                    "integration.credential_failed",
                    json!({"integration": integration, "error": reason}),
                );
            }
        }
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(integration, %error, "recording the refused credential failed; its event is not sent");
        }
    }
}

/// The provider accepted a credential of `integration`: clears its misconfigured mark and,
/// if there was one, sends `integration.recovered`.
pub async fn accepted(store: &dyn Store, webhooks: Option<&Arc<Webhooks>>, integration: &str) {
    match store.set_credential_failing(integration, None).await {
        Ok(true) => {
            tracing::info!(
                integration,
                "the provider accepts the integration's client credential again"
            );
            if let Some(webhooks) = webhooks {
                webhooks.send("integration.recovered", json!({"integration": integration}));
            }
        }
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(integration, %error, "recording the accepted credential failed; its event is not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_core::oauth::ClientCredential;
    use secrecy::SecretString;

    fn expiring(on: Option<&str>) -> NamedCredential {
        NamedCredential {
            credential: ClientCredential::Secret(SecretString::from("s3cr3t".to_owned())),
            name: "integrations.m.credentials[0]".to_owned(),
            expires: on.map(|d| d.parse().unwrap()),
        }
    }

    fn thresholds(on: Option<&str>, today: &str) -> Vec<i64> {
        due("m", &expiring(on), today.parse().unwrap())
            .iter()
            .map(|n| n.days_ahead)
            .collect()
    }

    #[test]
    fn every_threshold_reached_is_due_until_the_expiry() {
        let on = Some("2027-05-31");
        assert_eq!(thresholds(on, "2027-04-30"), Vec::<i64>::new(), "31 days");
        assert_eq!(thresholds(on, "2027-05-01"), [30], "30 days");
        assert_eq!(thresholds(on, "2027-05-26"), [30, 7], "5 days");
        assert_eq!(thresholds(on, "2027-05-30"), [30, 7, 1], "1 day");
        assert_eq!(thresholds(on, "2027-05-31"), [30, 7, 1], "its last day");
        assert_eq!(thresholds(on, "2027-06-01"), Vec::<i64>::new(), "expired");
        assert_eq!(
            thresholds(None, "2027-05-31"),
            Vec::<i64>::new(),
            "no expiry"
        );
    }

    #[test]
    fn a_notice_names_the_credential_by_key_and_expiry() {
        let notice = &due(
            "m",
            &expiring(Some("2027-05-31")),
            "2027-05-30".parse().unwrap(),
        )[0];
        assert_eq!(notice.integration, "m");
        assert_eq!(notice.credential, "integrations.m.credentials[0]");
        assert_eq!(notice.expires_on.to_string(), "2027-05-31");
        assert!(!format!("{notice:?}").contains("s3cr3t"));
    }
}
