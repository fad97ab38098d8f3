//! `GET /{tenant}/oauth2/v2.0/authorize`: the interactive sign-in, minus the interaction.
//!
//! The user is chosen from `login_hint`, else the app's home tenant's first user. Apps with
//! consent mode `page` get a consent page whose buttons post to `…/authorize/consent`.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::{Aadsts, FlowError};
use super::redirect::{Redirect, ReplyTo, ResponseMode};
use super::{pages, registered_redirect, resolve_client, take_scheduled_failure};
use crate::control::types::{Audience, ConsentMode};
use crate::directory::{App, Authority, Directory, User};
use crate::random;
use crate::scopes::{self, Scopes};
use crate::state::{AppState, World};
use crate::tokens::{AuthorizationCode, CODE_LIFETIME, Grant};

#[derive(Debug, Deserialize)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    response_type: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    response_mode: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
    nonce: Option<String>,
}

/// A validated sign-in, waiting only for the code to be issued (or for consent).
#[derive(Debug, Clone)]
pub struct SignIn {
    client_id: String,
    user_id: String,
    reply: ReplyTo,
    scopes: Scopes,
    code_challenge: Option<String>,
    nonce: Option<String>,
}

pub async fn authorize(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Query<AuthorizeParams>,
) -> Result<Response, FlowError> {
    let mut world = state.write();
    let sign_in = validate(&mut world.directory, &tenant, params)?;
    let app = world.directory.app(&sign_in.client_id).expect("validated");
    if app.consent_mode == ConsentMode::Page {
        let user = world.directory.user(&sign_in.user_id).expect("validated");
        let prompt = random::opaque(18);
        let action = format!("/{tenant}/oauth2/v2.0/authorize/consent");
        let page = pages::consent_page(
            &action,
            &prompt,
            &app.name,
            &user.user_principal_name,
            &sign_in.scopes.graph,
        );
        world.consent_prompts.insert(prompt, sign_in);
        return Ok(page);
    }
    Ok(complete(&mut world, sign_in, state.clock.now()).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ConsentAnswer {
    prompt: String,
    decision: String,
}

/// `POST /{tenant}/oauth2/v2.0/authorize/consent`: the consent page's Accept or Decline.
pub async fn answer_consent(
    State(state): State<AppState>,
    Form(answer): Form<ConsentAnswer>,
) -> Result<Redirect, FlowError> {
    let mut world = state.write();
    let sign_in = world
        .consent_prompts
        .remove(&answer.prompt)
        .ok_or_else(|| FlowError::Page(Aadsts::unknown_consent_prompt()))?;
    if answer.decision != "accept" {
        return Err(FlowError::Redirect(
            sign_in
                .reply
                .error("access_denied", &Aadsts::user_declined()),
        ));
    }
    Ok(complete(&mut world, sign_in, state.clock.now()))
}

fn validate(
    directory: &mut Directory,
    tenant: &str,
    params: AuthorizeParams,
) -> Result<SignIn, FlowError> {
    let (authority, app) =
        resolve_client(directory, tenant, params.client_id.as_deref()).map_err(FlowError::Page)?;
    let redirect_uri =
        registered_redirect(app, params.redirect_uri.as_deref()).map_err(FlowError::Page)?;
    let mode = ResponseMode::parse(params.response_mode.as_deref());
    let reply = ReplyTo {
        redirect_uri,
        mode: mode.unwrap_or(ResponseMode::Query),
        state: params.state,
    };
    let fail = |error: &str, aadsts: Aadsts| FlowError::Redirect(reply.error(error, &aadsts));

    let client_id = app.client_id.clone();
    if let Some(failure) = take_scheduled_failure(directory, &client_id, &reply, true) {
        return Err(FlowError::Redirect(failure));
    }
    let app = directory.app(&client_id).expect("resolved above");

    if mode.is_none() {
        let given = params.response_mode.unwrap_or_default();
        return Err(fail(
            "invalid_request",
            Aadsts::invalid_response_mode(&given),
        ));
    }
    match params.response_type.as_deref() {
        None => {
            return Err(fail(
                "invalid_request",
                Aadsts::missing_parameter("response_type"),
            ));
        }
        Some("code") => {}
        Some(other) => {
            return Err(fail(
                "unsupported_response_type",
                Aadsts::unsupported_response_type(other),
            ));
        }
    }
    let raw_scope = params
        .scope
        .ok_or_else(|| fail("invalid_request", Aadsts::missing_parameter("scope")))?;
    let scopes = Scopes::parse(&raw_scope)
        .map_err(|bad| fail("invalid_request", Aadsts::invalid_scope(&bad)))?;
    if let Some(challenge) = &params.code_challenge {
        let method = params.code_challenge_method.as_deref().unwrap_or("plain");
        if method != "S256" {
            return Err(fail(
                "invalid_request",
                Aadsts::unsupported_challenge_method(method),
            ));
        }
        if !(43..=128).contains(&challenge.len()) {
            return Err(fail("invalid_request", Aadsts::invalid_challenge_size()));
        }
    }
    let user =
        choose_user(directory, &authority, app, params.login_hint.as_deref()).ok_or_else(|| {
            FlowError::Page(Aadsts::unknown_user(
                params.login_hint.as_deref().unwrap_or("(none)"),
                tenant,
            ))
        })?;

    Ok(SignIn {
        client_id,
        user_id: user.id.clone(),
        reply,
        scopes,
        code_challenge: params.code_challenge,
        nonce: params.nonce,
    })
}

/// The `login_hint` user if they may sign in here, else the first user of the app's home
/// tenant (or of any tenant the authority admits).
fn choose_user<'d>(
    directory: &'d Directory,
    authority: &Authority,
    app: &App,
    login_hint: Option<&str>,
) -> Option<&'d User> {
    let eligible = |user: &&User| {
        authority.admits(&user.tenant_id)
            && (app.audience == Audience::MultiTenant || user.tenant_id == app.home_tenant_id)
    };
    login_hint
        .and_then(|hint| directory.user(hint))
        .filter(eligible)
        .or_else(|| {
            directory
                .users()
                .iter()
                .filter(eligible)
                .min_by_key(|u| u.tenant_id != app.home_tenant_id)
        })
}

