//! `GET /me/people` and `GET /users/{id or userPrincipalName}/people`.

use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::error::GraphError;
use super::query::{PeopleQuery, Search};
use super::{RequestUrl, admit};
use crate::state::AppState;

const CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
const READ_OWN: &[&str] = &["People.Read", "People.Read.All"];
const READ_ANY: &[&str] = &["People.Read.All"];

pub async fn my_people(
    State(state): State<AppState>,
    caller: Caller,
    url: RequestUrl,
    RawQuery(query): RawQuery,
) -> Result<Response, GraphError> {
    if !caller.has_any(READ_OWN) {
        return Err(GraphError::access_denied());
    }
    let query = PeopleQuery::parse(query.as_deref(), Search::Allowed)?;
    let mailbox = caller.user_id.clone();
    page(&state, &caller, &mailbox, &query, &url).await
}

/// Another user of the caller's tenant needs People.Read.All (which only an admin grants);
/// the caller's own id or name works with People.Read.
pub async fn user_people(
    State(state): State<AppState>,
    caller: Caller,
    url: RequestUrl,
    Path(user): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, GraphError> {
    let mailbox = {
        let world = state.read();
        let target = world
            .directory
            .user(&user)
            .filter(|target| target.tenant_id == caller.tenant_id)
            .ok_or_else(|| GraphError::user_not_found(&user))?;
        let needed = if target.id == caller.user_id {
            READ_OWN
        } else {
            READ_ANY
        };
        if !caller.has_any(needed) {
            return Err(GraphError::access_denied());
        }
        target.id.clone()
    };
    let query = PeopleQuery::parse(query.as_deref(), Search::NotAllowed)?;
    page(&state, &caller, &mailbox, &query, &url).await
}

async fn page(
    state: &AppState,
    caller: &Caller,
    mailbox: &str,
    query: &PeopleQuery,
    url: &RequestUrl,
) -> Result<Response, GraphError> {
    let _admission = admit(state, caller, mailbox).await?;
    let body = {
        let world = state.read();
        let user = world
            .directory
            .user(mailbox)
            .ok_or_else(|| GraphError::user_not_found(mailbox))?;
        query.render(&user.people, url, &user.id)
    };
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}
