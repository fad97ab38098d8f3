//! The identity platform (`login.microsoftonline.com`): authorize, token and admin consent.

pub mod admin_consent;
mod assertion;
pub mod authorize;
pub mod error;
mod jwt;
mod pages;
pub mod redirect;
pub mod token;

use axum::Router;
use axum::routing::{get, post};

use crate::control::types::Audience;
use crate::directory::{App, Authority, Directory};
use crate::observe::RequestContext;
use crate::state::AppState;
use error::Aadsts;
use redirect::{Redirect, ReplyTo};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize::authorize))
        .route(
            "/{tenant}/oauth2/v2.0/authorize/consent",
            post(authorize::answer_consent),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route(
            "/{tenant}/v2.0/adminconsent",
            get(admin_consent::admin_consent),
        )
}

/// Resolves the `{tenant}` segment and the client the way every endpoint does first: an
/// unknown tenant, an unknown client, or a single-tenant app addressed outside its tenant.
pub fn resolve_client<'d>(
    directory: &'d Directory,
    tenant: &str,
    client_id: Option<&str>,
) -> Result<(Authority, &'d App), Aadsts> {
    let authority = directory
        .authority(tenant)
        .ok_or_else(|| Aadsts::tenant_not_found(tenant))?;
    let client_id = client_id.ok_or_else(|| Aadsts::missing_parameter("client_id"))?;
    let app = directory
        .app(client_id)
        .ok_or_else(|| Aadsts::unknown_client(client_id, tenant))?;
    if app.audience == Audience::SingleTenant {
        match &authority {
            Authority::Tenant(id) if *id != app.home_tenant_id => {
                return Err(Aadsts::unknown_client(client_id, tenant));
            }
            Authority::Tenant(_) => {}
            Authority::Common | Authority::Organizations | Authority::Consumers => {
                return Err(Aadsts::not_multi_tenant(&app.client_id, &app.name));
            }
        }
    }
    Ok((authority, app))
}

/// The redirect URI, if it is one the app registered (exact match, as Microsoft requires).
pub fn registered_redirect(app: &App, redirect_uri: Option<&str>) -> Result<String, Aadsts> {
    let redirect_uri = redirect_uri.ok_or_else(|| Aadsts::missing_parameter("redirect_uri"))?;
    if !app.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(Aadsts::redirect_mismatch(redirect_uri, &app.client_id));
    }
    Ok(redirect_uri.to_owned())
}

/// Consumes the outcome scheduled through the control API for the app's next request, as
/// its error redirect. Admin consent failures carry no `error_uri`.
pub fn take_scheduled_failure(
    directory: &mut Directory,
    client_id: &str,
    reply: &ReplyTo,
    with_error_uri: bool,
) -> Option<Redirect> {
    let app = directory.app_mut(client_id)?;
    let outcome = app.next_outcome.take()?;
    let aadsts = Aadsts::for_outcome(outcome.error, &app.client_id, &app.name);
    let description = outcome
        .error_description
        .unwrap_or_else(|| aadsts.description(&RequestContext::current()));
    let mut params = vec![
        ("error", outcome.error.as_str().to_owned()),
        ("error_description", description),
    ];
    if with_error_uri {
        params.push(("error_uri", aadsts.error_uri()));
    }
    Some(reply.with(params))
}
