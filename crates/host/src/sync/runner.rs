//! One run of one sync for one connection.
//!
//! A run holds its (connection, sync)'s run lease in the store from start to finish, renewing
//! it while the provider works, so replicas sharing a database never run the same sync for the
//! same connection at once, and a replica that dies frees the sync when its lease expires.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use plugboard_core::http::resolve_url;
use plugboard_core::{PreviousRun, Record, RunInfo, SyncMode};
use serde_json::{Value, json};

use tracing::Instrument;

use super::context::{HostContext, Progress, Purpose};
use crate::activity;
use crate::integrations::Integration;
use crate::state::AppState;
use crate::telemetry::metrics;
use plugboard_store::{ActivityKind, ConnectionKey, RunCounts, RunLog, RunStatus, Store};

/// How long a run's lease lasts unless renewed: how long a sync stays blocked after its
/// replica died mid-run.
const RUN_LEASE: Duration = Duration::from_secs(15);
/// How often a running run renews its lease: a few renewals fit in one lease, so a slow store
/// write does not lose it.
const RUN_LEASE_RENEW: Duration = Duration::from_secs(5);

pub struct RunRequest {
    pub integration: Arc<Integration>,
    pub key: ConnectionKey,
    pub sync: String,
    pub mode: SyncMode,
    /// Store nothing; keep a sample of the records instead.
    pub dry_run: bool,
    /// For a run the schedule made due: not made when a run of the sync that started after
    /// this time succeeded (in any replica), so replicas that each found it due make it once.
    pub unless_succeeded_since: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct RunReport {
    /// `None` for a dry run, which is not recorded.
    pub run_id: Option<String>,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub requests: u64,
    pub records: u64,
    pub sample: Vec<Record>,
}

pub fn mode_name(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Incremental => "incremental",
        SyncMode::Full => "full",
    }
}

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum NotStarted {
    /// Another run of the sync for the connection holds its lease, in this process or another.
    #[error(
        "sync `{0}` is already running for this connection (here or in another Plugboard process sharing the store)"
    )]
    Busy(String),
    /// No such connection or sync, or a broken store.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for NotStarted {
    fn from(why: String) -> Self {
        NotStarted::Failed(why)
    }
}

/// Runs the sync to its end. `Err` only when it could not start; every failure of the run
/// itself is in the report, and recorded.
///
/// Everything it logs, the provider's own lines included, is written in a `sync_run` span
/// that carries the run id once the run has one.
pub async fn run_sync(
    state: &AppState,
    request: RunRequest,
    progress: Option<&(dyn Fn(Arc<Progress>) + Sync)>,
) -> Result<RunReport, NotStarted> {
    let span = tracing::info_span!(
        "sync_run",
        integration = %request.integration.name,
        sync = %request.sync,
        run_id = tracing::field::Empty,
    );
    run(state, request, progress).instrument(span).await
}

