//! `POST /actions/{action}`: runs a provider action for a connection and returns its output.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use plugboard_core::{ErrorKind, ProviderError, RunInfo, SyncMode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, ApiPath, AppState};
use crate::sync::context::{HostContext, Purpose};
use plugboard_store::ConnectionKey;

pub fn routes() -> Router<AppState> {
    Router::new().route("/actions/{action}", post(run))
}

/// Unknown fields are refused, as on every other route: a typo such as `inputs` would
/// otherwise run the action without its input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    integration: String,
    connection_id: String,
    #[serde(default)]
    input: Value,
}

async fn run(
    State(state): State<AppState>,
    ApiPath(action): ApiPath<String>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<Value>, ApiError> {
    let integration = state.integration(&body.integration)?.clone();
    if integration.spec().action(&action).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "action_not_found",
            format!(
                "integration `{}` has no action `{action}`",
                body.integration
            ),
        ));
    }
    let key = ConnectionKey::new(&body.integration, &body.connection_id);
    let connection =
        state.connections.get(&key).await?.ok_or_else(|| {
            ApiError::connection_not_found(&body.connection_id, &body.integration)
        })?;
    let run_info = RunInfo {
        connection_id: body.connection_id.clone(),
        connection_config: integration
            .spec()
            .resolve_connection_config(&connection.connection_config)
            .unwrap_or_else(|_| connection.connection_config.clone()),
        mode: SyncMode::Incremental,
        previous: None,
        page_size: None,
    };
    let ctx = HostContext::new(
        state.clone(),
        integration.clone(),
        connection,
        run_info,
        Purpose::Action,
    )
    .map_err(|why| ApiError::new(StatusCode::BAD_GATEWAY, "integration_misconfigured", why))?;
    let ctx = Arc::new(ctx);
    let provider = integration.provider.clone();
    let task_ctx = ctx.clone();
    let name = action.clone();
    // Its own task: a panicking action fails this request and nothing else.
    let joined = tokio::spawn(async move {
        provider
            .run_action(&name, body.input, task_ctx.as_ref())
            .await
    })
    .await;
    match joined {
        Ok(Ok(output)) => Ok(Json(json!({ "output": output }))),
        Ok(Err(error)) => Err(action_error(error)),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "action_panicked",
            format!("the action `{action}` panicked; see the server log"),
        )),
    }
}

fn action_error(error: ProviderError) -> ApiError {
    let (status, code) = match error.kind {
        ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_input"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Auth => (StatusCode::CONFLICT, "needs_reconnect"),
        ErrorKind::Http { .. } => (StatusCode::BAD_GATEWAY, "provider_error"),
        ErrorKind::Transport | ErrorKind::Decode | ErrorKind::Pagination => {
            (StatusCode::BAD_GATEWAY, "provider_unavailable")
        }
        ErrorKind::Storage | ErrorKind::Internal => {
            (StatusCode::INTERNAL_SERVER_ERROR, "action_failed")
        }
    };
    ApiError::new(status, code, error.message)
}
