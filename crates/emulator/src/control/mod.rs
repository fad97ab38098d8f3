//! The control API under `/_emulator/`: JSON in and out, no authentication. Tests, benchmarks
//! and the demo drive the emulator through it (usually via [`crate::ControlClient`]).
//!
//! `{user}` is a user id or user principal name; `{client_id}` an app's client id.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /tenants` | | `[TenantInfo]` |
//! | `POST /tenants` | `CreateTenant` | `TenantInfo` |
//! | `GET /apps` | | `[AppInfo]` |
//! | `POST /apps` | `CreateApp` | `AppInfo` (with the client secret) |
//! | `POST /apps/{client_id}/secret` | `UpdateSecret` | `AppInfo`: set the first secret's expiry, optionally rotate it |
//! | `POST /apps/{client_id}/secrets` | `AddSecret` | `NewSecret` (id, value, expiry): one more secret the app accepts |
//! | `POST /apps/{client_id}/secrets/{id}/expire` | | `SecretInfo`: that secret answers AADSTS7000222 from now on |
//! | `DELETE /apps/{client_id}/secrets/{id}` | | the removed `SecretInfo`: its value answers AADSTS7000215 |
//! | `POST /apps/{client_id}/certificates` | `AddCertificate` | `CertificateInfo`: client assertions signed with its key are accepted |
//! | `POST /apps/{client_id}/next-outcome` | `NextOutcome` | `NextOutcome`: forced on the next authorize or admin consent |
//! | `GET /users` | | `[UserInfo]` |
//! | `POST /users` | `CreateUser` | `UserInfo` |
//! | `POST /users/{user}/revoke-refresh-tokens` | | `UserInfo`: refresh tokens answer AADSTS50173 |
//! | `POST /users/{user}/revoke-consent` | | `UserInfo`: refreshes answer AADSTS65001 until the next sign-in |
//! | `POST /users/{user}/require-mfa` | | `UserInfo`: refreshes answer AADSTS50076 until the next sign-in |
//! | `GET /users/{user}/people` | | `[Person]` in relevance order |
//! | `POST /users/{user}/people` | `Person` (id minted if absent) | `Person` |
//! | `POST /users/{user}/people/seed` | `SeedPeople` | `PeopleCount`: replaces the user's people |
//! | `PATCH /users/{user}/people/{id}` | JSON merge patch | `Person` |
//! | `DELETE /users/{user}/people/{id}` | | the removed `Person` |
//! | `POST /tokens/expire` | `ExpireTokens` | `Expired` |
//! | `GET /clock` | | `ClockInfo` |
//! | `POST /clock/advance` | `AdvanceClock` | `ClockInfo` |
//! | `POST /subscriptions` | `CreateSubscription` | `SubscriptionInfo` (with the key) for `/apim` |
//! | `DELETE /subscriptions/{id}` | | the revoked `SubscriptionInfo`: its key answers 401 |
//! | `GET /faults` | | `[FaultRule]` still pending |
//! | `POST /faults` | `FaultRule` | `[FaultRule]` |
//! | `DELETE /faults` | | `[]` |
//! | `GET /counters` | | `Counters` |
//! | `DELETE /counters` | | `Counters` (zeroed) |
//! | `GET /settings` | | `Settings` (throttling, Graph latency, refresh-token rotation) |
//! | `PATCH /settings` | `UpdateSettings` | `Settings` |
//!
//! Errors are `{"error": "…"}` with 400, 404 or 409.

mod directory;
mod people;
mod runtime;
mod sessions;
mod subscriptions;
pub mod types;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde_json::json;

use crate::directory::DirectoryError;
use crate::people::PeopleError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tenants",
            get(directory::tenants).post(directory::create_tenant),
        )
        .route("/apps", get(directory::apps).post(directory::create_app))
        .route("/apps/{client_id}/secret", post(directory::update_secret))
        .route("/apps/{client_id}/secrets", post(directory::add_secret))
        .route(
            "/apps/{client_id}/secrets/{secret}/expire",
            post(directory::expire_secret),
        )
        .route(
            "/apps/{client_id}/secrets/{secret}",
            delete(directory::remove_secret),
        )
        .route(
            "/apps/{client_id}/certificates",
            post(directory::add_certificate),
        )
        .route(
            "/apps/{client_id}/next-outcome",
            post(directory::schedule_outcome),
        )
        .route("/users", get(directory::users).post(directory::create_user))
        .route(
            "/users/{user}/revoke-refresh-tokens",
            post(sessions::revoke_refresh_tokens),
        )
        .route(
            "/users/{user}/revoke-consent",
            post(sessions::revoke_consent),
        )
        .route("/users/{user}/require-mfa", post(sessions::require_mfa))
        .route("/users/{user}/people", get(people::list).post(people::add))
        .route("/users/{user}/people/seed", post(people::seed))
        .route(
            "/users/{user}/people/{person}",
            patch(people::update).delete(people::remove),
        )
        .route("/tokens/expire", post(sessions::expire_tokens))
        .route("/subscriptions", post(subscriptions::create))
        .route("/subscriptions/{id}", delete(subscriptions::revoke))
        .route("/clock", get(runtime::clock))
        .route("/clock/advance", post(runtime::advance_clock))
        .route(
            "/faults",
            get(runtime::faults)
                .post(runtime::add_fault)
                .delete(runtime::clear_faults),
        )
        .route(
            "/counters",
            get(runtime::counters).delete(runtime::reset_counters),
        )
        .route(
            "/settings",
            get(runtime::settings).patch(runtime::update_settings),
        )
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
}

impl ControlError {
    fn unknown_user(user: &str) -> Self {
        ControlError::NotFound(format!("user '{user}'"))
    }

    fn unknown_app(client_id: &str) -> Self {
        ControlError::NotFound(format!("app '{client_id}'"))
    }

    fn unknown_secret(client_id: &str, secret_id: &str) -> Self {
        ControlError::NotFound(format!("secret '{secret_id}' of app '{client_id}'"))
    }
}

impl From<DirectoryError> for ControlError {
    fn from(error: DirectoryError) -> Self {
        match error {
            DirectoryError::NotFound(what) => ControlError::NotFound(what),
            DirectoryError::Conflict(_) => ControlError::Conflict(error.to_string()),
            DirectoryError::Invalid(message) => ControlError::BadRequest(message),
        }
    }
}

impl From<PeopleError> for ControlError {
    fn from(error: PeopleError) -> Self {
        match error {
            PeopleError::NotFound(id) => ControlError::NotFound(format!("person '{id}'")),
            PeopleError::Duplicate(_) => ControlError::Conflict(error.to_string()),
            PeopleError::Invalid(_) => ControlError::BadRequest(error.to_string()),
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ControlError::Conflict(_) => StatusCode::CONFLICT,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}
