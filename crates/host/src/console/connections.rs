//! `GET /ui/connections`: every connection, searchable by connection id, account name or
//! email, filtered by integration and health, a page at a time (keyset paging, so the 10,000th
//! connection is as quick to reach as the first).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use plugboard_store::{ConnectionFilter, ConnectionHealth, ConnectionKey, ConnectionSummary};
use serde::Deserialize;
use url::form_urlencoded::Serializer;

use super::connection::connection_url;
use super::session::SignedIn;
use super::{Choice, Chrome, ConsoleError, format, integration_choices, render};
use crate::state::AppState;

/// Connections per page.
const PAGE: u32 = 50;

/// The health filter's choices, as the store names them and as the page says them.
pub const HEALTHS: [(&str, &str); 4] = [
    ("healthy", "Healthy"),
    ("needs_reconnect", "Needs reconnect"),
    ("sync_failing", "Sync failing"),
    ("paused", "Paused"),
];

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    integration: String,
    #[serde(default)]
    status: String,
    /// The last connection of the previous page.
    after_integration: Option<String>,
    after_id: Option<String>,
}

#[derive(Template)]
#[template(path = "console/connections.html")]
struct ConnectionsHtml {
    chrome: Chrome,
    search: String,
    integrations: Vec<Choice>,
    statuses: Vec<Choice>,
    rows: Vec<Row>,
    next_url: Option<String>,
}

struct Row {
    url: String,
    connection_id: String,
    integration: String,
    account: String,
    health: &'static str,
    health_label: &'static str,
    reason: Option<String>,
    expires: String,
    created: String,
    created_at: String,
}

/// The list's URL with these filters, continuing after `after` when given.
pub fn list_url(
    integration: Option<&str>,
    status: Option<&str>,
    search: &str,
    after: Option<&ConnectionKey>,
) -> String {
    let mut query = Serializer::new(String::new());
    if !search.is_empty() {
        query.append_pair("q", search);
    }
    if let Some(integration) = integration.filter(|i| !i.is_empty()) {
        query.append_pair("integration", integration);
    }
    if let Some(status) = status.filter(|s| !s.is_empty()) {
        query.append_pair("status", status);
    }
    if let Some(after) = after {
        query.append_pair("after_integration", &after.integration);
        query.append_pair("after_id", &after.connection_id);
    }
    let query = query.finish();
    if query.is_empty() {
        "/ui/connections".to_owned()
    } else {
        format!("/ui/connections?{query}")
    }
}

pub fn health_label(health: ConnectionHealth) -> &'static str {
    HEALTHS
        .iter()
        .find(|(value, _)| *value == health.as_str())
        .map_or("", |(_, label)| label)
}

pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let health = match query.status.as_str() {
        "" => None,
        text => Some(ConnectionHealth::parse(text).ok_or_else(|| {
            ConsoleError::bad_request(format!("`{text}` is not a connection status"))
        })?),
    };
    let after = match (&query.after_integration, &query.after_id) {
        (Some(integration), Some(id)) => Some(ConnectionKey::new(integration, id)),
        _ => None,
    };
    let page = state
        .connections
        .store()
        .connection_summaries(&ConnectionFilter {
            integration: Some(query.integration.clone()).filter(|i| !i.is_empty()),
            health,
            search: Some(query.q.trim().to_owned()).filter(|q| !q.is_empty()),
            after,
            limit: PAGE,
        })
        .await?;
    let now = Utc::now();
    let rows = page.connections.into_iter().map(|c| row(c, now)).collect();
    let next_url = page.next.as_ref().map(|next| {
        list_url(
            Some(&query.integration),
            Some(&query.status),
            query.q.trim(),
            Some(next),
        )
    });
    render(ConnectionsHtml {
        chrome: Chrome {
            title: "Connections".to_owned(),
            section: "connections",
            csrf: signed_in.csrf(),
            notice: None,
            refresh_every: None,
        },
        integrations: integration_choices(&state, &query.integration),
        statuses: HEALTHS
            .iter()
            .map(|(value, label)| Choice::new(value, label, &query.status))
            .collect(),
        search: query.q,
        rows,
        next_url,
    })
}

fn row(connection: ConnectionSummary, now: chrono::DateTime<Utc>) -> Row {
    Row {
        url: connection_url("auth", &connection.key, &[]),
        account: format::account(connection.account.as_ref()),
        health: connection.health.as_str(),
        health_label: health_label(connection.health),
        reason: connection.status_reason,
        expires: format::moment(connection.expires_at, now, "does not expire"),
        created: format::relative(connection.created_at, now),
        created_at: format::when(connection.created_at),
        connection_id: connection.key.connection_id,
        integration: connection.key.integration,
    }
}
