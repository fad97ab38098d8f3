//! API Management subscriptions: the keys of the `/apim` API-key service.

use axum::Json;
use axum::extract::{Path, State};

use super::ControlError;
use super::types::{CreateSubscription, SubscriptionInfo};
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    Json(request): Json<CreateSubscription>,
) -> Json<SubscriptionInfo> {
    Json(state.write().subscriptions.create(request.name))
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionInfo>, ControlError> {
    state
        .write()
        .subscriptions
        .revoke(&id)
        .map(Json)
        .ok_or_else(|| ControlError::NotFound(format!("subscription '{id}'")))
}
