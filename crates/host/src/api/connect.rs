//! `POST /connect/sessions`: a short-lived link that lets one end user connect one account.
//!
//! The caller's backend creates the session with the API key and hands the `connect_url` to the
//! end user's browser, which never sees the API key. Only the token's hash is stored.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, AppState, ErrorBody, hash_token, random_token};
use crate::integrations::Integration;
use plugboard_store::ConnectSession;

/// How long a connect link works.
pub(super) const SESSION_LIFETIME: chrono::Duration = chrono::Duration::minutes(30);

pub fn routes() -> Router<AppState> {
    Router::new().route("/connect/sessions", post(create))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The integration to connect, as `[integrations.<name>]` names it.
    pub integration: String,
    /// The caller's own key for the connection: 1 to 128 letters, digits, `-`, `_`, `.`, `:`
    /// or `@`.
    pub connection_id: String,
    /// Values for the provider's connection config, such as `tenant`; the spec's defaults fill
    /// the rest.
    #[serde(default)]
    pub connection_config: BTreeMap<String, String>,
    /// Where the browser goes when the flow ends, with the outcome in the query; its origin
    /// must be in `[server] allowed_return_origins`.
    #[serde(default)]
    pub return_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    /// The session's token, also in `connect_url`.
    pub token: String,
    /// When the link stops working (30 minutes after its creation).
    pub expires_at: DateTime<Utc>,
    /// The link to hand the end user's browser.
    pub connect_url: String,
}

/// Create a connect session
///
/// A link, valid for 30 minutes and once, that lets one end user connect one account of an
/// OAuth integration.
#[utoipa::path(
    post,
    path = "/connect/sessions",
    operation_id = "create_connect_session",
    request_body = CreateSession,
    responses(
        (status = 201, description = "The session.", body = SessionCreated),
        (status = 400, description = "A body that is not JSON (`invalid_body`), an invalid \
            `connection_id`, `connection_config` or `return_url`, or an integration that uses \
            API keys (`api_key_integration`).", body = ErrorBody),
        (status = 404, description = "No such integration (`integration_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<SessionCreated>), ApiError> {
    let created = create_session(&state, request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Checks the request and stores the session; shared with `plugboard dev`.
pub async fn create_session(
    state: &AppState,
    request: CreateSession,
) -> Result<SessionCreated, ApiError> {
    let integration = &state.integration(&request.integration)?;
    if integration.api_key().is_some() {
        return Err(ApiError::bad_request(
            "api_key_integration",
            format!(
                "integration `{}` uses API keys: create the connection with POST /connections \
                 and `credentials.api_key` instead of a connect session",
                request.integration
            ),
        ));
    }
    let connection_config = new_connection_config(
        integration,
        &request.connection_id,
        &request.connection_config,
    )?;
    if let Some(url) = &request.return_url {
        check_return_url(&state.server.allowed_return_origins, url)?;
    }
    let expires_at = Utc::now() + SESSION_LIFETIME;
    let session = ConnectSession {
        integration: request.integration.clone(),
        connection_id: request.connection_id,
        connection_config,
        return_url: request.return_url,
        expires_at,
    };
    let token = store_session(state, &session).await?;
    let connect_url = format!(
        "{}/oauth/connect/{}?session_token={token}",
        state.server.public_url.as_str().trim_end_matches('/'),
        request.integration
    );
    Ok(SessionCreated {
        token,
        expires_at,
        connect_url,
    })
}

/// Stores the session: its token, which only its hash is stored as and only the caller sees.
pub(super) async fn store_session(
    state: &AppState,
    session: &ConnectSession,
) -> Result<String, plugboard_store::StoreError> {
    let token = format!("pbcs_{}", random_token());
    state
        .connections
        .store()
        .create_connect_session(&hash_token(&token), session)
        .await?;
    Ok(token)
}

/// What a new connection is made with, checked before anything is stored: its id, and its
/// connection config completed with the spec's defaults.
pub(super) fn new_connection_config(
    integration: &Integration,
    connection_id: &str,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    check_connection_id(connection_id)?;
    integration
        .spec()
        .resolve_connection_config(given)
        .map_err(|problems| ApiError::bad_request("invalid_connection_config", summary(&problems)))
}

/// Problems listed in one message: the first few, then how many more, so a request with
/// thousands of bad keys gets a short answer.
fn summary(problems: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = problems[..problems.len().min(SHOWN)].join("; ");
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    text
}

/// Connection ids are the caller's own keys (a user id, an email); they appear in URLs and logs.
fn check_connection_id(id: &str) -> Result<(), ApiError> {
    let valid = (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_connection_id",
            "connection_id must be 1 to 128 letters, digits, `-`, `_`, `.`, `:` or `@`",
        ))
    }
}

/// The end user is sent to `return_url` after connecting; an open redirect otherwise.
fn check_return_url(allowed: &[String], url: &str) -> Result<(), ApiError> {
    let parsed = url::Url::parse(url).map_err(|_| {
        ApiError::bad_request("invalid_return_url", "return_url is not an absolute URL")
    })?;
    let origin = parsed.origin().ascii_serialization();
    if allowed.contains(&origin) && parsed.username().is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "return_url_not_allowed",
            format!("return_url's origin `{origin}` is not in server.allowed_return_origins"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_must_be_on_an_allowed_origin() {
        let allowed = vec!["http://localhost:3000".to_owned()];
        assert!(check_return_url(&allowed, "http://localhost:3000/done?x=1").is_ok());
        for bad in [
            "http://localhost:3001/done",
            "https://localhost:3000/done",
            "http://localhost:3000@evil.example/",
            "http://user@localhost:3000/",
            "/relative",
            "javascript:alert(1)",
        ] {
            assert!(check_return_url(&allowed, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_ids_are_plain() {
        assert!(check_connection_id("user-42@example.com").is_ok());
        for bad in ["", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(check_connection_id(bad).is_err(), "{bad}");
        }
    }
}
