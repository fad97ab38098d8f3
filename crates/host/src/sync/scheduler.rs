//! Runs every enabled sync of every connection at its frequency.
//!
//! The schedule lives in memory and is rebuilt from the store at start-up: a sync whose last
//! run succeeded is next due one frequency after that run started; one that never ran, failed,
//! or was cut short by a crash is due at once (and resumes from its checkpoint). A connection
//! created while the server runs wakes the scheduler, so its syncs start on their own. Each
//! (connection, sync) has at most one run at a time; a run that overruns its frequency delays
//! the next one until it has finished.
//!
//! Replicas sharing a database each run this scheduler. The run lease (see `runner`) keeps
//! their runs of one sync apart: a replica that finds the sync running elsewhere tries again
//! shortly, keeping a triggered run asked for. Before a scheduled run each replica reads the
//! sync's last run from the store, so a run another replica finished counts for all of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use plugboard_core::SyncMode;
use tokio::sync::{Mutex, Notify};

use super::MAX_FREQUENCY;
use super::runner::{NotStarted, RunRequest, run_sync};
use crate::state::AppState;
use crate::telemetry::metrics;
use plugboard_store::{Connection, ConnectionKey, ConnectionStatus, RunStatus};

/// How often the scheduler looks for new connections when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);
/// A failed run is tried again after this, or after the sync's frequency if that is shorter.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(30);
/// A scheduled run whose sync is running in another replica is tried again after this.
const BUSY_RETRY: Duration = Duration::from_secs(2);
/// How often runs whose replica died (their lease expired) are marked failed, besides start-up;
/// their syncs are then due at once here, so a live replica resumes them from their checkpoints.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// What the scheduler knows of one (connection, sync).
#[derive(Debug, Clone)]
pub struct Entry {
    pub running: bool,
    pub paused: bool,
    /// The connection's own frequency, overriding the integration's, as stored: one set by an
    /// older build may exceed [`MAX_FREQUENCY`], so date arithmetic goes through [`after`].
    pub frequency: Option<Duration>,
    pub next_run_at: DateTime<Utc>,
    /// A run asked for through the API, started as soon as no run is in progress.
    pub triggered: Option<SyncMode>,
}

type EntryKey = (ConnectionKey, String);

#[derive(Default)]
pub struct Schedule {
    entries: Mutex<HashMap<EntryKey, Entry>>,
    wake: Notify,
}

impl Schedule {
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The entry, created from the store when the scheduler has not seen it yet.
    async fn with_entry<T>(
        &self,
        state: &AppState,
        connection: &Connection,
        sync: &str,
        change: impl FnOnce(&mut Entry) -> T,
    ) -> Result<T, String> {
        let key = (connection.key.clone(), sync.to_owned());
        if !self.entries.lock().await.contains_key(&key) {
            let entry = initial_entry(state, connection, sync).await?;
            self.entries
                .lock()
                .await
                .entry(key.clone())
                .or_insert(entry);
        }
        let mut entries = self.entries.lock().await;
        let entry = entries.get_mut(&key).expect("inserted above");
        Ok(change(entry))
    }

    /// A copy of the entry, if the scheduler knows it.
    pub async fn entry(&self, key: &ConnectionKey, sync: &str) -> Option<Entry> {
        self.entries
            .lock()
            .await
            .get(&(key.clone(), sync.to_owned()))
            .cloned()
    }

    pub async fn trigger(
        &self,
        state: &AppState,
        connection: &Connection,
        sync: &str,
        mode: SyncMode,
    ) -> Result<(), String> {
        self.with_entry(state, connection, sync, |entry| {
            // A full run asked for wins over an incremental one asked for earlier.
            if entry.triggered != Some(SyncMode::Full) {
                entry.triggered = Some(mode);
            }
        })
        .await?;
        self.wake();
        Ok(())
    }

    pub async fn set_paused(
        &self,
        state: &AppState,
        connection: &Connection,
        sync: &str,
        paused: bool,
    ) -> Result<(), String> {
        state
            .connections
            .store()
            .set_sync_paused(&connection.id, sync, paused)
            .await
            .map_err(|e| e.to_string())?;
        self.with_entry(state, connection, sync, |entry| entry.paused = paused)
            .await?;
        self.wake();
        Ok(())
    }

