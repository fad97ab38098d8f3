//! One run of one sync for one connection.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use plugboard_core::http::resolve_url;
use plugboard_core::{PreviousRun, Record, RunInfo, SyncMode};
use serde_json::{Value, json};

use super::context::{HostContext, Progress, Purpose};
use crate::api::AppState;
use crate::integrations::Integration;
use crate::store::{ConnectionKey, RunCounts, RunLog, RunStatus};

pub struct RunRequest {
    pub integration: Arc<Integration>,
    pub key: ConnectionKey,
    pub sync: String,
    pub mode: SyncMode,
    /// Store nothing; keep a sample of the records instead.
    pub dry_run: bool,
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

/// Runs the sync to its end. `Err` only when it could not start (no such connection or sync,
/// a broken store); every failure of the run itself is in the report, and recorded.
pub async fn run_sync(
    state: &AppState,
    request: RunRequest,
    progress: Option<&(dyn Fn(Arc<Progress>) + Sync)>,
) -> Result<RunReport, String> {
    let RunRequest {
        integration,
        key,
        sync,
        mode,
        dry_run,
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
        Some(
            store
                .start_run(&row, &sync, mode_name(mode), started_at)
                .await
                .map_err(|e| e.to_string())?,
        )
    };
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

    let run_info = RunInfo {
        connection_id: key.connection_id.clone(),
        connection_config: integration
            .spec()
            .resolve_connection_config(&connection.connection_config)
            .unwrap_or_else(|_| connection.connection_config.clone()),
        mode: if dry_run { SyncMode::Full } else { mode },
        previous,
    };
    let purpose = if dry_run {
        Purpose::DryRun { sync: sync.clone() }
    } else {
        Purpose::Sync { sync: sync.clone() }
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
            let joined =
                tokio::spawn(async move { provider.run_sync(&name, task_ctx.as_ref()).await })
                    .await;
            let error = match joined {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.message),
                Err(join) if join.is_panic() => Some(format!(
                    "the sync panicked: {}",
                    panic_message(join.into_panic())
                )),
                Err(_) => Some("the sync was cancelled".to_owned()),
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
        let mut logs = early_logs;
        if let Some(ctx) = &ctx {
            logs.extend(ctx.take_logs());
        }
        if let Some(error) = &error {
            logs.push(RunLog {
                at: finished_at,
                level: "error".into(),
                message: error.clone(),
            });
        }
        if let Err(e) = store.append_run_logs(run_id, &logs).await {
            tracing::warn!(error = %e, "keeping the run's log lines failed");
        }
        store
            .finish_run(run_id, status, counts, error.as_deref(), finished_at)
            .await
            .map_err(|e| e.to_string())?;
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
