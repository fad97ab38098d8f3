//! The Syncs tab: each sync's state, last and next run and frequency, and its controls — run
//! now, full resync, pause, resume, a new frequency — which act through the scheduler as the
//! API's do.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use plugboard_core::SyncMode;
use plugboard_core::spec::HumanDuration;
use plugboard_store::{Connection, ConnectionKey, RunStatus, SyncRun};
use serde::Deserialize;

use super::{Head, Target, chrome, connection_url, find};
use crate::console::session::SignedIn;
use crate::console::{Chrome, ConsoleError, format, render, see_other};
use crate::state::AppState;
use crate::sync::status::{SyncView, sync_views};

#[derive(Template)]
#[template(path = "console/syncs.html")]
struct SyncsHtml {
    chrome: Chrome,
    head: Head,
    syncs: Vec<SyncRow>,
}

struct SyncRow {
    name: String,
    state: &'static str,
    enabled: bool,
    last_run: String,
    next_run: String,
    frequency: String,
    action: String,
    controls: Vec<(&'static str, &'static str)>,
}

pub(super) async fn tab(
    state: &AppState,
    signed_in: &SignedIn,
    connection: &Connection,
    target: &Target,
) -> Result<Response, ConsoleError> {
    let names: Vec<String> = state
        .syncs
        .settings(&connection.key.integration)
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let now = Utc::now();
    let syncs = sync_views(state, connection, &names)
        .await?
        .into_iter()
        .map(|view| sync_row(&connection.key, view, now))
        .collect();
    render(SyncsHtml {
        chrome: chrome(signed_in, connection, target.notice.as_deref()),
        head: Head::new(connection, "syncs"),
        syncs,
    })
}

fn sync_row(key: &ConnectionKey, view: SyncView, now: DateTime<Utc>) -> SyncRow {
    let mut controls = vec![("trigger", "Run now"), ("resync", "Full resync")];
    controls.push(if view.paused {
        ("resume", "Resume")
    } else {
        ("pause", "Pause")
    });
    let next_run = match view.next_run_at {
        Some(at) => format::moment(Some(at), now, ""),
        None if !view.enabled => "never: the sync is disabled in the configuration".to_owned(),
        None if view.paused => "none while paused".to_owned(),
        None => "not scheduled yet".to_owned(),
    };
    SyncRow {
        last_run: view
            .last_run
            .as_ref()
            .map_or_else(|| "none yet".to_owned(), |run| run_outcome(run, now)),
        next_run,
        frequency: HumanDuration(view.frequency).to_string(),
        action: connection_url("sync", key, &[("sync", &view.name)]),
        controls,
        state: view.state,
        enabled: view.enabled,
        name: view.name,
    }
}

/// `success 3 min ago: 10 added, 5 updated, 3 deleted in 1.2 s`, or the run's error.
pub(super) fn run_outcome(run: &SyncRun, now: DateTime<Utc>) -> String {
    let when = format::relative(run.started_at, now);
    let took = run
        .finished_at
        .and_then(|end| (end - run.started_at).to_std().ok())
        .map(|d| format!(" in {}", format::duration(d)))
        .unwrap_or_default();
    let counts = format!(
        "{} added, {} updated, {} deleted",
        run.counts.added, run.counts.updated, run.counts.deleted
    );
    match (&run.status, &run.error) {
        (RunStatus::Failed, Some(error)) => {
            format!("failed {when} ({} run{took}): {error}; {counts}", run.mode)
        }
        (status, _) => format!(
            "{} {when} ({} run): {counts}{took}",
            status.as_str(),
            run.mode
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct SyncControl {
    #[serde(default)]
    csrf: String,
    control: String,
    #[serde(default)]
    frequency: String,
}

/// Run now, full resync, pause, resume or a new frequency, for one sync of the connection.
pub async fn control_sync(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(target): Query<Target>,
    Form(form): Form<SyncControl>,
) -> Result<Response, ConsoleError> {
    signed_in.check(&form.csrf)?;
    let (connection, _) = find(&state, &target.key()).await?;
    let sync = target.sync.as_deref().unwrap_or_default();
    if state
        .syncs
        .sync_settings(&connection.key.integration, sync)
        .is_none()
    {
        return Err(ConsoleError::not_found(format!(
            "Integration `{}` has no sync `{sync}`.",
            connection.key.integration
        )));
    }
    let schedule = &state.syncs.schedule;
    let notice = match form.control.as_str() {
        "trigger" => schedule
            .trigger(&state, &connection, sync, SyncMode::Incremental)
            .await
            .map(|()| "triggered"),
        "resync" => schedule
            .trigger(&state, &connection, sync, SyncMode::Full)
            .await
            .map(|()| "resync"),
        "pause" => schedule
            .set_paused(&state, &connection, sync, true)
            .await
            .map(|()| "paused"),
        "resume" => schedule
            .set_paused(&state, &connection, sync, false)
            .await
            .map(|()| "resumed"),
        "frequency" => {
            let text = form.frequency.trim();
            let frequency =
                if text.is_empty() {
                    None
                } else {
                    Some(crate::sync::parse_frequency(text).map_err(|why| {
                        ConsoleError::bad_request(format!("The frequency {why}."))
                    })?)
                };
            schedule
                .set_frequency(&state, &connection, sync, frequency)
                .await
                .map(|()| {
                    if frequency.is_some() {
                        "frequency"
                    } else {
                        "frequency_reset"
                    }
                })
        }
        other => {
            return Err(ConsoleError::bad_request(format!(
                "`{other}` is not a sync control."
            )));
        }
    }
    .map_err(|error| {
        tracing::error!(%error, "a sync control from the dashboard failed");
        ConsoleError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The store failed",
            "The change could not be saved; the server's log says why.",
        )
    })?;
    Ok(see_other(&connection_url(
        "syncs",
        &connection.key,
        &[("notice", notice)],
    )))
}
