//! A sync's state for one connection as the scheduler and the store know it together: what
//! `GET /syncs/status` answers and the dashboard's Syncs tab shows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use plugboard_store::{Connection, RunStatus, StoreResult, SyncRun};

use crate::state::AppState;

/// One sync of one connection.
#[derive(Debug, Clone)]
pub struct SyncView {
    pub name: String,
    pub enabled: bool,
    /// The connection's own frequency, else the integration's.
    pub frequency: Duration,
    /// `running`, `paused`, `failed` (its last run) or `idle`.
    pub state: &'static str,
    pub paused: bool,
    /// The latest run that finished.
    pub last_run: Option<SyncRun>,
    /// When the scheduler runs it next; none when it is disabled or paused.
    pub next_run_at: Option<DateTime<Utc>>,
}

/// The named syncs of `connection`, in the order given; names the integration does not have
/// are left out.
pub async fn sync_views(
    state: &AppState,
    connection: &Connection,
    names: &[String],
) -> StoreResult<Vec<SyncView>> {
    let store = state.connections.store();
    let integration = &connection.key.integration;
    let mut views = Vec::new();
    for name in names {
        let Some(settings) = state.syncs.sync_settings(integration, name) else {
            continue;
        };
        let entry = state.syncs.schedule.entry(&connection.key, name).await;
        let sync_state = store.sync_state(&connection.id, name).await?;
        let runs = store.runs(&connection.id, name, 2).await?;
        let running = entry.as_ref().is_some_and(|e| e.running)
            || runs.first().is_some_and(|r| r.status == RunStatus::Running);
        let last_run = runs.into_iter().find(|r| r.status != RunStatus::Running);
        let state_name = if running {
            "running"
        } else if sync_state.paused {
            "paused"
        } else if last_run
            .as_ref()
            .is_some_and(|r| r.status == RunStatus::Failed)
        {
            "failed"
        } else {
            "idle"
        };
        views.push(SyncView {
            name: name.clone(),
            enabled: settings.enabled,
            frequency: sync_state
                .frequency_secs
                .map(Duration::from_secs)
                .unwrap_or(settings.frequency),
            state: state_name,
            paused: sync_state.paused,
            last_run,
            next_run_at: entry
                .filter(|e| settings.enabled && !e.paused)
                .map(|e| e.next_run_at),
        });
    }
    Ok(views)
}
