//! The Auth tab: the account, its scopes, its token and its last refresh, a fresh connect link
//! for its end user, and deleting it after a confirmation. No token or client secret is shown.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::response::Response;
use chrono::Utc;
use plugboard_store::{ActivityFilter, ActivityKind, Connection};
use serde::Deserialize;
use url::form_urlencoded::Serializer;

use super::{Head, Target, chrome, connection_url, find};
use crate::api::{CreateSession, create_session};
use crate::console::session::SignedIn;
use crate::console::{Chrome, ConsoleError, format, render, see_other};
use crate::integrations::Integration;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/auth.html")]
struct AuthHtml {
    chrome: Chrome,
    head: Head,
    auth: Auth,
}

struct Auth {
    account: String,
    provider: String,
    client_credential: String,
    scopes_asked: Vec<String>,
    scopes_granted: Vec<String>,
    expires: String,
    updated: String,
    token_version: i64,
    last_refresh: String,
    created: String,
    oauth: bool,
    connect_link: Option<String>,
    connect_link_action: String,
    confirm_delete: bool,
    confirm_url: String,
    cancel_url: String,
    delete_action: String,
}

pub(super) async fn tab(
    state: &AppState,
    signed_in: &SignedIn,
    connection: &Connection,
    integration: &Integration,
    target: &Target,
    connect_link: Option<String>,
) -> Result<Response, ConsoleError> {
    let now = Utc::now();
    let key = &connection.key;
    let last_refresh = state
        .connections
        .store()
        .activity(&ActivityFilter {
            kinds: vec![ActivityKind::TokenRefresh],
            integration: Some(key.integration.clone()),
            connection_id: Some(key.connection_id.clone()),
            limit: 1,
            ..ActivityFilter::default()
        })
        .await?
        .into_iter()
        .next()
        .map_or_else(
            || "none recorded".to_owned(),
            |refresh| {
                let outcome = if refresh.succeeded {
                    "succeeded"
                } else {
                    "failed"
                };
                format!(
                    "{outcome} {}: {}",
                    format::relative(refresh.at, now),
                    refresh.summary
                )
            },
        );
    let (client_credential, scopes_asked) = match integration.oauth() {
        Ok(oauth) => (
            format::client_credential(integration.credentials_expire_on, now.date_naive()),
            oauth.config().scopes.clone(),
        ),
        Err(_) => (
            "none: each connection has its own API key".to_owned(),
            Vec::new(),
        ),
    };
    let action = |path: &str| {
        let mut query = Serializer::new(String::new());
        query.append_pair("integration", &key.integration);
        query.append_pair("connection_id", &key.connection_id);
        format!("/ui/connection/{path}?{}", query.finish())
    };
    render(AuthHtml {
        chrome: chrome(signed_in, connection, target.notice.as_deref()),
        head: Head::new(connection, "auth"),
        auth: Auth {
            account: format::account(connection.account.as_ref()),
            provider: integration.spec().display_name.clone(),
            client_credential,
            scopes_asked,
            scopes_granted: connection.tokens.scopes.clone(),
            expires: format::moment(connection.tokens.expires_at, now, "does not expire"),
            updated: format::moment(Some(connection.updated_at), now, ""),
            token_version: connection.token_version,
            last_refresh,
            created: format::moment(Some(connection.created_at), now, ""),
            oauth: integration.refreshes(),
            connect_link,
            connect_link_action: action("connect-link"),
            confirm_delete: target.confirm.as_deref() == Some("delete"),
            confirm_url: connection_url("auth", key, &[("confirm", "delete")]),
            cancel_url: connection_url("auth", key, &[]),
            delete_action: action("delete"),
        },
    })
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A new connect link for the connection's end user, shown once on the Auth tab.
pub async fn connect_link(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(target): Query<Target>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    signed_in.check(&form.csrf)?;
    let (connection, integration) = find(&state, &target.key()).await?;
    let session = create_session(
        &state,
        CreateSession {
            integration: target.integration.clone(),
            connection_id: target.connection_id.clone(),
            connection_config: connection.connection_config.clone(),
            return_url: None,
        },
    )
    .await
    .map_err(|error| ConsoleError::bad_request(error.message().to_owned()))?;
    tab(
        &state,
        &signed_in,
        &connection,
        &integration,
        &target,
        Some(session.connect_url),
    )
    .await
}

pub async fn delete(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(target): Query<Target>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    signed_in.check(&form.csrf)?;
    let key = target.key();
    state.connections.delete(&key).await?;
    tracing::info!(integration = %key.integration, connection_id = %key.connection_id, "connection deleted from the dashboard");
    Ok(see_other("/ui/connections"))
}
