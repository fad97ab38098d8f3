//! `GET /{tenant}/v2.0/adminconsent`: an admin grants scopes (People.Read.All) for a tenant.

use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::error::{Aadsts, FlowError};
use super::redirect::{Redirect, ReplyTo, ResponseMode};
use super::{registered_redirect, resolve_client, take_scheduled_failure};
use crate::control::types::Audience;
use crate::directory::Authority;
use crate::observe::RequestContext;
use crate::scopes::{self, Scopes};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct AdminConsentParams {
    client_id: Option<String>,
    scope: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    /// Picks the admin (and so the tenant) when the request goes to `organizations`.
    login_hint: Option<String>,
}

pub async fn admin_consent(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Query<AdminConsentParams>,
) -> Result<Redirect, FlowError> {
    let mut world = state.write();
    let directory = &mut world.directory;
    let (authority, app) =
        resolve_client(directory, &tenant, params.client_id.as_deref()).map_err(FlowError::Page)?;
    if matches!(authority, Authority::Common | Authority::Consumers) {
        return Err(FlowError::Page(Aadsts::admin_consent_needs_tenant(
            &app.client_id,
            &app.name,
        )));
    }
    let redirect_uri =
        registered_redirect(app, params.redirect_uri.as_deref()).map_err(FlowError::Page)?;
    let reply = ReplyTo {
        redirect_uri,
        mode: ResponseMode::Query,
        state: params.state,
    };
    let fail = |error: &str, aadsts: Aadsts| {
        let description = aadsts.description(&RequestContext::current());
        FlowError::Redirect(reply.with(vec![
            ("error", error.to_owned()),
            ("error_description", description),
        ]))
    };

    let client_id = app.client_id.clone();
    if let Some(failure) = take_scheduled_failure(directory, &client_id, &reply, false) {
        return Err(FlowError::Redirect(failure));
    }
    let app = directory.app(&client_id).expect("resolved above");
    let raw_scope = params
        .scope
        .ok_or_else(|| fail("invalid_request", Aadsts::missing_parameter("scope")))?;
    let requested = Scopes::parse(&raw_scope)
        .map_err(|bad| fail("invalid_request", Aadsts::invalid_scope(&bad)))?;

    let tenant_id = match authority {
        Authority::Tenant(id) => id,
        _ => params
            .login_hint
            .as_deref()
            .and_then(|hint| directory.user(hint))
            .map_or_else(
                || app.home_tenant_id.clone(),
                |admin| admin.tenant_id.clone(),
            ),
    };
    if app.audience == Audience::SingleTenant && tenant_id != app.home_tenant_id {
        return Err(FlowError::Page(Aadsts::unknown_client(
            &client_id, &tenant_id,
        )));
    }
    let granted = requested.expand_default(scopes::ADMIN_CONSENT_DEFAULT);
    directory
        .app_mut(&client_id)
        .expect("resolved above")
        .grant_admin_consent(&tenant_id, &granted.graph);
    Ok(reply.with(vec![
        ("admin_consent", "True".to_owned()),
        ("tenant", tenant_id),
        ("scope", raw_scope),
    ]))
}
