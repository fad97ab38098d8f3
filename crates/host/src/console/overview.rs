//! `GET /ui`: each integration with its connections counted by health and what needs the
//! operator's attention, and the latest failures across the deployment.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use plugboard_store::{ActivityFilter, ConnectionHealth, CredentialFailure};

use super::activity::{ActivityRow, activity_rows};
use super::connections::list_url;
use super::session::SignedIn;
use super::{Chrome, ConsoleError, format, render};
use crate::config::{misses_offline_access, secret_expiring};
use crate::credential_watch;
use crate::integrations::Integration;
use crate::state::AppState;

/// How many of the latest failures the overview lists.
const LATEST_FAILURES: u32 = 10;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewHtml {
    chrome: Chrome,
    integrations: Vec<IntegrationRow>,
    activity: Vec<ActivityRow>,
}

struct IntegrationRow {
    name: String,
    provider: String,
    connections_url: String,
    healthy: u64,
    needs_reconnect: u64,
    sync_failing: u64,
    paused: u64,
    warnings: Vec<String>,
}

pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, ConsoleError> {
    let store = state.connections.store();
    let counts = store.connection_health_counts().await?;
    let refused = store.credential_failures().await?;
    let mut integrations = Vec::new();
    for integration in state.integrations.iter() {
        let count = |health: ConnectionHealth| {
            counts
                .iter()
                .filter(|(name, h, _)| name == &integration.name && *h == health)
                .map(|(_, _, n)| n)
                .sum()
        };
        integrations.push(IntegrationRow {
            name: integration.name.clone(),
            provider: integration.spec().display_name.clone(),
            connections_url: list_url(Some(&integration.name), None, "", None),
            healthy: count(ConnectionHealth::Healthy),
            needs_reconnect: count(ConnectionHealth::NeedsReconnect),
            sync_failing: count(ConnectionHealth::SyncFailing),
            paused: count(ConnectionHealth::Paused),
            warnings: warnings(
                &integration,
                refused.iter().find(|f| f.integration == integration.name),
            ),
        });
    }
    let failures = store
        .activity(&ActivityFilter {
            succeeded: Some(false),
            limit: LATEST_FAILURES,
            ..ActivityFilter::default()
        })
        .await?;
    render(OverviewHtml {
        chrome: Chrome {
            title: "Overview".to_owned(),
            section: "overview",
            csrf: signed_in.csrf(),
            notice: None,
            refresh_every: None,
        },
        integrations,
        activity: activity_rows(&state, failures, Utc::now()),
    })
}

/// What the operator should fix before connections fail: the provider refusing the
/// integration's client credentials (`failure`, the store's mark), each credential — secret or
/// certificate — expiring within the warning window of [`secret_expiring`] (or expired),
/// `offline_access` missing from the scopes.
fn warnings(integration: &Integration, failure: Option<&CredentialFailure>) -> Vec<String> {
    let mut warnings = Vec::new();
    let today = Utc::now().date_naive();
    if let Some(failure) = failure {
        warnings.push(format!(
            "Misconfigured since {}: the provider refuses every client credential ({}); connections work again once a valid one is configured",
            failure.since.format("%Y-%m-%d %H:%M UTC"),
            failure.reason
        ));
    }
    if let Ok(oauth) = integration.oauth() {
        for credential in oauth.credentials().iter() {
            if let Some(expires) = credential.expires
                && secret_expiring(expires, today).is_some()
            {
                warnings.push(format!(
                    "Client {}: {} ({})",
                    credential_watch::kind(credential),
                    format::client_credential(Some(expires), today),
                    credential.name,
                ));
            }
        }
    }
    if let (Ok(oauth), Some(spec)) = (integration.oauth(), integration.spec().auth.as_oauth2())
        && misses_offline_access(spec, &oauth.config().scopes)
    {
        warnings.push(
            "`offline_access` is missing from the scopes: connections get no refresh token"
                .to_owned(),
        );
    }
    warnings
}
