//! `GET /ui/activity`: one log of operations across the deployment — token refreshes, sync
//! runs, actions, webhook deliveries, connections created and deleted — newest first,
//! filtered by operation, result, integration, connection and time window, with an
//! auto-refresh that needs no script; and redelivering a webhook event.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use plugboard_store::{Activity, ActivityFilter, ActivityKind, ConnectionKey};
use serde::Deserialize;
use url::form_urlencoded::Serializer;

use super::connection::connection_url;
use super::session::SignedIn;
use super::{Choice, Chrome, ConsoleError, format, integration_choices, render, see_other};
use crate::state::AppState;

/// Entries per page.
const PAGE: u32 = 50;
/// Seconds between reloads while auto-refresh is on.
const REFRESH_EVERY: u32 = 5;

/// The operation filter's choices.
const KINDS: [(ActivityKind, &str); 6] = [
    (ActivityKind::TokenRefresh, "Token refreshes"),
    (ActivityKind::SyncRun, "Sync runs"),
    (ActivityKind::Action, "Actions"),
    (ActivityKind::WebhookDelivery, "Webhook deliveries"),
    (ActivityKind::ConnectionCreated, "Connections created"),
    (ActivityKind::ConnectionDeleted, "Connections deleted"),
];

/// The time window's choices: a name and its length.
const WINDOWS: [(&str, &str, Option<chrono::Duration>); 5] = [
    ("1h", "Last hour", Some(chrono::Duration::hours(1))),
    ("24h", "Last 24 hours", Some(chrono::Duration::hours(24))),
    ("7d", "Last 7 days", Some(chrono::Duration::days(7))),
    ("30d", "Last 30 days", Some(chrono::Duration::days(30))),
    ("all", "All kept", None),
];

/// One entry as the pages show it.
pub struct ActivityRow {
    pub at: String,
    pub ago: String,
    pub kind: &'static str,
    pub succeeded: bool,
    pub integration: Option<String>,
    pub connection_id: String,
    pub connection_url: Option<String>,
    pub summary: String,
    /// A webhook delivery's id, which the Redeliver button posts.
    pub redeliver: Option<String>,
}

/// How one entry names its operation (the filter's [`KINDS`] name them in the plural).
fn kind_label(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::TokenRefresh => "Token refresh",
        ActivityKind::SyncRun => "Sync run",
        ActivityKind::Action => "Action",
        ActivityKind::WebhookDelivery => "Webhook delivery",
        ActivityKind::ConnectionCreated => "Connection created",
        ActivityKind::ConnectionDeleted => "Connection deleted",
    }
}

