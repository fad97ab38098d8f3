//! The browser side of OAuth: `/oauth/connect/{integration}`, `/oauth/admin-consent/{integration}`
//! and `/oauth/callback`, with the pages they show ([`pages`]).
//!
//! A connect link opens the connect page, which shows what the application asks for and
//! leaves the connect session in place; its Continue button posts the session token back to
//! the same path, which takes the session and starts the flow. So a link checker or a preview
//! that opens the link does not use it up, and the URL that starts a flow is never a link.
//!
//! A flow's `state` is random, stored hashed, lives 10 minutes and is taken exactly once. It is
//! also bound to the browser that started the flow by a cookie (stored hashed too): a callback
//! that arrives in another browser — a login CSRF, or a victim tricked into completing an
//! attacker's flow — is refused before any token request, as is an unknown, expired or replayed
//! state. Only then is the code redeemed, so a code is never sent to the token endpoint twice.

use std::collections::BTreeMap;

use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use plugboard_core::http::Credential;
use plugboard_core::oauth::{
    OAuthError, OAuthErrorKind, parse_admin_consent_callback, parse_callback,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::account::fetch_account;
use super::connect::{SESSION_LIFETIME, store_session};
use super::pages::{self, ConnectPage, Message, ScopeLine};
use super::{AppState, hash_token, random_token};
use crate::integrations::Integration;
use plugboard_store::{ConnectSession, Flow, NewConnection, OAuthState, TakenState, Tokens};

const STATE_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);
const BROWSER_COOKIE: &str = "plugboard_oauth";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/oauth/connect/{integration}",
            get(connect_page).post(connect),
        )
        .route("/oauth/admin-consent/{integration}", get(admin_consent))
        .route("/oauth/callback", get(callback))
        .merge(pages::routes())
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

/// What a browser route answers: a redirect, or a page.
enum Outcome {
    Redirect {
        location: String,
        cookie: Option<String>,
    },
    Page(Message),
}

impl Outcome {
    fn page(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Outcome::Page(Message::new(status, title, detail))
    }

    fn respond(self, state: &AppState) -> Response {
        match self {
            Outcome::Redirect { location, cookie } => {
                let mut response = StatusCode::FOUND.into_response();
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(LOCATION, value);
                }
                if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    response.headers_mut().insert(SET_COOKIE, value);
                }
                pages::harden(state, response.headers_mut());
                response
            }
            Outcome::Page(page) => pages::message(state, &page),
        }
    }
}

/// Continue's form.
#[derive(Debug, Deserialize, ToSchema)]
struct ContinueForm {
    /// The connect session's token, from the connect page.
    session_token: Option<String>,
}

/// The connect page. It only looks at the session, which stays good for Continue.
#[utoipa::path(
    get,
    path = "/oauth/connect/{integration}",
    tag = "oauth",
    operation_id = "oauth_connect_page",
    summary = "The connect page a connect session's `connect_url` opens",
    description = "Shows the end user the provider, each scope the integration asks for with \
        its description, and a Continue button. Showing it leaves the session good for one flow.",
    params(
        ("integration" = String, Path, description = "The integration."),
        ("session_token" = String, Query, description = "The connect session's token."),
    ),
    responses(
        (status = 200, description = "The connect page.", body = String,
            content_type = "text/html"),
        (status = 400, description = "A page: the link is malformed, unknown or expired.",
            body = String, content_type = "text/html"),
        (status = 404, description = "A page: no such integration.", body = String,
            content_type = "text/html"),
        (status = 500, description = "A page: the store failed.", body = String,
            content_type = "text/html"),
    )
)]
async fn connect_page(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<ConnectParams>, QueryRejection>,
) -> Response {
    let (Ok(Path(name)), Ok(Query(params))) = (name, params) else {
        return malformed_link().respond(&state);
    };
    let token = params.session_token.as_deref();
    let (integration, session) = match session_for(&state, &name, token, Use::Look).await {
        Ok(found) => found,
        Err(outcome) => return outcome.respond(&state),
    };
    let oauth = match integration.oauth() {
        Ok(oauth) => oauth,
        Err(error) => {
            return failed(&state, integration, Target::from(&session), &error)
                .await
                .respond(&state);
        }
    };
    let spec = &oauth.config().spec;
    let scopes = oauth
        .config()
        .scopes
        .iter()
        .map(|name| {
            let declared = spec.scope(name);
            ScopeLine {
                name,
                description: declared.map_or("", |scope| scope.description.as_str()),
                admin_only: declared.is_some_and(|scope| scope.admin_consent),
            }
        })
        .collect();
    let page = ConnectPage {
        provider: provider_name(integration),
        scopes,
        action: pages::public_url(&state, &format!("/oauth/connect/{name}")),
        session_token: token.unwrap_or_default(),
    };
    pages::connect(&state, &page)
}

