//! The browser side of OAuth: `/oauth/connect/{integration}`, `/oauth/admin-consent/{integration}`
//! and `/oauth/callback`.
//!
//! A flow's `state` is random, stored hashed, lives 10 minutes and is taken exactly once. It is
//! also bound to the browser that started the flow by a cookie (stored hashed too): a callback
//! that arrives in another browser — a login CSRF, or a victim tricked into completing an
//! attacker's flow — is refused before any token request, as is an unknown, expired or replayed
//! state. Only then is the code redeemed, so a code is never sent to the token endpoint twice.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use plugboard_core::http::Credential;
use plugboard_core::oauth::{
    OAuthError, OAuthErrorKind, parse_admin_consent_callback, parse_callback,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::account::fetch_account;
use super::{AppState, hash_token, random_token};
use crate::integrations::Integration;
use plugboard_store::{ConnectSession, Flow, NewConnection, OAuthState, TakenState, Tokens};

const STATE_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);
const BROWSER_COOKIE: &str = "plugboard_oauth";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/connect/{integration}", get(connect))
        .route("/oauth/admin-consent/{integration}", get(admin_consent))
        .route("/oauth/callback", get(callback))
}

#[derive(Debug, Deserialize)]
struct ConnectParams {
    session_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AdminConsentParams {
    session_token: Option<String>,
    tenant: Option<String>,
}

/// What a browser route answers: a redirect, or a small page.
enum Outcome {
    Redirect {
        location: String,
        cookie: Option<String>,
    },
    Page {
        status: StatusCode,
        title: String,
        detail: String,
    },
}

impl Outcome {
    fn page(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Outcome::Page {
            status,
            title: title.into(),
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let mut response = match self {
            Outcome::Redirect { location, cookie } => {
                let mut response = StatusCode::FOUND.into_response();
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(LOCATION, value);
                }
                if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    response.headers_mut().insert(SET_COOKIE, value);
                }
                response
            }
            Outcome::Page {
                status,
                title,
                detail,
            } => (status, Html(page(&title, &detail))).into_response(),
        };
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn page(title: &str, detail: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title} · Plugboard</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}</style>\
         </head><body><h1>{title}</h1><p>{detail}</p></body></html>\n",
        title = escape(title),
        detail = escape(detail),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn connect(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<ConnectParams>, QueryRejection>,
    headers: HeaderMap,
) -> Outcome {
    let (Ok(Path(name)), Ok(Query(params))) = (name, params) else {
        return malformed_link();
    };
    let (integration, session) =
        match session_for(&state, &name, params.session_token.as_deref()).await {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
    let request = match integration
        .oauth()
        .and_then(|oauth| oauth.authorization_request(&session.connection_config, &[]))
    {
        Ok(request) => request,
        Err(error) => return provider_failure(&error),
    };
    let flow = FlowStart {
        flow: Flow::Connect,
        session,
        pkce_verifier: request.pkce_verifier,
        state: request.state,
    };
    start_flow(&state, &headers, flow, request.url).await
}

async fn admin_consent(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<AdminConsentParams>, QueryRejection>,
    headers: HeaderMap,
) -> Outcome {
    let (Ok(Path(name)), Ok(Query(params))) = (name, params) else {
        return malformed_link();
    };
    let (integration, mut session) =
        match session_for(&state, &name, params.session_token.as_deref()).await {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
    if !integration.needs_admin_consent {
        return Outcome::page(
            StatusCode::BAD_REQUEST,
            "No admin consent needed",
            format!(
                "Integration `{name}` requests no scope that needs an administrator's consent."
            ),
        );
    }
    let tenant = match params.tenant.as_deref().map(str::trim) {
        Some(t)
            if !t.is_empty()
                && !t.eq_ignore_ascii_case("common")
                && !t.eq_ignore_ascii_case("consumers") =>
        {
            t.to_owned()
        }
        _ => {
            return Outcome::page(
                StatusCode::BAD_REQUEST,
                "A tenant is needed",
                "Admin consent is granted for one organisation: pass `tenant` as its id, a verified domain, or `organizations` (not `common` or `consumers`).",
            );
        }
    };
    session
        .connection_config
        .insert("tenant".to_owned(), tenant);
    let flow_state = random_token();
    let url = match integration
        .oauth()
        .and_then(|oauth| oauth.admin_consent_url(&session.connection_config, &flow_state))
    {
        Ok(url) => url,
        Err(error) => return provider_failure(&error),
    };
    let flow = FlowStart {
        flow: Flow::AdminConsent,
        session,
        pkce_verifier: None,
        state: flow_state,
    };
    start_flow(&state, &headers, flow, url).await
}

/// A link whose path or query cannot be read (a segment that is not UTF-8, a parameter
/// given twice): a page, like every other answer of these browser routes.
fn malformed_link() -> Outcome {
    Outcome::page(
        StatusCode::BAD_REQUEST,
        "This link is not valid",
        "The link is malformed. Ask the application for a new one.",
    )
}

/// Finds the integration and the unexpired connect session for it.
async fn session_for<'s>(
    state: &'s AppState,
    name: &str,
    token: Option<&str>,
) -> Result<(&'s std::sync::Arc<Integration>, ConnectSession), Outcome> {
    let Some(integration) = state.integrations.get(name) else {
        return Err(Outcome::page(
            StatusCode::NOT_FOUND,
            "Unknown integration",
            format!("There is no integration `{name}`."),
        ));
    };
    let expired = || {
        Outcome::page(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "The connect link is unknown or has expired (links work for 30 minutes). Ask the application for a new one.",
        )
    };
    let token = token.ok_or_else(expired)?;
    let session = state
        .connections
        .store()
        .take_connect_session(&hash_token(token), Utc::now())
        .await
        .map_err(store_failure)?
        .filter(|s| s.integration == name)
        .ok_or_else(expired)?;
    Ok((integration, session))
}

struct FlowStart {
    flow: Flow,
    session: ConnectSession,
    pkce_verifier: Option<SecretString>,
    state: String,
}

/// Stores the flow's state, binds it to this browser and sends the browser to the provider.
async fn start_flow(
    state: &AppState,
    headers: &HeaderMap,
    start: FlowStart,
    location: String,
) -> Outcome {
    // A browser keeps one binding for all its flows, so two tabs connecting at once both work.
    let browser = cookie(headers, BROWSER_COOKIE)
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(random_token);
    let now = Utc::now();
    let flow_state = OAuthState {
        flow: start.flow,
        integration: start.session.integration,
        connection_id: start.session.connection_id,
        connection_config: start.session.connection_config,
        return_url: start.session.return_url,
        pkce_verifier: start.pkce_verifier,
        browser_hash: hash_token(&browser),
        expires_at: now + STATE_LIFETIME,
    };
    if let Err(error) = state
        .connections
        .store()
        .create_oauth_state(&hash_token(&start.state), &flow_state, now)
        .await
    {
        return store_failure(error);
    }
    let secure = if state.server.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{BROWSER_COOKIE}={browser}; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        STATE_LIFETIME.num_seconds()
    );
    tracing::info!(integration = %flow_state.integration, connection_id = %flow_state.connection_id, flow = ?flow_state.flow, "OAuth flow started");
    Outcome::Redirect {
        location,
        cookie: Some(cookie),
    }
}

async fn callback(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Outcome {
    let query = query.unwrap_or_default();
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
    let browser = cookie(&headers, BROWSER_COOKIE)
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
        Flow::Connect => complete_connect(&state, integration, &flow, &query).await,
        Flow::AdminConsent => match parse_admin_consent_callback(&query) {
            Ok(consent) => {
                tracing::info!(integration = %flow.integration, tenant = %consent.tenant, "admin consent granted");
                finish(&flow, Ok(("admin_consent", consent.tenant)))
            }
            Err(error) => finish(&flow, Err(error)),
        },
    }
}

async fn complete_connect(
    state: &AppState,
    integration: &Integration,
    flow: &OAuthState,
    query: &str,
) -> Outcome {
    let code = match parse_callback(query) {
        Ok(code) => code,
        Err(error) => return finish(flow, Err(error)),
    };
    let oauth = match integration.oauth() {
        Ok(oauth) => oauth,
        Err(error) => return finish(flow, Err(error)),
    };
    let tokens = match oauth
        .exchange_code(
            &flow.connection_config,
            &code.code,
            flow.pkce_verifier.as_ref(),
        )
        .await
    {
        Ok(tokens) => tokens,
        Err(error) => return finish(flow, Err(error)),
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
            finish(flow, Ok(("connected", String::new())))
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

/// The end of a flow: back to the application's `return_url` with the outcome in the query, or
/// a page saying what happened.
fn finish(flow: &OAuthState, outcome: Result<(&'static str, String), OAuthError>) -> Outcome {
    if let Err(error) = &outcome {
        tracing::warn!(integration = %flow.integration, connection_id = %flow.connection_id, kind = ?error.kind(), %error, "OAuth flow failed");
    }
    if let Some(return_url) = flow
        .return_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
    {
        let mut location = return_url;
        {
            let mut query = location.query_pairs_mut();
            query.append_pair("integration", &flow.integration);
            query.append_pair("connection_id", &flow.connection_id);
            match &outcome {
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
        return Outcome::Redirect {
            location: location.into(),
            cookie: None,
        };
    }
    match outcome {
        Ok(("admin_consent", tenant)) => Outcome::page(
            StatusCode::OK,
            "Admin consent granted",
            format!(
                "An administrator of tenant {tenant} granted the permissions of `{}`. You can close this window.",
                flow.integration
            ),
        ),
        Ok(_) => Outcome::page(
            StatusCode::OK,
            "Connected",
            format!(
                "Your account is connected to `{}`. You can close this window.",
                flow.integration
            ),
        ),
        Err(error) => provider_failure(&error),
    }
}

/// A page explaining a classified OAuth failure.
fn provider_failure(error: &OAuthError) -> Outcome {
    let (status, title) = match error.kind() {
        OAuthErrorKind::UserDeclined => (StatusCode::BAD_REQUEST, "Access was declined"),
        OAuthErrorKind::InteractionRequired => {
            (StatusCode::BAD_REQUEST, "Sign-in or consent is needed")
        }
        OAuthErrorKind::ReconnectNeeded => (StatusCode::BAD_REQUEST, "Permission is missing"),
        OAuthErrorKind::CodeAlreadyUsed => {
            (StatusCode::BAD_REQUEST, "This sign-in was already used")
        }
        OAuthErrorKind::CallbackRejected => {
            (StatusCode::BAD_REQUEST, "Sign-in could not be completed")
        }
        OAuthErrorKind::IntegrationMisconfigured => {
            (StatusCode::BAD_GATEWAY, "The integration is misconfigured")
        }
        OAuthErrorKind::Transient => (StatusCode::BAD_GATEWAY, "The provider is unavailable"),
    };
    let detail = match error.description() {
        Some(description) => format!("{} (The provider said: {description})", error.fix()),
        None => error.fix().to_owned(),
    };
    Outcome::page(status, title, detail)
}

fn kind_code(kind: OAuthErrorKind) -> &'static str {
    match kind {
        OAuthErrorKind::ReconnectNeeded => "reconnect_needed",
        OAuthErrorKind::IntegrationMisconfigured => "integration_misconfigured",
        OAuthErrorKind::CodeAlreadyUsed => "code_already_used",
        OAuthErrorKind::CallbackRejected => "callback_rejected",
        OAuthErrorKind::UserDeclined => "user_declined",
        OAuthErrorKind::InteractionRequired => "interaction_required",
        OAuthErrorKind::Transient => "temporarily_unavailable",
    }
}

fn store_failure(error: plugboard_store::StoreError) -> Outcome {
    tracing::error!(%error, "store failure in an OAuth flow");
    Outcome::page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Plugboard could not save this sign-in. Try again later.",
    )
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}
