//! Starting a flow: the connect page a connect link opens, Continue, and the admin-consent
//! link; each takes the connect session, stores the flow's state bound to this browser and
//! sends the browser to the provider.

use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use super::finish::{Target, consenting_tenant, failed};
use super::{BROWSER_COOKIE, Outcome, STATE_LIFETIME, cookie, malformed_link, store_failure};
use crate::api::pages::{self, ConnectPage, ScopeLine};
use crate::api::{AppState, hash_token, random_token};
use crate::integrations::Integration;
use plugboard_store::{ConnectSession, Flow, OAuthState};

#[derive(Debug, Deserialize)]
pub(super) struct ConnectParams {
    session_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct AdminConsentParams {
    session_token: Option<String>,
    tenant: Option<String>,
}

/// Continue's form.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct ContinueForm {
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
pub(super) async fn connect_page(
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
    let integration = &*integration;
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
pub(super) async fn connect(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<ContinueForm>, FormRejection>,
) -> Response {
    if let Err(rejection) = &form
        && rejection.status() == StatusCode::PAYLOAD_TOO_LARGE
    {
        return Outcome::page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "This request is too large",
            "The form sent more than Plugboard accepts. Open the link from the application again.",
        )
        .respond(&state);
    }
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
    let integration = &*integration;
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
pub(super) fn provider_name(integration: &Integration) -> &str {
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
pub(super) async fn admin_consent(
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
    let integration = &*integration;
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

/// What a route does with a connect session.
#[derive(Debug, Clone, Copy)]
enum Use {
    /// Shows it: the connect page.
    Look,
    /// Starts its one flow.
    Take,
}

/// Finds the integration and the unexpired connect session for it.
async fn session_for(
    state: &AppState,
    name: &str,
    token: Option<&str>,
    using: Use,
) -> Result<(std::sync::Arc<Integration>, ConnectSession), Outcome> {
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