async fn run(
    state: &AppState,
    request: RunRequest,
    progress: Option<&(dyn Fn(Arc<Progress>) + Sync)>,
) -> Result<RunReport, NotStarted> {
    let RunRequest {
        integration,
        key,
        sync,
        mode,
        dry_run,
        unless_succeeded_since,
    } = request;
    let settings = state
        .syncs
        .sync_settings(&integration.name, &sync)
        .ok_or_else(|| format!("integration `{}` has no sync `{sync}`", integration.name))?;
    let store = state.connections.store().clone();
    let connection = state
        .connections
        .get(&key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no connection `{}` in integration `{}`",
                key.connection_id, key.integration
            )
        })?;
    let row = connection.id.clone();
    let previous = store
        .runs(&row, &sync, 1)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .map(|run| PreviousRun {
            started_at: run.started_at,
            finished_at: run.finished_at,
            succeeded: run.status == RunStatus::Success,
            error: run.error,
        });
    let started_at = Utc::now();
    let run_id = if dry_run {
        None
    } else {
        let lease_until = started_at + RUN_LEASE;
        Some(
            store
                .start_run(
                    &row,
                    &sync,
                    mode_name(mode),
                    lease_until,
                    started_at,
                    unless_succeeded_since,
                )
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| NotStarted::Busy(sync.clone()))?,
        )
    };
    if let Some(run_id) = &run_id {
        tracing::Span::current().record("run_id", run_id.as_str());
    }
    let mut early_logs = Vec::new();
    if !dry_run {
        let checkpoint = store
            .sync_state(&row, &sync)
            .await
            .map_err(|e| e.to_string())?
            .checkpoint;
        let base = integration
            .api_base_url(&connection.connection_config)
            .map_err(|e| e.to_string())?;
        let stale = checkpoint
            .as_ref()
            .and_then(|c| foreign_url(c, base.as_ref()));
        if mode == SyncMode::Full || stale.is_some() {
            if let Some(why) = stale.filter(|_| mode == SyncMode::Incremental) {
                let message = format!(
                    "dropping the checkpoint and crawling afresh: it points at {why}, which is not below the connection's API base URL {base} (did the base URL change?)"
                );
                tracing::warn!(integration = %key.integration, connection_id = %key.connection_id, %sync, "{message}");
                early_logs.push(RunLog {
                    at: Utc::now(),
                    level: "warn".into(),
                    message,
                });
            }
            store
                .set_checkpoint(&row, &sync, None)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    if let Some(run_id) = &run_id {
        keep_logs(store.as_ref(), run_id, std::mem::take(&mut early_logs)).await;
    }

    let run_info = RunInfo {
        connection_id: key.connection_id.clone(),
        connection_config: integration
            .spec()
            .resolve_connection_config(&connection.connection_config)
            .unwrap_or_else(|_| connection.connection_config.clone()),
        mode: if dry_run { SyncMode::Full } else { mode },
        previous,
        page_size: settings.page_size,
    };
    let purpose = match &run_id {
        Some(run_id) => Purpose::Sync {
            sync: sync.clone(),
            run_id: run_id.clone(),
        },
        None => Purpose::DryRun { sync: sync.clone() },
    };
    let outcome = match HostContext::new(
        state.clone(),
        integration.clone(),
        connection,
        run_info,
        purpose,
    ) {
        Ok(ctx) => {
            let ctx = Arc::new(ctx);
            if let Some(show) = progress {
                show(ctx.progress.clone());
            }
            let provider = integration.provider.clone();
            let name = sync.clone();
            let task_ctx = ctx.clone();
            // Its own task, so a panic in provider code fails this run and nothing else.
            let task = tokio::spawn(
                async move { provider.run_sync(&name, task_ctx.as_ref()).await }.in_current_span(),
            );
            let joined = match &run_id {
                Some(run_id) => holding_lease(store.as_ref(), run_id, task).await,
                None => Ok(task.await),
            };
            let error = match joined {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(error))) => Some(error.message),
                Ok(Err(join)) if join.is_panic() => Some(format!(
                    "the sync panicked: {}",
                    panic_message(join.into_panic())
                )),
                Ok(Err(_)) => Some("the sync was cancelled".to_owned()),
                Err(lost) => Some(lost),
            };
            Some((ctx, error))
        }
        Err(why) => {
            early_logs.push(RunLog {
                at: Utc::now(),
                level: "error".into(),
                message: why.clone(),
            });
            None
        }
    };
    let (ctx, error) = match outcome {
        Some((ctx, error)) => (Some(ctx), error),
        None => (
            None,
            Some("the connection's API base URL is invalid".to_owned()),
        ),
    };
    let finished_at = Utc::now();
    let status = if error.is_some() {
        RunStatus::Failed
    } else {
        RunStatus::Success
    };
    let counts = ctx.as_ref().map(|c| c.counts()).unwrap_or_default();
    if let Some(run_id) = &run_id {
        if let Some(ctx) = &ctx {
            ctx.flush_logs().await;
        }
        let mut logs = early_logs;
        if let Some(error) = &error {
            logs.push(RunLog {
                at: finished_at,
                level: "error".into(),
                message: error.clone(),
            });
        }
        keep_logs(store.as_ref(), run_id, logs).await;
        store
            .finish_run(run_id, status, counts, error.as_deref(), finished_at)
            .await
            .map_err(|e| e.to_string())?;
        let took = (finished_at - started_at).to_std().unwrap_or_default();
        metrics::sync_run(&key.integration, &sync, error.is_none(), took, counts);
        let summary = match &error {
            Some(error) => format!("sync `{sync}` failed: {error}"),
            None => format!(
                "sync `{sync}` ({} run): {} added, {} updated, {} deleted in {} ms",
                mode_name(mode),
                counts.added,
                counts.updated,
                counts.deleted,
                took.as_millis()
            ),
        };
        activity::record(
            store.as_ref(),
            ActivityKind::SyncRun,
            error.is_none(),
            Some(&key),
            summary,
            Some(run_id.clone()),
        )
        .await;
        match &error {
            Some(error) => {
                tracing::warn!(integration = %key.integration, connection_id = %key.connection_id, %sync, %error, "sync run failed");
            }
            None => {
                tracing::info!(integration = %key.integration, connection_id = %key.connection_id, %sync, added = counts.added, updated = counts.updated, deleted = counts.deleted, "sync run finished");
            }
        }
        if error.is_some() || counts.changed() {
            state.syncs.emit(
                if error.is_some() {
                    "sync.failed"
                } else {
                    "sync.completed"
                },
                json!({
                    "integration": key.integration,
                    "connection_id": key.connection_id,
                    "sync": sync,
                    "model": settings.model,
                    "run_id": run_id,
                    "mode": mode_name(mode),
                    "started_at": started_at,
                    "finished_at": finished_at,
                    "status": status.as_str(),
                    "added": counts.added,
                    "updated": counts.updated,
                    "deleted": counts.deleted,
                    "error": error,
                }),
            );
        }
    }
    let (requests, records, sample) = match &ctx {
        Some(ctx) => (
            ctx.progress
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
            ctx.progress
                .records
                .load(std::sync::atomic::Ordering::Relaxed),
            ctx.sample(),
        ),
        None => (0, 0, Vec::new()),
    };
    Ok(RunReport {
        run_id,
        status,
        counts,
        error,
        started_at,
        finished_at,
        requests,
        records,
        sample,
    })
}

