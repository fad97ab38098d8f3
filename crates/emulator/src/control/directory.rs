//! Tenants, app registrations and users.

use axum::Json;
use axum::extract::{Path, State};
use chrono::TimeDelta;

use super::ControlError;
use super::types::{
    AppInfo, CreateApp, CreateTenant, CreateUser, NextOutcome, TenantInfo, UpdateSecret, UserInfo,
};
use crate::state::AppState;

pub async fn tenants(State(state): State<AppState>) -> Json<Vec<TenantInfo>> {
    Json(
        state
            .read()
            .directory
            .tenants()
            .iter()
            .map(|t| t.info())
            .collect(),
    )
}

pub async fn create_tenant(
    State(state): State<AppState>,
    Json(request): Json<CreateTenant>,
) -> Result<Json<TenantInfo>, ControlError> {
    Ok(Json(state.write().directory.create_tenant(request)?.info()))
}

pub async fn apps(State(state): State<AppState>) -> Json<Vec<AppInfo>> {
    let mut apps: Vec<AppInfo> = state
        .read()
        .directory
        .apps()
        .map(|app| app.info())
        .collect();
    apps.sort_by(|a, b| (&a.name, &a.client_id).cmp(&(&b.name, &b.client_id)));
    Json(apps)
}

pub async fn create_app(
    State(state): State<AppState>,
    Json(request): Json<CreateApp>,
) -> Result<Json<AppInfo>, ControlError> {
    let now = state.clock.now();
    Ok(Json(
        state.write().directory.create_app(request, now)?.info(),
    ))
}

pub async fn update_secret(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    Json(request): Json<UpdateSecret>,
) -> Result<Json<AppInfo>, ControlError> {
    let now = state.clock.now();
    let mut world = state.write();
    let app = world
        .directory
        .app_mut(&client_id)
        .ok_or_else(|| ControlError::unknown_app(&client_id))?;
    app.secret_expires_at = now + TimeDelta::seconds(request.expires_in_secs);
    if request.rotate {
        app.rotate_secret();
    }
    Ok(Json(app.info()))
}

pub async fn schedule_outcome(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    Json(outcome): Json<NextOutcome>,
) -> Result<Json<NextOutcome>, ControlError> {
    let mut world = state.write();
    let app = world
        .directory
        .app_mut(&client_id)
        .ok_or_else(|| ControlError::unknown_app(&client_id))?;
    app.next_outcome = Some(outcome.clone());
    Ok(Json(outcome))
}

pub async fn users(State(state): State<AppState>) -> Json<Vec<UserInfo>> {
    Json(
        state
            .read()
            .directory
            .users()
            .iter()
            .map(|u| u.info())
            .collect(),
    )
}

pub async fn create_user(
    State(state): State<AppState>,
    Json(request): Json<CreateUser>,
) -> Result<Json<UserInfo>, ControlError> {
    Ok(Json(state.write().directory.create_user(request)?.info()))
}