    pub async fn set_frequency(
        &self,
        state: &AppState,
        connection: &Connection,
        sync: &str,
        frequency: Option<Duration>,
    ) -> Result<(), String> {
        state
            .connections
            .store()
            .set_sync_frequency(&connection.id, sync, frequency.map(|f| f.as_secs()))
            .await
            .map_err(|e| e.to_string())?;
        self.with_entry(state, connection, sync, |entry| entry.frequency = frequency)
            .await?;
        self.wake();
        Ok(())
    }
}

impl Schedule {
    /// The integrations' sync settings changed (a configuration reload): idle entries are
    /// dropped, so the next tick builds them again from the store as it does at start-up, due
    /// one new frequency after their last run. Running or triggered ones stay, so nothing runs
    /// twice and no request is lost.
    pub async fn plan_again(&self) {
        self.entries
            .lock()
            .await
            .retain(|_, entry| entry.running || entry.triggered.is_some());
        self.wake();
    }

    /// Reads again from the store what another replica may have changed about the connection's
    /// syncs (paused, frequency); entries of a deleted connection are left to the next tick,
    /// which forgets them.
    pub async fn reload(&self, state: &AppState, key: &ConnectionKey) -> Result<(), String> {
        let syncs: Vec<String> = self
            .entries
            .lock()
            .await
            .keys()
            .filter(|(entry_key, _)| entry_key == key)
            .map(|(_, sync)| sync.clone())
            .collect();
        if syncs.is_empty() {
            return Ok(());
        }
        let store = state.connections.store();
        let Some(connection) = store.connection(key).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        for sync in syncs {
            let sync_state = store
                .sync_state(&connection.id, &sync)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(entry) = self
                .entries
                .lock()
                .await
                .get_mut(&(key.clone(), sync.clone()))
            {
                entry.paused = sync_state.paused;
                entry.frequency = sync_state.frequency_secs.map(Duration::from_secs);
            }
        }
        self.wake();
        Ok(())
    }
}

async fn initial_entry(
    state: &AppState,
    connection: &Connection,
    sync: &str,
) -> Result<Entry, String> {
    let store = state.connections.store();
    let sync_state = store
        .sync_state(&connection.id, sync)
        .await
        .map_err(|e| e.to_string())?;
    let frequency = sync_state.frequency_secs.map(Duration::from_secs);
    let default = state
        .syncs
        .sync_settings(&connection.key.integration, sync)
        .map_or(Duration::from_secs(3600), |s| s.frequency);
    let next_run_at = due_at(state, &connection.id, sync, frequency.unwrap_or(default)).await?;
    Ok(Entry {
        running: false,
        paused: sync_state.paused,
        frequency,
        next_run_at,
        triggered: None,
    })
}

/// When the sync is due by its history in the store: one frequency after its last run started
/// if that run succeeded; at once if it failed, was cut short, is still running (perhaps in
/// another replica, which the run lease then waits for) or never ran.
async fn due_at(
    state: &AppState,
    connection_row: &str,
    sync: &str,
    frequency: Duration,
) -> Result<DateTime<Utc>, String> {
    let last = state
        .connections
        .store()
        .runs(connection_row, sync, 1)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .next();
    Ok(match last {
        Some(run) if run.status == RunStatus::Success => after(run.started_at, frequency),
        _ => Utc::now(),
    })
}

/// A frequency as a chrono duration, for date arithmetic that must not panic: a frequency
/// stored by an older build, which did not bound it, may be far beyond any date, so anything
/// over [`MAX_FREQUENCY`] counts as the maximum.
fn signed(frequency: Duration) -> chrono::Duration {
    chrono::Duration::from_std(frequency.min(MAX_FREQUENCY)).unwrap_or(chrono::Duration::MAX)
}

