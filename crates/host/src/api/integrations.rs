//! `GET /integrations`: each configured integration with its provider, its client credentials
//! (their configuration keys and expiry, never their values) and whether the provider accepts
//! them — what an operator's monitoring reads to renew a secret or a certificate in time, and
//! to tell an integration refusing its own credential apart from connections that need their
//! users.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState};
use crate::credential_watch;

pub fn routes() -> Router<AppState> {
    Router::new().route("/integrations", get(list))
}

/// `GET /integrations`' answer.
#[derive(Debug, Serialize, ToSchema)]
struct IntegrationList {
    integrations: Vec<IntegrationView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Integration)]
struct IntegrationView {
    /// The integration's key in the configuration.
    name: String,
    /// The provider's id, such as `microsoft-people`.
    provider: String,
    /// `oauth2`, or `api_key` (each connection then has its own key and the integration no
    /// credential).
    #[schema(example = "oauth2")]
    auth: &'static str,
    /// The integration's client credentials, in the order token requests try them.
    credentials: Vec<CredentialView>,
    /// When the last of its credentials expires: until then one of them is valid. Null when
    /// one has no known expiry, or there is none.
    credentials_expire_on: Option<NaiveDate>,
    /// `ok`, or `refused` while the provider refuses every client credential of the
    /// integration: it is misconfigured, and its connections wait for a valid credential
    /// rather than for their users.
    #[schema(example = "ok")]
    credential_state: &'static str,
    /// Since when the credentials are refused.
    credential_failed_at: Option<DateTime<Utc>>,
    /// The provider's answer, classified (no credential's value).
    credential_failure: Option<String>,
}

/// One client credential, by its configuration key and expiry.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = IntegrationCredential)]
struct CredentialView {
    /// Its key in the configuration, e.g. `integrations.microsoft.credentials[1]`.
    name: String,
    /// `secret` or `certificate`.
    #[schema(example = "secret")]
    kind: &'static str,
    /// Its last valid day: a secret's configured `expires_at`, a certificate's end date.
    expires_on: Option<NaiveDate>,
    /// Days from today until `expires_on`, negative once it has passed.
    days_left: Option<i64>,
}

/// List integrations
///
/// With each one's client credentials (keys and expiry, never values) and whether the
/// provider accepts them.
#[utoipa::path(
    get,
    path = "/integrations",
    operation_id = "list_integrations",
    responses(
        (status = 200, description = "The configured integrations.", body = IntegrationList),
    ),
    security(("api_key" = []))
)]
async fn list(State(state): State<AppState>) -> Result<Json<IntegrationList>, ApiError> {
    let refused = state.connections.store().credential_failures().await?;
    let today = Utc::now().date_naive();
    let integrations = state
        .integrations
        .iter()
        .map(|integration| {
            let credentials = integration
                .oauth()
                .map(|client| {
                    client
                        .credentials()
                        .iter()
                        .map(|credential| CredentialView {
                            name: credential.name.clone(),
                            kind: credential_watch::kind(credential),
                            expires_on: credential.expires,
                            days_left: credential.expires.map(|on| (on - today).num_days()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let failure = refused.iter().find(|f| f.integration == integration.name);
            IntegrationView {
                name: integration.name.clone(),
                provider: integration.spec().id.clone(),
                auth: if integration.refreshes() {
                    "oauth2"
                } else {
                    "api_key"
                },
                credentials,
                credentials_expire_on: integration.credentials_expire_on,
                credential_state: if failure.is_some() { "refused" } else { "ok" },
                credential_failed_at: failure.map(|f| f.since),
                credential_failure: failure.map(|f| f.reason.clone()),
            }
        })
        .collect();
    Ok(Json(IntegrationList { integrations }))
}
