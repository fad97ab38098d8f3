//! Finishing a flow at `/oauth/callback`: the state taken once and checked against this
//! browser, the code redeemed, the account read and the connection saved; or the page that
//! says what went wrong, leading back to the application.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use plugboard_core::http::Credential;
use plugboard_core::oauth::{OAuthError, parse_admin_consent_callback, parse_callback};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::start::provider_name;
use super::{BROWSER_COOKIE, Outcome, cookie, kind_code, store_failure};
use crate::api::account::fetch_account;
use crate::api::connect::{SESSION_LIFETIME, store_session};
use crate::api::pages::{self};
use crate::api::{AppState, hash_token};
use crate::credential_watch;
use crate::integrations::Integration;
use plugboard_store::{ConnectSession, Flow, NewConnection, OAuthState, TakenState, Tokens};

#[utoipa::path(
    get,
    path = "/oauth/callback",
    tag = "oauth",
    operation_id = "oauth_callback",
    summary = "Where the provider sends the browser back",
    description = "The redirect URI to register at the provider. Only the browser that started \
        the flow completes it, once.",
    params(
        ("state" = String, Query, description = "The flow's state."),
        ("code" = Option<String>, Query, description = "The authorization code."),
        ("error" = Option<String>, Query, description = "The provider's error code."),
        ("error_description" = Option<String>, Query, description = "The provider's words."),
        ("admin_consent" = Option<String>, Query, description = "`True` after admin consent."),
        ("tenant" = Option<String>, Query, description = "The consenting organisation."),
    ),
    responses(
        (status = 302, description = "Back to the application's `return_url`, with \
            `integration`, `connection_id` and `status` (`connected`, `admin_consent` with \
            `tenant`, or `error` with `error` and `error_description`) in its query.", headers(
            ("Location" = String, description = "The `return_url` with the outcome."),
        )),
        (status = 200, description = "A page saying the account is connected (or the consent \
            granted), when the session has no `return_url`.", body = String,
            content_type = "text/html"),
        (status = 400, description = "A page saying why the sign-in could not be completed: \
            no single `state`, another browser, an unknown, expired or used state, or the \
            provider's refusal.", body = String, content_type = "text/html"),
        (status = 404, description = "A page: the flow's integration is gone.", body = String,
            content_type = "text/html"),
        (status = 500, description = "A page: the store failed.", body = String,
            content_type = "text/html"),
        (status = 502, description = "A page: the integration is misconfigured or the provider \
            is unavailable.", body = String, content_type = "text/html"),
    )
)]
pub(super) async fn callback(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    finish_flow(&state, &query, &headers).await.respond(&state)
}

async fn finish_flow(state: &AppState, query: &str, headers: &HeaderMap) -> Outcome {
    let states: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .collect();
    let [flow_state] = states.as_slice() else {
        return Outcome::page(
            StatusCode::BAD_REQUEST,
            "Sign-in could not be completed",
            "The provider's answer carries no single `state`. Start connecting again from the application.",
        );
    };
    // Only the browser that started the flow takes its state: a callback arriving in another
    // browser is refused and leaves the flow for the right one to finish.
    let browser = cookie(headers, BROWSER_COOKIE)
        .map(|browser| hash_token(&browser))
        .unwrap_or_default();
    let taken = state
        .connections
        .store()
        .take_oauth_state(&hash_token(flow_state), &browser, Utc::now())
        .await;
    let flow = match taken {
        Ok(TakenState::Taken(flow)) => flow,
        Ok(TakenState::OtherBrowser) => {
            tracing::warn!("OAuth callback from another browser refused");
            return Outcome::page(
                StatusCode::BAD_REQUEST,
                "Sign-in could not be completed",
                "This sign-in was started in another browser (or cookies are blocked). Start connecting again from the application, in this browser.",
            );
        }
        Ok(TakenState::Unknown) => {
            tracing::warn!("OAuth callback with an unknown, expired or already used state refused");
            return Outcome::page(
                StatusCode::BAD_REQUEST,
                "Sign-in could not be completed",
                "This sign-in is unknown, has expired (after 10 minutes) or was already completed. Start connecting again from the application.",
            );
        }
        Err(error) => return store_failure(error),
    };
    let Some(integration) = state.integrations.get(&flow.integration) else {
        return Outcome::page(
            StatusCode::NOT_FOUND,
            "Unknown integration",
            format!("There is no integration `{}` any more.", flow.integration),
        );
    };
    match flow.flow {
        Flow::Connect => complete_connect(state, &integration, &flow, query).await,
        Flow::AdminConsent => match parse_admin_consent_callback(query) {
            Ok(consent) => {
                tracing::info!(integration = %flow.integration, tenant = %consent.tenant, "admin consent granted");
                finish(
                    state,
                    &integration,
                    &flow,
                    ("admin_consent", consent.tenant),
                )
            }
            Err(error) => failed(state, &integration, Target::from(&flow), &error).await,
        },
    }
}