pub fn activity_rows(
    state: &AppState,
    entries: Vec<Activity>,
    now: DateTime<Utc>,
) -> Vec<ActivityRow> {
    entries
        .into_iter()
        .map(|entry| {
            let connection_url = match (&entry.integration, &entry.connection_id) {
                (Some(integration), Some(id)) if entry.kind != ActivityKind::ConnectionDeleted => {
                    Some(connection_url(
                        "auth",
                        &ConnectionKey::new(integration, id),
                        &[],
                    ))
                }
                _ => None,
            };
            let redeliver = (entry.kind == ActivityKind::WebhookDelivery
                && state.syncs.webhooks.is_some())
            .then(|| entry.reference.clone())
            .flatten();
            ActivityRow {
                at: format::when(entry.at),
                ago: format::relative(entry.at, now),
                kind: kind_label(entry.kind),
                succeeded: entry.succeeded,
                integration: entry.integration,
                connection_id: entry.connection_id.unwrap_or_default(),
                connection_url,
                summary: entry.summary,
                redeliver,
            }
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct ActivityQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    integration: String,
    #[serde(default)]
    connection_id: String,
    #[serde(default)]
    window: String,
    before: Option<i64>,
    /// `on` while auto-refresh is on.
    #[serde(default)]
    refresh: String,
}

impl ActivityQuery {
    /// This page's URL with `refresh` and `before` replaced.
    fn url(&self, refresh: bool, before: Option<i64>) -> String {
        let mut query = Serializer::new(String::new());
        for (name, value) in [
            ("kind", &self.kind),
            ("status", &self.status),
            ("integration", &self.integration),
            ("connection_id", &self.connection_id),
            ("window", &self.window),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        if let Some(before) = before {
            query.append_pair("before", &before.to_string());
        }
        if refresh {
            query.append_pair("refresh", "on");
        }
        format!("/ui/activity?{}", query.finish())
    }
}

/// What the filter form shows as chosen: the connection id typed, and each list's choices.
struct Chosen {
    connection_id: String,
    succeeded: bool,
    failed: bool,
}

#[derive(Template)]
#[template(path = "console/activity.html")]
struct ActivityHtml {
    chrome: Chrome,
    filter: Chosen,
    kinds: Vec<Choice>,
    windows: Vec<Choice>,
    integrations: Vec<Choice>,
    activity: Vec<ActivityRow>,
    refresh_toggle_url: String,
    next_url: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<ActivityQuery>,
) -> Result<Response, ConsoleError> {
    let kinds =
        match query.kind.as_str() {
            "" => Vec::new(),
            text => vec![ActivityKind::parse(text).ok_or_else(|| {
                ConsoleError::bad_request(format!("`{text}` is not an operation"))
            })?],
        };
    let succeeded = match query.status.as_str() {
        "" => None,
        "succeeded" => Some(true),
        "failed" => Some(false),
        other => {
            return Err(ConsoleError::bad_request(format!(
                "`{other}` is not a result: succeeded or failed"
            )));
        }
    };
    let window = if query.window.is_empty() {
        "24h"
    } else {
        query.window.as_str()
    };
    let length = WINDOWS
        .iter()
        .find(|(name, _, _)| *name == window)
        .ok_or_else(|| ConsoleError::bad_request(format!("`{window}` is not a time window")))?
        .2;
    let now = Utc::now();
    let entries = state
        .connections
        .store()
        .activity(&ActivityFilter {
            kinds,
            succeeded,
            integration: Some(query.integration.clone()).filter(|i| !i.is_empty()),
            connection_id: Some(query.connection_id.trim().to_owned()).filter(|c| !c.is_empty()),
            since: length.map(|length| now - length),
            until: None,
            before: query.before,
            limit: PAGE,
        })
        .await?;
    let refreshing = query.refresh == "on";
    let next_url = (entries.len() == PAGE as usize)
        .then(|| entries.last().map(|last| query.url(false, Some(last.id))))
        .flatten();
    render(ActivityHtml {
        chrome: Chrome {
            title: "Activity".to_owned(),
            section: "activity",
            csrf: signed_in.csrf(),
            notice: None,
            refresh_every: refreshing.then_some(REFRESH_EVERY),
        },
        refresh_toggle_url: query.url(!refreshing, None),
        next_url,
        activity: activity_rows(&state, entries, now),
        kinds: KINDS
            .iter()
            .map(|(kind, label)| Choice::new(kind.as_str(), label, &query.kind))
            .collect(),
        windows: WINDOWS
            .iter()
            .map(|(name, label, _)| Choice::new(name, label, window))
            .collect(),
        integrations: integration_choices(&state, &query.integration),
        filter: Chosen {
            succeeded: query.status == "succeeded",
            failed: query.status == "failed",
            connection_id: query.connection_id,
        },
    })
}

#[derive(Debug, Deserialize)]
pub struct RedeliverForm {
    #[serde(default)]
    csrf: String,
    delivery: String,
}

/// Sends a webhook event again, as it was first sent: the same body, id and signature.
pub async fn redeliver(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<RedeliverForm>,
) -> Result<Response, ConsoleError> {
    signed_in.check(&form.csrf)?;
    let webhooks = state.syncs.webhooks.as_ref().ok_or_else(|| {
        ConsoleError::bad_request("Webhooks are not configured ([webhooks] url).")
    })?;
    let delivery = state
        .connections
        .store()
        .webhook_delivery(&form.delivery)
        .await?
        .ok_or_else(|| {
            ConsoleError::not_found(format!("There is no webhook delivery `{}`.", form.delivery))
        })?;
    if delivery.body.is_empty() {
        return Err(ConsoleError::bad_request(
            "This event was recorded before Plugboard kept the events it sends, so it cannot be sent again.",
        ));
    }
    webhooks.redeliver(delivery);
    Ok(see_other(
        "/ui/activity?kind=webhook_delivery&window=24h&refresh=on",
    ))
}