/// One frequency after `at`, never panicking (see [`signed`]); the latest date there is if
/// even that overflows.
fn after(at: DateTime<Utc>, frequency: Duration) -> DateTime<Utc> {
    at.checked_add_signed(signed(frequency))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Marks failed the runs whose process stopped: their leases expired. Runs of live replicas
/// keep renewing theirs and are left alone. Whether any was.
async fn fail_interrupted_runs(state: &AppState) -> bool {
    match state
        .connections
        .store()
        .fail_interrupted_runs(Utc::now())
        .await
    {
        Ok(0) => false,
        Ok(n) => {
            tracing::warn!(
                runs = n,
                "runs cut short by a stop of their host were marked failed; they resume from their checkpoints"
            );
            true
        }
        Err(error) => {
            tracing::error!(%error, "marking interrupted runs failed");
            false
        }
    }
}

/// Brings forward every sync this scheduler knows whose last run failed, so a run another
/// replica left behind when it died is taken over here at once.
async fn reschedule_failed(state: &AppState) {
    let schedule = &state.syncs.schedule;
    let idle: Vec<EntryKey> = schedule
        .entries
        .lock()
        .await
        .iter()
        .filter(|(_, entry)| !entry.running)
        .map(|(key, _)| key.clone())
        .collect();
    let store = state.connections.store();
    for (key, sync) in idle {
        let last = match store.connection(&key).await {
            Ok(Some(connection)) => store.runs(&connection.id, &sync, 1).await,
            _ => continue,
        };
        if let Ok(Some(run)) = last.map(|runs| runs.into_iter().next())
            && run.status == RunStatus::Failed
            && let Some(entry) = schedule.entries.lock().await.get_mut(&(key, sync))
        {
            entry.next_run_at = entry.next_run_at.min(Utc::now());
        }
    }
    schedule.wake();
}

/// Starts the scheduler; it runs until the process ends.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        fail_interrupted_runs(&state).await;
        let mut swept = std::time::Instant::now();
        loop {
            if swept.elapsed() >= SWEEP_EVERY {
                if fail_interrupted_runs(&state).await {
                    reschedule_failed(&state).await;
                }
                swept = std::time::Instant::now();
            }
            let wait = match tick(&state).await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::error!(%error, "the sync scheduler could not read the store");
                    TICK
                }
            };
            let schedule = &state.syncs.schedule;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = schedule.wake.notified() => {}
            }
        }
    })
}

/// Starts every due run; how long until the next one may be due.
async fn tick(state: &AppState) -> Result<Duration, String> {
    let connections = state
        .connections
        .store()
        .connections(None)
        .await
        .map_err(|e| e.to_string())?;
    let schedule = &state.syncs.schedule;
    let now = Utc::now();
    let mut wait = TICK;
    let mut live = Vec::new();
    for connection in connections {
        let Some(integration) = state.integrations.get(&connection.key.integration) else {
            continue;
        };
        for settings in state.syncs.settings(&integration.name) {
            live.push((connection.key.clone(), settings.name.clone()));
            if !settings.enabled || connection.status == ConnectionStatus::NeedsReconnect {
                continue;
            }
            let start = schedule
                .with_entry(state, &connection, &settings.name, |entry| {
                    if entry.running || (entry.paused && entry.triggered.is_none()) {
                        return None;
                    }
                    if let Some(mode) = entry.triggered.take() {
                        entry.running = true;
                        return Some(Start::Triggered(mode));
                    }
                    if entry.next_run_at <= now {
                        entry.running = true;
                        return Some(Start::Scheduled);
                    }
                    if let Ok(until) = (entry.next_run_at - now).to_std() {
                        wait = wait.min(until);
                    }
                    None
                })
                .await?;
            if let Some(start) = start {
                spawn_run(
                    state.clone(),
                    integration.clone(),
                    &connection,
                    settings.name.clone(),
                    settings.frequency,
                    start,
                );
            }
        }
    }
    // Forget deleted connections (and syncs that no longer exist) unless a run is finishing.
    schedule
        .entries
        .lock()
        .await
        .retain(|key, entry| entry.running || live.contains(key));
    Ok(wait)
}

/// Why a run starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// Asked for through the API.
    Triggered(SyncMode),
    /// Due by the schedule.
    Scheduled,
}