async fn complete_connect(
    state: &AppState,
    integration: &Integration,
    flow: &OAuthState,
    query: &str,
) -> Outcome {
    let fail = |error| failed(state, integration, Target::from(flow), error);
    let code = match parse_callback(query) {
        Ok(code) => code,
        Err(error) => return fail(&error).await,
    };
    let oauth = match integration.oauth() {
        Ok(oauth) => oauth,
        Err(error) => return fail(&error).await,
    };
    let (store, webhooks) = (
        state.connections.store().as_ref(),
        state.connections.webhooks(),
    );
    let tokens = match oauth
        .exchange_code(
            &flow.connection_config,
            &code.code,
            flow.pkce_verifier.as_ref(),
        )
        .await
    {
        Ok(tokens) => {
            // A code exchange authenticates with the integration's credentials too.
            credential_watch::accepted(store, webhooks, &flow.integration).await;
            tokens
        }
        Err(error) => {
            if error.rejects_client_credential() {
                credential_watch::refused(store, webhooks, &flow.integration, &error.to_string())
                    .await;
            }
            return fail(&error).await;
        }
    };
    let account = read_account(
        state,
        integration,
        &flow.connection_config,
        &tokens.access_token,
    )
    .await;
    let new = NewConnection {
        key: plugboard_store::ConnectionKey::new(&flow.integration, &flow.connection_id),
        provider: integration.spec().id.clone(),
        connection_config: flow.connection_config.clone(),
        account,
        tokens: Tokens {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            id_token: tokens.id_token,
            expires_at: tokens.expires_at,
            scopes: tokens.scopes,
        },
    };
    match state.connections.save(new).await {
        Ok(connection) => {
            tracing::info!(integration = %flow.integration, connection_id = %flow.connection_id, "connection saved");
            state.syncs.connection_saved(&connection);
            finish(state, integration, flow, ("connected", String::new()))
        }
        Err(error) => store_failure(error),
    }
}

/// Who connected, from the spec's account endpoint. A connection without it still works, so
/// a failure here is logged rather than failing the flow.
async fn read_account(
    state: &AppState,
    integration: &Integration,
    connection_config: &BTreeMap<String, String>,
    access_token: &SecretString,
) -> Option<Value> {
    let credential = Credential::Bearer(access_token.expose_secret());
    match fetch_account(state, integration, connection_config, credential).await {
        Ok(account) => account,
        Err(error) => {
            tracing::warn!(integration = %integration.name, %error, "reading the connected account failed");
            None
        }
    }
}

/// Who a flow is for and where its browser goes back to: from the connect session, or from
/// the flow's state once the provider has answered.
pub(super) struct Target<'a> {
    connection_id: &'a str,
    connection_config: &'a BTreeMap<String, String>,
    return_url: Option<&'a str>,
}

impl<'a> From<&'a ConnectSession> for Target<'a> {
    fn from(session: &'a ConnectSession) -> Self {
        Target {
            connection_id: &session.connection_id,
            connection_config: &session.connection_config,
            return_url: session.return_url.as_deref(),
        }
    }
}

impl<'a> From<&'a OAuthState> for Target<'a> {
    fn from(flow: &'a OAuthState) -> Self {
        Target {
            connection_id: &flow.connection_id,
            connection_config: &flow.connection_config,
            return_url: flow.return_url.as_deref(),
        }
    }
}

