//! A user's relevant people.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::ControlError;
use super::types::{PeopleCount, SeedPeople};
use crate::people::{PeopleList, Person};
use crate::seed;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<Vec<Person>>, ControlError> {
    let world = state.read();
    let found = world
        .directory
        .user(&user)
        .ok_or_else(|| ControlError::unknown_user(&user))?;
    Ok(Json(found.people.all().to_vec()))
}

pub async fn add(
    State(state): State<AppState>,
    Path(user): Path<String>,
    Json(person): Json<Person>,
) -> Result<Json<Person>, ControlError> {
    let mut world = state.write();
    let found = world
        .directory
        .user_mut(&user)
        .ok_or_else(|| ControlError::unknown_user(&user))?;
    Ok(Json(found.people.add(person)?.clone()))
}

/// Replaces the user's people with `count` generated ones. Generation runs outside the lock
/// so Graph keeps serving meanwhile.
pub async fn seed(
    State(state): State<AppState>,
    Path(user): Path<String>,
    Json(request): Json<SeedPeople>,
) -> Result<Json<PeopleCount>, ControlError> {
    let domain = {
        let world = state.read();
        let found = world
            .directory
            .user(&user)
            .ok_or_else(|| ControlError::unknown_user(&user))?;
        let tenant = world
            .directory
            .tenant(&found.tenant_id)
            .expect("users belong to tenants");
        tenant.primary_domain().to_owned()
    };
    let people = PeopleList::new(seed::people(request.count, request.seed, &domain));
    let mut world = state.write();
    let found = world
        .directory
        .user_mut(&user)
        .ok_or_else(|| ControlError::unknown_user(&user))?;
    found.people = people;
    Ok(Json(PeopleCount {
        count: found.people.len(),
    }))
}

pub async fn update(
    State(state): State<AppState>,
    Path((user, person)): Path<(String, String)>,
    Json(patch): Json<Value>,
) -> Result<Json<Person>, ControlError> {
    let mut world = state.write();
    let found = world
        .directory
        .user_mut(&user)
        .ok_or_else(|| ControlError::unknown_user(&user))?;
    Ok(Json(found.people.patch(&person, &patch)?.clone()))
}

pub async fn remove(
    State(state): State<AppState>,
    Path((user, person)): Path<(String, String)>,
) -> Result<Json<Person>, ControlError> {
    let mut world = state.write();
    let found = world
        .directory
        .user_mut(&user)
        .ok_or_else(|| ControlError::unknown_user(&user))?;
    Ok(Json(found.people.remove(&person)?))
}
