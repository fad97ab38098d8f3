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
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiPath, ApiQuery, AppState, ErrorBody, key_connections};
use crate::refresh::REFRESH_MARGIN;
use plugboard_store::{Connection, ConnectionKey};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/connections", get(list).post(key_connections::create))
        .route("/connections/{connection_id}", get(show).delete(remove))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Connection)]
pub(super) struct ConnectionView {
    connection_id: String,
    integration: String,
    /// The provider's id, such as `microsoft-people`.
    provider: String,
    /// `ok`, or `needs_reconnect` once the provider refused a refresh: the end user must
    /// connect again.
    #[schema(example = "ok")]
    status: &'static str,
    /// Why the connection needs a reconnect.
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason: Option<String>,
    /// The connected account (`id`, `display_name`, `email`) as the provider's account endpoint
    /// told it; null when the provider has none or it failed.
    account: Option<Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Only in `GET /connections/{connection_id}`'s answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials: Option<Credentials>,
}

/// Only `GET /connections/{id}` reveals the access token or API key: it is the route that asks
/// for it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum Credentials {
    /// An OAuth integration's access token, fresh for at least a few minutes.
    OAuth2 {
        access_token: String,
        expires_at: Option<DateTime<Utc>>,
        scopes: Vec<String>,
    },
    /// An API-key integration's key.
    ApiKey { api_key: String },
}

/// `GET /connections`' answer.
#[derive(Debug, Serialize, ToSchema)]
struct ConnectionList {
    connections: Vec<ConnectionView>,
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this integration's connections (required where a connection is named).
    integration: Option<String>,
}

/// List connections
///
/// Without their credentials.
#[utoipa::path(
    get,
    path = "/connections",
    operation_id = "list_connections",
    params(ListParams),
    responses(
        (status = 200, description = "The connections.", body = ConnectionList),
        (status = 400, description = "A query that cannot be read (`invalid_query`).", body = ErrorBody),
        (status = 404, description = "No such integration (`integration_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ConnectionList>, ApiError> {
    if let Some(name) = &params.integration {
        state.integration(name)?;
    }
    let connections = state
        .connections
        .store()
        .connections(params.integration.as_deref())
        .await?;
    let connections = connections.iter().map(ConnectionView::of).collect();
    Ok(Json(ConnectionList { connections }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ShowParams {
    /// The connection's integration.
    integration: Option<String>,
    /// Refresh the token now, even if it is still fresh (OAuth integrations only).
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

/// Get a connection with its credentials
///
/// An OAuth connection's access token is refreshed first when it expires within a few minutes
/// (or with `refresh=true`), at most once per connection at a time.
#[utoipa::path(
    get,
    path = "/connections/{connection_id}",
    operation_id = "get_connection",
    params(
        ("connection_id" = String, Path, description = "The caller's key for the connection."),
        ShowParams
    ),
    responses(
        (status = 200, description = "The connection with its credentials.", body = ConnectionView),
        (status = 400, description = "No `integration` (`missing_integration`), `refresh=true` for \
            an API-key integration (`refresh_unsupported`), or a query that cannot be read \
            (`invalid_query`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
        (status = 409, description = "The provider refused the refresh: the end user must \
            connect again (`needs_reconnect`).", body = ErrorBody),
        (status = 502, description = "The integration is misconfigured \
            (`integration_misconfigured`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn show(
    State(state): State<AppState>,
    ApiPath(connection_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ShowParams>,
) -> Result<Json<ConnectionView>, ApiError> {
    let key = key_of(connection_id, params.integration)?;
    let integration = &state.integration(&key.integration)?;
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

/// Delete a connection
#[utoipa::path(
    delete,
    path = "/connections/{connection_id}",
    operation_id = "delete_connection",
    params(
        ("connection_id" = String, Path, description = "The caller's key for the connection."),
        ListParams
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "No `integration` (`missing_integration`), or a query that \
            cannot be read (`invalid_query`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
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
