//! `POST /syncs/trigger`, `/syncs/pause`, `/syncs/start`, `/syncs/frequency` and
//! `GET /syncs/status`: controlling and watching the scheduler.
//!
//! Each control names an integration, optionally one connection (all of the integration's
//! otherwise) and the syncs it applies to (all when absent).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use plugboard_core::SyncMode;
use plugboard_core::spec::HumanDuration;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, ApiQuery, AppState};
use plugboard_store::{Connection, ConnectionKey, RunStatus};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/syncs/trigger", post(trigger))
        .route("/syncs/pause", post(pause))
        .route("/syncs/start", post(start))
        .route("/syncs/frequency", post(frequency))
        .route("/syncs/status", get(status))
        .route("/syncs/runs", get(runs))
        .route("/webhooks/deliveries", get(deliveries))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Control {
    integration: String,
    connection_id: Option<String>,
    syncs: Option<Vec<String>>,
    mode: Option<SyncMode>,
    /// Only for `/syncs/frequency`: a duration such as `30s`, or null for the default.
    frequency: Option<String>,
}

/// The connections and sync names a control applies to.
async fn targets(
    state: &AppState,
    integration: &str,
    connection_id: Option<&str>,
    syncs: Option<&[String]>,
) -> Result<(Vec<Arc<Connection>>, Vec<String>), ApiError> {
    state.integration(integration)?;
    let declared = state.syncs.settings(integration);
    let names: Vec<String> = match syncs {
        Some(names) => {
            for name in names {
                if !declared.iter().any(|s| &s.name == name) {
                    return Err(ApiError::bad_request(
                        "unknown_sync",
                        format!("integration `{integration}` has no sync `{name}`"),
                    ));
                }
            }
            names.to_vec()
        }
        None => declared.iter().map(|s| s.name.clone()).collect(),
    };
    let connections = match connection_id {
        Some(id) => {
            let key = ConnectionKey::new(integration, id);
            vec![
                state
                    .connections
                    .get(&key)
                    .await?
                    .ok_or_else(|| ApiError::connection_not_found(id, integration))?,
            ]
        }
        None => state
            .connections
            .store()
            .connections(Some(integration))
            .await?
            .into_iter()
            .map(Arc::new)
            .collect(),
    };
    Ok((connections, names))
}

/// Every (connection, sync) pair a control request names: the body's syncs (or all of them) on
/// its connection (or all of the integration's connections).
async fn target_pairs(
    state: &AppState,
    body: &Control,
) -> Result<Vec<(Arc<Connection>, String)>, ApiError> {
    let (connections, names) = targets(
        state,
        &body.integration,
        body.connection_id.as_deref(),
        body.syncs.as_deref(),
    )
    .await?;
    Ok(connections
        .iter()
        .flat_map(|c| names.iter().map(move |n| (c.clone(), n.clone())))
        .collect())
}

fn scheduler_error(error: String) -> ApiError {
    tracing::error!(%error, "sync control failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store_error",
        "the store failed; see the server log",
    )
}

async fn trigger(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Control>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mode = body.mode.unwrap_or(SyncMode::Incremental);
    let pairs = target_pairs(&state, &body).await?;
    for (connection, name) in &pairs {
        state
            .syncs
            .schedule
            .trigger(&state, connection, name, mode)
            .await
            .map_err(scheduler_error)?;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"triggered": pairs.len()})),
    ))
}

async fn set_paused(state: AppState, body: Control, paused: bool) -> Result<Json<Value>, ApiError> {
    if body.mode.is_some() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "`mode` belongs to /syncs/trigger only",
        ));
    }
    let pairs = target_pairs(&state, &body).await?;
    for (connection, name) in &pairs {
        state
            .syncs
            .schedule
            .set_paused(&state, connection, name, paused)
            .await
            .map_err(scheduler_error)?;
    }
    Ok(Json(json!({"updated": pairs.len()})))
}

async fn pause(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Control>,
) -> Result<Json<Value>, ApiError> {
    set_paused(state, body, true).await
}

async fn start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Control>,
) -> Result<Json<Value>, ApiError> {
    set_paused(state, body, false).await
}

