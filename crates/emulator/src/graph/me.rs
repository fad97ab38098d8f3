//! `GET /me`: the signed-in user's profile (User.Read).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::GraphError;
use super::{RequestUrl, admit};
use crate::state::AppState;

pub async fn me(
    State(state): State<AppState>,
    caller: Caller,
    url: RequestUrl,
) -> Result<Json<Value>, GraphError> {
    if !caller.has_any(&["User.Read", "User.ReadBasic.All", "User.Read.All"]) {
        return Err(GraphError::insufficient_privileges());
    }
    let _admission = admit(&state, &caller, &caller.user_id).await?;
    let world = state.read();
    let user = world
        .directory
        .user(&caller.user_id)
        .ok_or_else(|| GraphError::user_not_found(&caller.user_id))?;
    Ok(Json(json!({
        "@odata.context": format!("{}/{}/$metadata#users/$entity", url.base, url.version()),
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": user.given_name(),
        "jobTitle": null,
        "mail": user.mail,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": null,
        "surname": user.surname(),
        "userPrincipalName": user.user_principal_name,
        "id": user.id,
    })))
}
