//! `GET /connections`, `GET /connections/{id}` (with credentials) and `DELETE /connections/{id}`;
//! `POST /connections` (API-key connections) is in `key_connections`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, ApiPath, ApiQuery, AppState, key_connections};
use crate::refresh::REFRESH_MARGIN;
use plugboard_store::{Connection, ConnectionKey};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/connections", get(list).post(key_connections::create))
        .route("/connections/{connection_id}", get(show).delete(remove))
}

#[derive(Debug, Serialize)]
pub(super) struct ConnectionView {
    connection_id: String,
    integration: String,
    provider: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason: Option<String>,
    account: Option<Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials: Option<Credentials>,
}

/// Only `GET /connections/{id}` reveals the access token or API key: it is the route that asks
/// for it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Credentials {
    OAuth2 {
        access_token: String,
        expires_at: Option<DateTime<Utc>>,
        scopes: Vec<String>,
    },
    ApiKey {
        api_key: String,
    },
}

impl ConnectionView {
    pub(super) fn of(connection: &Connection) -> Self {
        ConnectionView {
            connection_id: connection.key.connection_id.clone(),
            integration: connection.key.integration.clone(),
            provider: connection.provider.clone(),
            status: connection.status.as_str(),
            status_reason: connection.status_reason.clone(),
            account: connection.account.clone(),
            created_at: connection.created_at,
            updated_at: connection.updated_at,
            credentials: None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    integration: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(name) = &params.integration {
        state.integration(name)?;
    }
    let connections = state
        .connections
        .store()
        .connections(params.integration.as_deref())
        .await?;
    let views: Vec<ConnectionView> = connections.iter().map(ConnectionView::of).collect();
    Ok(Json(serde_json::json!({ "connections": views })))
}

#[derive(Debug, Deserialize)]
struct ShowParams {
    integration: Option<String>,
    #[serde(default)]
    refresh: bool,
}

fn key_of(connection_id: String, integration: Option<String>) -> Result<ConnectionKey, ApiError> {
    let integration = integration.ok_or_else(|| {
        ApiError::bad_request(
            "missing_integration",
            "add `?integration=<name>` to the URL",
        )
    })?;
    Ok(ConnectionKey::new(integration, connection_id))
}

async fn show(
    State(state): State<AppState>,
    ApiPath(connection_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ShowParams>,
) -> Result<Json<ConnectionView>, ApiError> {
    let key = key_of(connection_id, params.integration)?;
    let integration = state.integration(&key.integration)?;
    // From the store, not the cache: whoever asks for credentials gets the authoritative ones.
    let connection = state
        .connections
        .load(&key)
        .await?
        .ok_or_else(|| ApiError::connection_not_found(&key.connection_id, &key.integration))?;
    if params.refresh && !integration.refreshes() {
        return Err(ApiError::bad_request(
            "refresh_unsupported",
            format!(
                "integration `{}` uses API keys, which are not refreshed; drop `refresh=true`",
                key.integration
            ),
        ));
    }
    let connection = if params.refresh {
        state
            .connections
            .replace(integration, &key, connection.token_version)
            .await?
    } else {
        state
            .connections
            .fresh(integration, connection, REFRESH_MARGIN)
            .await?
    };
    let mut view = ConnectionView::of(&connection);
    let secret = connection.tokens.access_token.expose_secret().to_owned();
    view.credentials = Some(if integration.refreshes() {
        Credentials::OAuth2 {
            access_token: secret,
            expires_at: connection.tokens.expires_at,
            scopes: connection.tokens.scopes.clone(),
        }
    } else {
        Credentials::ApiKey { api_key: secret }
    });
    Ok(Json(view))
}

async fn remove(
    State(state): State<AppState>,
    ApiPath(connection_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<StatusCode, ApiError> {
    let key = key_of(connection_id, params.integration)?;
    state.integration(&key.integration)?;
    let deleted = state.connections.delete(&key).await?;
    if !deleted {
        return Err(ApiError::connection_not_found(
            &key.connection_id,
            &key.integration,
        ));
    }
    tracing::info!(integration = %key.integration, connection_id = %key.connection_id, "connection deleted");
    Ok(StatusCode::NO_CONTENT)
}