async fn frequency(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Control>,
) -> Result<Json<Value>, ApiError> {
    if body.connection_id.is_none() {
        return Err(ApiError::bad_request(
            "missing_connection_id",
            "a frequency is set per connection: name `connection_id`",
        ));
    }
    let frequency = body
        .frequency
        .as_deref()
        .map(|text| {
            crate::sync::parse_frequency(text).map_err(|why| {
                ApiError::bad_request("invalid_frequency", format!("`frequency`: {why}"))
            })
        })
        .transpose()?;
    let pairs = target_pairs(&state, &body).await?;
    for (connection, name) in &pairs {
        state
            .syncs
            .schedule
            .set_frequency(&state, connection, name, frequency)
            .await
            .map_err(scheduler_error)?;
    }
    Ok(Json(json!({"updated": pairs.len()})))
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    integration: String,
    connection_id: Option<String>,
}

async fn status(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Json<Value>, ApiError> {
    let (connections, names) =
        targets(&state, &q.integration, q.connection_id.as_deref(), None).await?;
    let store = state.connections.store();
    let mut syncs = Vec::new();
    for connection in &connections {
        for name in &names {
            let Some(settings) = state.syncs.sync_settings(&q.integration, name) else {
                continue;
            };
            let entry = state.syncs.schedule.entry(&connection.key, name).await;
            let sync_state = store.sync_state(&connection.id, name).await?;
            let runs = store.runs(&connection.id, name, 2).await?;
            let last = runs.iter().find(|r| r.status != RunStatus::Running);
            let running = entry.as_ref().is_some_and(|e| e.running)
                || runs.first().is_some_and(|r| r.status == RunStatus::Running);
            let state_name = if running {
                "running"
            } else if sync_state.paused {
                "paused"
            } else if last.is_some_and(|r| r.status == RunStatus::Failed) {
                "failed"
            } else {
                "idle"
            };
            let frequency = sync_state
                .frequency_secs
                .map(Duration::from_secs)
                .unwrap_or(settings.frequency);
            syncs.push(json!({
                "name": name,
                "connection_id": connection.key.connection_id,
                "state": state_name,
                "enabled": settings.enabled,
                "frequency": HumanDuration(frequency).to_string(),
                "next_run_at": entry
                    .filter(|e| settings.enabled && !e.paused)
                    .map(|e| e.next_run_at),
                "last_run": last.map(|run| json!({
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "status": run.status.as_str(),
                    "added": run.counts.added,
                    "updated": run.counts.updated,
                    "deleted": run.counts.deleted,
                    "error": run.error,
                })),
            }));
        }
    }
    Ok(Json(json!({ "syncs": syncs })))
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    integration: String,
    connection_id: String,
    sync: String,
    limit: Option<u32>,
}

/// `GET /syncs/runs`: the latest runs of a sync for a connection, newest first, with the log
/// lines each kept.
async fn runs(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let names = [q.sync.clone()];
    let (connections, _) = targets(
        &state,
        &q.integration,
        Some(q.connection_id.as_str()),
        Some(&names),
    )
    .await?;
    let store = state.connections.store();
    let mut runs = Vec::new();
    for run in store
        .runs(
            &connections[0].id,
            &q.sync,
            q.limit.unwrap_or(10).clamp(1, 100),
        )
        .await?
    {
        let logs: Vec<Value> = store
            .run_logs(&run.id)
            .await?
            .into_iter()
            .map(|log| json!({"at": log.at, "level": log.level, "message": log.message}))
            .collect();
        runs.push(json!({
            "id": run.id,
            "mode": run.mode,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "status": run.status.as_str(),
            "added": run.counts.added,
            "updated": run.counts.updated,
            "deleted": run.counts.deleted,
            "error": run.error,
            "logs": logs,
        }));
    }
    Ok(Json(json!({ "runs": runs })))
}

/// `GET /webhooks/deliveries`: the latest webhook events and how their delivery went.
async fn deliveries(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let deliveries: Vec<Value> = state
        .connections
        .store()
        .webhook_deliveries(100)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "type": d.event_type,
                "created_at": d.created_at,
                "attempts": d.attempts,
                "status": d.status,
                "error": d.error,
                "delivered": d.delivered,
            })
        })
        .collect();
    Ok(Json(json!({ "deliveries": deliveries })))
}
