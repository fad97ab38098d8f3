//! What happens to a user's sessions: expiry, revocation, consent and MFA requirements.

use axum::Json;
use axum::extract::{Path, State};

use super::ControlError;
use super::types::{ExpireTokens, Expired, UserInfo};
use crate::directory::User;
use crate::state::AppState;

pub async fn expire_tokens(
    State(state): State<AppState>,
    Json(request): Json<ExpireTokens>,
) -> Result<Json<Expired>, ControlError> {
    let now = state.clock.now();
    let mut world = state.write();
    let user_id = match &request.user {
        Some(user) => Some(
            world
                .directory
                .user(user)
                .ok_or_else(|| ControlError::unknown_user(user))?
                .id
                .clone(),
        ),
        None => None,
    };
    Ok(Json(world.tokens.expire(&request, user_id.as_deref(), now)))
}

pub async fn revoke_refresh_tokens(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<UserInfo>, ControlError> {
    let now = state.clock.now();
    let mut world = state.write();
    let info = world
        .directory
        .user(&user)
        .ok_or_else(|| ControlError::unknown_user(&user))?
        .info();
    world.tokens.revoke_refresh_tokens(&info.id, now);
    Ok(Json(info))
}

pub async fn revoke_consent(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<UserInfo>, ControlError> {
    update_user(&state, &user, |user| user.consent_revoked = true)
}

pub async fn require_mfa(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<UserInfo>, ControlError> {
    update_user(&state, &user, |user| user.mfa_required = true)
}

fn update_user(
    state: &AppState,
    user: &str,
    change: impl FnOnce(&mut User),
) -> Result<Json<UserInfo>, ControlError> {
    let mut world = state.write();
    let found = world
        .directory
        .user_mut(user)
        .ok_or_else(|| ControlError::unknown_user(user))?;
    change(found);
    Ok(Json(found.info()))
}
