//! `POST /actions/{action}`: runs a provider action for a connection and returns its output.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use plugboard_core::{ErrorKind, ProviderError, RunInfo, SyncMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiPath, AppState, ErrorBody};
use crate::activity;
use crate::sync::context::{HostContext, Purpose};
use plugboard_store::{ActivityKind, ConnectionKey};

pub fn routes() -> Router<AppState> {
    Router::new().route("/actions/{action}", post(run))
}

/// Unknown fields are refused, as on every other route: a typo such as `inputs` would
/// otherwise run the action without its input.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    integration: String,
    connection_id: String,
    /// The action's input, as the provider's action documents it; null when absent.
    #[serde(default)]
    input: Value,
}

/// `POST /actions/{action}`'s answer.
#[derive(Serialize, ToSchema)]
struct ActionOutput {
    /// What the action returned, as the provider's action documents it.
    output: Value,
}

/// Run a provider action for a connection
#[utoipa::path(
    post,
    path = "/actions/{action}",
    operation_id = "run_action",
    params(("action" = String, Path, description = "The action's name, such as `search-people`.")),
    request_body = ActionBody,
    responses(
        (status = 200, description = "The action's output.", body = ActionOutput),
        (status = 400, description = "A body that is not JSON (`invalid_body`), or input the \
            action refused (`invalid_input`).", body = ErrorBody),
        (status = 404, description = "No such integration, action or connection \
            (`integration_not_found`, `action_not_found`, `connection_not_found`), or the \
            provider found nothing (`not_found`).", body = ErrorBody),
        (status = 409, description = "The provider refused the connection's credentials: the \
            end user must connect again (`needs_reconnect`).", body = ErrorBody),
        (status = 500, description = "The action failed inside Plugboard (`action_failed`, \
            `action_panicked`) or the store failed (`store_error`).", body = ErrorBody),
        (status = 502, description = "The provider answered with an error or could not be \
            reached (`provider_error`, `provider_unavailable`), or the integration is \
            misconfigured (`integration_misconfigured`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn run(
    State(state): State<AppState>,
    ApiPath(action): ApiPath<String>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<ActionOutput>, ApiError> {
    let integration = state.integration(&body.integration)?;
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
    let answer = match joined {
        Ok(Ok(output)) => Ok(Json(ActionOutput { output })),
        Ok(Err(error)) => Err(action_error(error)),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "action_panicked",
            format!("the action `{action}` panicked; see the server log"),
        )),
    };
    let summary = match &answer {
        Ok(_) => format!("action `{action}` succeeded"),
        Err(error) => format!("action `{action}` failed: {}", error.message()),
    };
    activity::record(
        state.connections.store().as_ref(),
        ActivityKind::Action,
        answer.is_ok(),
        Some(&key),
        summary,
        None,
    )
    .await;
    answer
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
