//! One connection's page, `GET /ui/connection/{tab}?integration=…&connection_id=…`, with its
//! tabs — Auth, Syncs, Records, Logs — and the forms they post: a fresh connect link, delete
//! (after a confirmation), and each sync's controls.
//!
//! Connection ids may hold any character, so they travel in the query, never in the path.

mod auth;
mod logs;
mod records;
mod syncs;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use plugboard_store::{Connection, ConnectionKey, ConnectionStatus};
use serde::Deserialize;
use url::form_urlencoded::Serializer;

use super::session::SignedIn;
use super::{Chrome, ConsoleError};
use crate::integrations::Integration;
use crate::state::AppState;

pub use auth::{connect_link, delete};
pub use syncs::control_sync;

/// The tabs, by path segment and label.
const TABS: [(&str, &str); 4] = [
    ("auth", "Auth"),
    ("syncs", "Syncs"),
    ("records", "Records"),
    ("logs", "Logs"),
];

/// What a finished form did, named in the redirect's `notice` and said on the page.
const NOTICES: [(&str, &str); 6] = [
    (
        "triggered",
        "The run is scheduled; it starts within seconds.",
    ),
    (
        "resync",
        "A full resync is scheduled; it starts within seconds.",
    ),
    ("paused", "The sync is paused; a run in progress finishes."),
    ("resumed", "The sync runs at its frequency again."),
    ("frequency", "The frequency is saved."),
    (
        "frequency_reset",
        "The frequency is back to the integration's.",
    ),
];

/// `/ui/connection/{tab}` for the connection, with more query parameters.
pub fn connection_url(tab: &str, key: &ConnectionKey, extra: &[(&str, &str)]) -> String {
    let mut query = Serializer::new(String::new());
    query.append_pair("integration", &key.integration);
    query.append_pair("connection_id", &key.connection_id);
    for (name, value) in extra {
        query.append_pair(name, value);
    }
    format!("/ui/connection/{tab}?{}", query.finish())
}

#[derive(Debug, Deserialize)]
pub struct Target {
    integration: String,
    connection_id: String,
    /// Records tab: the model, the last-action filter, the page's cursor and one record.
    #[serde(default)]
    model: String,
    #[serde(default)]
    action: String,
    after: Option<String>,
    record: Option<String>,
    /// Auth tab: `delete` asks to confirm the deletion.
    confirm: Option<String>,
    notice: Option<String>,
    /// The sync a control applies to.
    sync: Option<String>,
}

impl Target {
    fn key(&self) -> ConnectionKey {
        ConnectionKey::new(&self.integration, &self.connection_id)
    }
}

/// The connection and its integration, or the page saying there is none.
async fn find(
    state: &AppState,
    key: &ConnectionKey,
) -> Result<(Arc<Connection>, Arc<Integration>), ConsoleError> {
    let missing = || {
        ConsoleError::not_found(format!(
            "There is no connection `{}` in integration `{}`; it may have been deleted.",
            key.connection_id, key.integration
        ))
    };
    let integration = state
        .integrations
        .get(&key.integration)
        .ok_or_else(missing)?;
    let connection = state.connections.get(key).await?.ok_or_else(missing)?;
    Ok((connection, integration))
}

/// What every tab shows above its content.
struct Head {
    integration: String,
    connection_id: String,
    tab: &'static str,
    health: &'static str,
    health_label: &'static str,
    reason: Option<String>,
    tabs: Vec<(&'static str, &'static str, String)>,
}

impl Head {
    fn new(connection: &Connection, tab: &'static str) -> Head {
        let (health, health_label) = match connection.status {
            ConnectionStatus::Ok => ("healthy", "Connected"),
            ConnectionStatus::NeedsReconnect => ("needs_reconnect", "Needs reconnect"),
        };
        Head {
            integration: connection.key.integration.clone(),
            connection_id: connection.key.connection_id.clone(),
            tab,
            health,
            health_label,
            reason: connection.status_reason.clone(),
            tabs: TABS
                .iter()
                .map(|(name, label)| (*name, *label, connection_url(name, &connection.key, &[])))
                .collect(),
        }
    }
}

fn chrome(signed_in: &SignedIn, connection: &Connection, notice: Option<&str>) -> Chrome {
    Chrome {
        title: format!(
            "{} · {}",
            connection.key.connection_id, connection.key.integration
        ),
        section: "connections",
        csrf: signed_in.csrf(),
        notice: notice.and_then(|code| {
            NOTICES
                .iter()
                .find(|(name, _)| *name == code)
                .map(|(_, text)| *text)
        }),
        refresh_every: None,
    }
}

pub async fn tab(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(tab): Path<String>,
    Query(target): Query<Target>,
) -> Result<Response, ConsoleError> {
    let (connection, integration) = find(&state, &target.key()).await?;
    match tab.as_str() {
        "auth" => auth::tab(&state, &signed_in, &connection, &integration, &target, None).await,
        "syncs" => syncs::tab(&state, &signed_in, &connection, &target).await,
        "records" => records::tab(&state, &signed_in, &connection, &target).await,
        "logs" => logs::tab(&state, &signed_in, &connection, &target).await,
        other => Err(ConsoleError::not_found(format!(
            "A connection has no tab `{other}`: auth, syncs, records or logs."
        ))),
    }
}
