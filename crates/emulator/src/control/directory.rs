//! Tenants, app registrations and users.

use axum::Json;
use axum::extract::{Path, State};
use chrono::TimeDelta;

use super::ControlError;
use super::types::{
    AddCertificate, AddSecret, AppInfo, CertificateInfo, CreateApp, CreateTenant, CreateUser,
    NewSecret, NextOutcome, SecretInfo, TenantInfo, UpdateSecret, UserInfo,
};
use crate::certificates::RegisteredCertificate;
use crate::directory::{App, Directory};
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
    let app = known_app(&mut world.directory, &client_id)?;
    let secret = app.first_secret_mut(now);
    secret.expires_at = now + TimeDelta::seconds(request.expires_in_secs);
    if request.rotate {
        secret.rotate();
    }
    Ok(Json(app.info()))
}

/// Adds a secret next to those the app holds; the answer is the only one with its value.
pub async fn add_secret(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    Json(request): Json<AddSecret>,
) -> Result<Json<NewSecret>, ControlError> {
    let now = state.clock.now();
    let mut world = state.write();
    let app = known_app(&mut world.directory, &client_id)?;
    let secret = app.add_secret(request.expires_in_secs.map(TimeDelta::seconds), now);
    Ok(Json(NewSecret {
        id: secret.id.clone(),
        value: secret.value.clone(),
        expires_at: secret.expires_at,
    }))
}

/// Makes one secret expire now, on the emulator's clock: it answers AADSTS7000222 from then.
pub async fn expire_secret(
    State(state): State<AppState>,
    Path((client_id, secret_id)): Path<(String, String)>,
) -> Result<Json<SecretInfo>, ControlError> {
    let now = state.clock.now();
    let mut world = state.write();
    let app = known_app(&mut world.directory, &client_id)?;
    let secret = app
        .secret_mut(&secret_id)
        .ok_or_else(|| ControlError::unknown_secret(&client_id, &secret_id))?;
    secret.expires_at = now;
    Ok(Json(secret.info()))
}

/// Removes one secret: its value answers AADSTS7000215 from then, as any unknown value.
pub async fn remove_secret(
    State(state): State<AppState>,
    Path((client_id, secret_id)): Path<(String, String)>,
) -> Result<Json<SecretInfo>, ControlError> {
    let mut world = state.write();
    let app = known_app(&mut world.directory, &client_id)?;
    let removed = app
        .remove_secret(&secret_id)
        .ok_or_else(|| ControlError::unknown_secret(&client_id, &secret_id))?;
    Ok(Json(removed.info()))
}

pub async fn add_certificate(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    Json(request): Json<AddCertificate>,
) -> Result<Json<CertificateInfo>, ControlError> {
    let certificate =
        RegisteredCertificate::from_pem(&request.certificate).map_err(ControlError::BadRequest)?;
    let info = certificate.info();
    let mut world = state.write();
    let app = known_app(&mut world.directory, &client_id)?;
    if app
        .certificates
        .iter()
        .any(|c| c.thumbprint_sha256 == certificate.thumbprint_sha256)
    {
        return Err(ControlError::Conflict(format!(
            "certificate '{}' is already registered on app '{client_id}'",
            certificate.thumbprint_sha256
        )));
    }
    app.certificates.push(certificate);
    Ok(Json(info))
}

pub async fn schedule_outcome(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    Json(outcome): Json<NextOutcome>,
) -> Result<Json<NextOutcome>, ControlError> {
    let mut world = state.write();
    let app = known_app(&mut world.directory, &client_id)?;
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

/// The app with that client id, or the control API's 404 naming it.
fn known_app<'d>(
    directory: &'d mut Directory,
    client_id: &str,
) -> Result<&'d mut App, ControlError> {
    directory
        .app_mut(client_id)
        .ok_or_else(|| ControlError::unknown_app(client_id))
}
