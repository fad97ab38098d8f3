//! The Logs tab: the connection's latest runs, of every sync, with the lines each kept.

use askama::Template;
use axum::response::Response;
use chrono::Utc;
use plugboard_store::Connection;

use super::syncs::run_outcome;
use super::{Head, Target, chrome};
use crate::console::session::SignedIn;
use crate::console::{Chrome, ConsoleError, format, render};
use crate::state::AppState;

/// Runs on the Logs tab.
const RUNS_SHOWN: u32 = 20;

#[derive(Template)]
#[template(path = "console/logs.html")]
struct LogsHtml {
    chrome: Chrome,
    head: Head,
    runs: Vec<RunRow>,
}

struct RunRow {
    sync: String,
    started: String,
    status: &'static str,
    outcome: String,
    logs: Vec<String>,
}

pub(super) async fn tab(
    state: &AppState,
    signed_in: &SignedIn,
    connection: &Connection,
    target: &Target,
) -> Result<Response, ConsoleError> {
    let store = state.connections.store();
    let now = Utc::now();
    let mut runs = Vec::new();
    for settings in state.syncs.settings(&connection.key.integration) {
        runs.extend(
            store
                .runs(&connection.id, &settings.name, RUNS_SHOWN)
                .await?,
        );
    }
    runs.sort_by_key(|run| std::cmp::Reverse(run.started_at));
    runs.truncate(RUNS_SHOWN as usize);
    let mut rows = Vec::new();
    for run in runs {
        let logs = store
            .run_logs(&run.id)
            .await?
            .into_iter()
            .map(|line| {
                format!(
                    "{} {:<5} {}",
                    line.at.format("%H:%M:%S"),
                    line.level.to_uppercase(),
                    line.message
                )
            })
            .collect();
        rows.push(RunRow {
            started: format::moment(Some(run.started_at), now, ""),
            status: run.status.as_str(),
            outcome: run_outcome(&run, now),
            sync: run.sync_name,
            logs,
        });
    }
    render(LogsHtml {
        chrome: chrome(signed_in, connection, target.notice.as_deref()),
        head: Head::new(connection, "logs"),
        runs: rows,
    })
}