/// Appends log lines to the run; losing them is logged, and does not fail the run.
async fn keep_logs(store: &dyn Store, run_id: &str, logs: Vec<RunLog>) {
    if let Err(error) = store.append_run_logs(run_id, &logs).await {
        tracing::warn!(%error, "keeping the run's log lines failed");
    }
}

/// Waits for the run's task, renewing its lease meanwhile. A lease found taken over (it expired
/// while this process stalled, and another run started) stops the task: the sync is the other
/// run's now.
async fn holding_lease<T>(
    store: &dyn Store,
    run_id: &str,
    mut task: tokio::task::JoinHandle<T>,
) -> Result<Result<T, tokio::task::JoinError>, String> {
    let start = tokio::time::Instant::now() + RUN_LEASE_RENEW;
    let mut renew = tokio::time::interval_at(start, RUN_LEASE_RENEW);
    loop {
        tokio::select! {
            joined = &mut task => return Ok(joined),
            _ = renew.tick() => match store.renew_run_lease(run_id, Utc::now() + RUN_LEASE).await {
                Ok(true) => {}
                Ok(false) => {
                    task.abort();
                    return Err("the run's lease expired and another run took the sync over (was this process stalled?); this run stopped".to_owned());
                }
                // The lease outlasts a few renewals: the next one may work.
                Err(error) => tracing::warn!(%error, "renewing the run's lease failed"),
            },
        }
    }
}

/// The first absolute URL in a checkpoint that no longer resolves below the API base URL.
/// Checkpoints are the provider's own JSON, so every string that looks like a URL is checked.
fn foreign_url(checkpoint: &Value, base: &url::Url) -> Option<String> {
    match checkpoint {
        Value::String(text) if text.starts_with("http://") || text.starts_with("https://") => {
            resolve_url(base, text).err().map(|_| {
                url::Url::parse(text)
                    .map(|u| format!("{}{}", u.origin().ascii_serialization(), u.path()))
                    .unwrap_or_else(|_| "an unreadable URL".to_owned())
            })
        }
        Value::Array(items) => items.iter().find_map(|v| foreign_url(v, base)),
        Value::Object(map) => map.values().find_map(|v| foreign_url(v, base)),
        _ => None,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_checkpoint_urls_outside_the_base() {
        let base = url::Url::parse("http://127.0.0.1:4000").unwrap();
        let here = json!({"next": {"url": "http://127.0.0.1:4000/v1.0/me/people?%24skip=100"}, "pages": 1});
        assert_eq!(foreign_url(&here, &base), None);
        let moved = json!({"next": {"url": "http://127.0.0.1:5000/v1.0/me/people?%24skip=100"}});
        assert_eq!(
            foreign_url(&moved, &base).as_deref(),
            Some("http://127.0.0.1:5000/v1.0/me/people")
        );
        assert_eq!(foreign_url(&json!({"next": null}), &base), None);
    }
}