/// The user has signed in (and consented): issue the code and send it back.
fn complete(world: &mut World, sign_in: SignIn, now: DateTime<Utc>) -> Redirect {
    let user = world
        .directory
        .user_mut(&sign_in.user_id)
        .expect("validated");
    // Signing in again is what clears a revoked consent or an MFA requirement.
    user.consent_revoked = false;
    user.mfa_required = false;
    let tenant_id = user.tenant_id.clone();
    let app = world.directory.app(&sign_in.client_id).expect("validated");
    let admin_consented = app.admin_consented(&tenant_id);
    let mut granted = sign_in
        .scopes
        .expand_default(scopes::SIGN_IN_DEFAULT.iter().chain(admin_consented));
    // A user cannot grant admin-only scopes: without an admin's consent they are left out.
    granted
        .graph
        .retain(|scope| !scopes::is_admin_only(scope) || admin_consented.contains(scope));

    let code = world.tokens.issue_code(AuthorizationCode {
        grant: Grant {
            client_id: sign_in.client_id,
            user_id: sign_in.user_id,
            tenant_id,
            scopes: granted,
        },
        redirect_uri: sign_in.reply.redirect_uri.clone(),
        code_challenge: sign_in.code_challenge,
        nonce: sign_in.nonce,
        expires_at: now + CODE_LIFETIME,
        redeemed: false,
    });
    // `session_state` is an extra Microsoft adds; clients must ignore it.
    sign_in
        .reply
        .with(vec![("code", code), ("session_state", random::guid())])
}