/// Continue: takes the session and sends the browser to the provider.
#[utoipa::path(
    post,
    path = "/oauth/connect/{integration}",
    tag = "oauth",
    operation_id = "oauth_connect",
    summary = "The connect page's Continue: start the authorization",
    description = "Takes the connect session (a link starts one flow) and sends the browser to \
        the provider's authorization URL, bound to this browser by a cookie.",
    params(("integration" = String, Path, description = "The integration.")),
    request_body(content = ContinueForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 302, description = "To the provider's authorization URL.", headers(
            ("Location" = String, description = "The authorization URL."),
        )),
        (status = 400, description = "A page: the form is malformed, or the session unknown, \
            expired or already used.", body = String, content_type = "text/html"),
        (status = 404, description = "A page: no such integration.", body = String,
            content_type = "text/html"),
        (status = 500, description = "A page: the store failed.", body = String,
            content_type = "text/html"),
        (status = 502, description = "A page: the integration is misconfigured.", body = String,
            content_type = "text/html"),
    )
)]
async fn connect(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<ContinueForm>, FormRejection>,
) -> Response {
    let (Ok(Path(name)), Ok(Form(form))) = (name, form) else {
        return malformed_link().respond(&state);
    };
    start_connect(&state, &name, form.session_token.as_deref(), &headers)
        .await
        .respond(&state)
}

async fn start_connect(
    state: &AppState,
    name: &str,
    token: Option<&str>,
    headers: &HeaderMap,
) -> Outcome {
    let (integration, session) = match session_for(state, name, token, Use::Take).await {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let request = match integration
        .oauth()
        .and_then(|oauth| oauth.authorization_request(&session.connection_config, &[]))
    {
        Ok(request) => request,
        Err(error) => return failed(state, integration, Target::from(&session), &error).await,
    };
    let flow = FlowStart {
        flow: Flow::Connect,
        session,
        pkce_verifier: request.pkce_verifier,
        state: request.state,
    };
    start_flow(state, headers, flow, request.url).await
}

/// The provider's name as the end user knows it.
fn provider_name(integration: &Integration) -> &str {
    let spec = integration.spec();
    if spec.display_name.is_empty() {
        &spec.id
    } else {
        &spec.display_name
    }
}

#[utoipa::path(
    get,
    path = "/oauth/admin-consent/{integration}",
    tag = "oauth",
    operation_id = "oauth_admin_consent",
    summary = "Start admin consent for an organisation",
    description = "Takes the connect session and sends an administrator's browser to the \
        provider's admin consent URL for `tenant`.",
    params(
        ("integration" = String, Path, description = "The integration."),
        ("session_token" = String, Query, description = "A connect session's token."),
        ("tenant" = String, Query, description = "The organisation: its id, a verified domain \
            or `organizations` (not `common` or `consumers`)."),
    ),
    responses(
        (status = 302, description = "To the provider's admin consent URL.", headers(
            ("Location" = String, description = "The admin consent URL."),
        )),
        (status = 400, description = "A page: the link is malformed, unknown or expired, no \
            usable tenant, or no scope of the integration needs admin consent.", body = String,
            content_type = "text/html"),
        (status = 404, description = "A page: no such integration.", body = String,
            content_type = "text/html"),
        (status = 500, description = "A page: the store failed.", body = String,
            content_type = "text/html"),
        (status = 502, description = "A page: the integration is misconfigured.", body = String,
            content_type = "text/html"),
    )
)]
async fn admin_consent(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<AdminConsentParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let (Ok(Path(name)), Ok(Query(params))) = (name, params) else {
        return malformed_link().respond(&state);
    };
    start_admin_consent(&state, &name, params, &headers)
        .await
        .respond(&state)
}

async fn start_admin_consent(
    state: &AppState,
    name: &str,
    params: AdminConsentParams,
    headers: &HeaderMap,
) -> Outcome {
    let token = params.session_token.as_deref();
    let (integration, mut session) = match session_for(state, name, token, Use::Take).await {
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
    let tenant = match consenting_tenant(params.tenant.as_deref()) {
        Some(t) => t.to_owned(),
        None => {
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
        Err(error) => return failed(state, integration, Target::from(&session), &error).await,
    };
    let flow = FlowStart {
        flow: Flow::AdminConsent,
        session,
        pkce_verifier: None,
        state: flow_state,
    };
    start_flow(state, headers, flow, url).await
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

/// What a route does with a connect session.
#[derive(Debug, Clone, Copy)]
enum Use {
    /// Shows it: the connect page.
    Look,
    /// Starts its one flow.
    Take,
}

/// Finds the integration and the unexpired connect session for it.
async fn session_for<'s>(
    state: &'s AppState,
    name: &str,
    token: Option<&str>,
    using: Use,
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
    let hash = hash_token(token.ok_or_else(expired)?);
    let store = state.connections.store();
    let found = match using {
        Use::Look => store.connect_session(&hash, Utc::now()).await,
        Use::Take => store.take_connect_session(&hash, Utc::now()).await,
    };
    let session = found
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
async fn callback(
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
        Flow::Connect => complete_connect(state, integration, &flow, query).await,
        Flow::AdminConsent => match parse_admin_consent_callback(query) {
            Ok(consent) => {
                tracing::info!(integration = %flow.integration, tenant = %consent.tenant, "admin consent granted");
                finish(state, integration, &flow, ("admin_consent", consent.tenant))
            }
            Err(error) => failed(state, integration, Target::from(&flow), &error).await,
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
    let tokens = match oauth
        .exchange_code(
            &flow.connection_config,
            &code.code,
            flow.pkce_verifier.as_ref(),
        )
        .await
    {
        Ok(tokens) => tokens,
        Err(error) => return fail(&error).await,
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
struct Target<'a> {
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
async fn failed(
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
fn consenting_tenant(tenant: Option<&str>) -> Option<&str> {
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

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}