fn spawn_run(
    state: AppState,
    integration: Arc<crate::integrations::Integration>,
    connection: &Connection,
    sync: String,
    default_frequency: Duration,
    start: Start,
) {
    let key = connection.key.clone();
    let row = connection.id.clone();
    tokio::spawn(async move {
        let schedule = &state.syncs.schedule;
        let entry_key = (key.clone(), sync.clone());
        let frequency = |entry: &Entry| entry.frequency.unwrap_or(default_frequency);
        // Counted as the maximum by `after`; said once per run so the operator can set it again.
        if let Some(stored) = schedule.entry(&key, &sync).await.and_then(|e| e.frequency)
            && stored > MAX_FREQUENCY
        {
            tracing::warn!(
                integration = %key.integration,
                connection_id = %key.connection_id,
                %sync,
                frequency_secs = stored.as_secs(),
                "the stored frequency is over the maximum of 365d (set by an older build); using 365d until it is set again through POST /syncs/frequency"
            );
        }
        let mode = match start {
            Start::Triggered(mode) => mode,
            Start::Scheduled => {
                // Another replica may have run it since this one last looked.
                let frequency = schedule
                    .entry(&key, &sync)
                    .await
                    .map_or(default_frequency, |e| frequency(&e));
                match due_at(&state, &row, &sync, frequency).await {
                    Ok(due) if due > Utc::now() => {
                        if let Some(entry) = schedule.entries.lock().await.get_mut(&entry_key) {
                            entry.running = false;
                            entry.next_run_at = due;
                        }
                        return;
                    }
                    Ok(due) => {
                        let late = (Utc::now() - due).to_std().unwrap_or_default();
                        metrics::run_start_delay(&key.integration, &sync, late);
                        SyncMode::Incremental
                    }
                    // The run lease still keeps runs apart; at worst the sync runs once more.
                    Err(error) => {
                        tracing::warn!(integration = %key.integration, connection_id = %key.connection_id, %sync, %error, "reading the sync's last run failed; running it anyway");
                        SyncMode::Incremental
                    }
                }
            }
        };
        let started = Utc::now();
        let unless_succeeded_since = match start {
            Start::Triggered(_) => None,
            Start::Scheduled => {
                let frequency = schedule
                    .entry(&key, &sync)
                    .await
                    .map_or(default_frequency, |e| frequency(&e));
                started.checked_sub_signed(signed(frequency))
            }
        };
        let request = RunRequest {
            integration,
            key: key.clone(),
            sync: sync.clone(),
            mode,
            dry_run: false,
            unless_succeeded_since,
        };
        let outcome = run_sync(&state, request, None).await;
        let finished = Utc::now();
        let mut entries = schedule.entries.lock().await;
        let Some(entry) = entries.get_mut(&entry_key) else {
            return;
        };
        entry.running = false;
        let succeeded = match outcome {
            Ok(report) => report.status == RunStatus::Success,
            Err(NotStarted::Busy(_)) => {
                // Running elsewhere: a triggered run is kept to start after it, a scheduled
                // one looks again soon. No wake-up: the next tick is soon enough.
                tracing::debug!(integration = %key.integration, connection_id = %key.connection_id, %sync, "the sync is running in another process; waiting");
                match start {
                    Start::Triggered(mode) if entry.triggered != Some(SyncMode::Full) => {
                        entry.triggered = Some(mode);
                    }
                    Start::Triggered(_) => {}
                    Start::Scheduled => entry.next_run_at = finished + BUSY_RETRY,
                }
                return;
            }
            Err(NotStarted::Failed(error)) => {
                tracing::error!(integration = %key.integration, connection_id = %key.connection_id, %sync, %error, "the sync could not start");
                false
            }
        };
        let frequency = frequency(entry);
        entry.next_run_at = if succeeded {
            after(started, frequency).max(finished)
        } else {
            after(finished, frequency.min(RETRY_FAILED_AFTER))
        };
        drop(entries);
        schedule.wake();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frequency an older build stored, such as `1000000000000d`, must not panic the
    /// scheduler: it counts as the maximum.
    #[test]
    fn a_frequency_over_the_maximum_counts_as_the_maximum() {
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let year_later = at + chrono::Duration::days(365);
        for stored in [
            MAX_FREQUENCY,
            Duration::from_secs(1_000_000_000_000 * 86_400),
            Duration::MAX,
        ] {
            assert_eq!(signed(stored), chrono::Duration::days(365));
            assert_eq!(after(at, stored), year_later);
            assert!(at.checked_sub_signed(signed(stored)).is_some());
        }
        assert_eq!(
            after(at, Duration::from_secs(90)),
            at + chrono::Duration::seconds(90)
        );
        assert_eq!(
            after(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