/// The end of a successful flow: back to the application's `return_url` with the outcome in
/// the query, or a page saying what happened.
fn finish(
    state: &AppState,
    integration: &Integration,
    flow: &OAuthState,
    (status, tenant): (&'static str, String),
) -> Outcome {
    let target = Target::from(flow);
    if let Some(location) = back_to_app(&integration.name, &target, Ok((status, &tenant))) {
        return Outcome::Redirect {
            location,
            cookie: None,
        };
    }
    let app = &state.ui.app_name;
    let provider = provider_name(integration);
    if status == "admin_consent" {
        return Outcome::page(
            StatusCode::OK,
            "Admin consent granted",
            format!(
                "An administrator of tenant {tenant} granted the permissions {app} asks for. \
                 You can close this window."
            ),
        );
    }
    Outcome::page(
        StatusCode::OK,
        "Connected",
        format!("Your {provider} account is connected to {app}. You can close this window."),
    )
}

/// The page that ends a failed flow: what happened in plain words, a link back to the
/// application's `return_url` with `error` and `error_description` when the session has one,
/// and — when an administrator must consent first — a link for the administrator.
pub(super) async fn failed(
    state: &AppState,
    integration: &Integration,
    target: Target<'_>,
    error: &OAuthError,
) -> Outcome {
    tracing::warn!(integration = %integration.name, connection_id = %target.connection_id, kind = ?error.kind(), %error, "OAuth flow failed");
    let admin_first = integration.needs_admin_consent && pages::needs_admin_consent_first(error);
    let mut page = pages::explain(
        error,
        &state.ui.app_name,
        provider_name(integration),
        admin_first,
    );
    page.back_url = back_to_app(&integration.name, &target, Err(error));
    if admin_first {
        match admin_consent_link(state, integration, &target).await {
            Ok(link) => page.admin_consent_url = Some(link),
            Err(error) => return store_failure(error),
        }
    }
    Outcome::Page(page)
}

/// The application's `return_url` with the flow's outcome in its query.
fn back_to_app(
    integration: &str,
    target: &Target<'_>,
    outcome: Result<(&str, &str), &OAuthError>,
) -> Option<String> {
    let mut location = url::Url::parse(target.return_url?).ok()?;
    {
        let mut query = location.query_pairs_mut();
        query.append_pair("integration", integration);
        query.append_pair("connection_id", target.connection_id);
        match outcome {
            Ok((status, tenant)) => {
                query.append_pair("status", status);
                if !tenant.is_empty() {
                    query.append_pair("tenant", tenant);
                }
            }
            Err(error) => {
                query.append_pair("status", "error");
                query.append_pair("error", kind_code(error.kind()));
                query.append_pair("error_description", &error.to_string());
            }
        }
    }
    Some(location.into())
}

/// The tenant, if admin consent can be granted for it: one organisation, never `common` or
/// `consumers`.
pub(super) fn consenting_tenant(tenant: Option<&str>) -> Option<&str> {
    tenant.map(str::trim).filter(|t| {
        !t.is_empty() && !t.eq_ignore_ascii_case("common") && !t.eq_ignore_ascii_case("consumers")
    })
}

/// A link that starts admin consent for the connection's organisation: a new connect session
/// for the same connection (the failed flow used up its own), good for one flow like any.
/// Its tenant is the connection's, or `organizations` (the administrator's own) when the
/// connection's is one Microsoft refuses for admin consent.
async fn admin_consent_link(
    state: &AppState,
    integration: &Integration,
    target: &Target<'_>,
) -> Result<String, plugboard_store::StoreError> {
    let session = ConnectSession {
        integration: integration.name.clone(),
        connection_id: target.connection_id.to_owned(),
        connection_config: target.connection_config.clone(),
        return_url: target.return_url.map(str::to_owned),
        expires_at: Utc::now() + SESSION_LIFETIME,
    };
    let token = store_session(state, &session).await?;
    let tenant = consenting_tenant(target.connection_config.get("tenant").map(String::as_str))
        .unwrap_or("organizations");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("tenant", tenant)
        .append_pair("session_token", &token)
        .finish();
    Ok(pages::public_url(
        state,
        &format!("/oauth/admin-consent/{}?{query}", integration.name),
    ))
}
