//! `POST /syncs/trigger`, `/syncs/pause`, `/syncs/start`, `/syncs/frequency` and
//! `GET /syncs/status`: controlling and watching the scheduler.
//!
//! Each control names an integration, optionally one connection (all of the integration's
//! otherwise) and the syncs it applies to (all when absent).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use plugboard_core::SyncMode;
use plugboard_core::spec::HumanDuration;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson, ApiQuery, AppState, ErrorBody};
use crate::sync::status::sync_views;
use plugboard_store::{Connection, ConnectionKey, RunLog, SyncRun, WebhookDelivery};

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

/// What a control applies to: the integration's connections (or one of them) and syncs (or
/// some of them).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Control {
    integration: String,
    /// One connection; all of the integration's when absent.
    connection_id: Option<String>,
    /// These syncs; all of the integration's when absent.
    syncs: Option<Vec<String>>,
    /// Only for `/syncs/trigger`: `incremental` (the default: from the checkpoint) or `full`
    /// (from scratch).
    #[schema(value_type = Option<String>, example = "incremental")]
    mode: Option<SyncMode>,
    /// Only for `/syncs/frequency`: a duration such as `30s`, or null for the default.
    frequency: Option<String>,
}

/// How many runs `/syncs/trigger` asked for.
#[derive(Serialize, ToSchema)]
struct Triggered {
    triggered: usize,
}

/// How many (connection, sync) pairs a control changed.
#[derive(Serialize, ToSchema)]
struct Updated {
    updated: usize,
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

/// Run syncs now
///
/// Each named sync of each named connection runs as soon as it is not already running.
#[utoipa::path(
    post,
    path = "/syncs/trigger",
    operation_id = "trigger_syncs",
    request_body = Control,
    responses(
        (status = 202, description = "The runs are scheduled.", body = Triggered),
        (status = 400, description = "A body that is not JSON (`invalid_body`), or an unknown \
            sync (`unknown_sync`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn trigger(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Control>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
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
        Json(Triggered {
            triggered: pairs.len(),
        }),
    ))
}

async fn set_paused(
    state: AppState,
    body: Control,
    paused: bool,
) -> Result<Json<Updated>, ApiError> {
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
    Ok(Json(Updated {
        updated: pairs.len(),
    }))
}

/// Pause syncs
///
/// The scheduler stops running them until `/syncs/start`; a run in progress finishes.
#[utoipa::path(
    post,
    path = "/syncs/pause",
    operation_id = "pause_syncs",
    request_body = Control,
    responses(
        (status = 200, description = "The syncs are paused.", body = Updated),
        (status = 400, description = "A body that is not JSON or has a `mode` \
            (`invalid_body`), or an unknown sync (`unknown_sync`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn pause(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Control>,
) -> Result<Json<Updated>, ApiError> {
    set_paused(state, body, true).await
}

/// Resume paused syncs
#[utoipa::path(
    post,
    path = "/syncs/start",
    operation_id = "start_syncs",
    request_body = Control,
    responses(
        (status = 200, description = "The syncs run at their frequency again.", body = Updated),
        (status = 400, description = "A body that is not JSON or has a `mode` \
            (`invalid_body`), or an unknown sync (`unknown_sync`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Control>,
) -> Result<Json<Updated>, ApiError> {
    set_paused(state, body, false).await
}

/// Set how often syncs run for one connection
#[utoipa::path(
    post,
    path = "/syncs/frequency",
    operation_id = "set_sync_frequency",
    request_body = Control,
    responses(
        (status = 200, description = "The frequency is set.", body = Updated),
        (status = 400, description = "A body that is not JSON (`invalid_body`), no \
            `connection_id` (`missing_connection_id`), a `frequency` that is not a duration \
            (`invalid_frequency`), or an unknown sync (`unknown_sync`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn frequency(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Control>,
) -> Result<Json<Updated>, ApiError> {
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
    Ok(Json(Updated {
        updated: pairs.len(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StatusQuery {
    integration: String,
    /// One connection; all of the integration's when absent.
    connection_id: Option<String>,
}

/// `GET /syncs/status`' answer.
#[derive(Serialize, ToSchema)]
struct SyncStatusList {
    syncs: Vec<SyncStatus>,
}

// Fields in alphabetical order here and below, as the JSON maps these types replaced wrote
// them.
/// One sync of one connection.
#[derive(Serialize, ToSchema)]
struct SyncStatus {
    connection_id: String,
    enabled: bool,
    /// How often it runs, such as `1h`.
    frequency: String,
    last_run: Option<RunSummary>,
    name: String,
    /// When the scheduler runs it next; null when it is disabled or paused.
    next_run_at: Option<DateTime<Utc>>,
    /// `running`, `paused`, `failed` (its last run) or `idle`.
    #[schema(example = "idle")]
    state: &'static str,
}

/// A run's outcome.
#[derive(Serialize, ToSchema)]
struct RunSummary {
    added: u64,
    deleted: u64,
    error: Option<String>,
    finished_at: Option<DateTime<Utc>>,
    started_at: DateTime<Utc>,
    /// `running`, `success` or `failed`.
    #[schema(example = "success")]
    status: &'static str,
    updated: u64,
}

impl RunSummary {
    fn of(run: &SyncRun) -> RunSummary {
        RunSummary {
            added: run.counts.added,
            deleted: run.counts.deleted,
            error: run.error.clone(),
            finished_at: run.finished_at,
            started_at: run.started_at,
            status: run.status.as_str(),
            updated: run.counts.updated,
        }
    }
}

/// The state of each sync
#[utoipa::path(
    get,
    path = "/syncs/status",
    operation_id = "sync_status",
    params(StatusQuery),
    responses(
        (status = 200, description = "Each sync of each connection.", body = SyncStatusList),
        (status = 400, description = "A query that cannot be read (`invalid_query`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn status(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Json<SyncStatusList>, ApiError> {
    let (connections, names) =
        targets(&state, &q.integration, q.connection_id.as_deref(), None).await?;
    let mut syncs = Vec::new();
    for connection in &connections {
        for view in sync_views(&state, connection, &names).await? {
            syncs.push(SyncStatus {
                connection_id: connection.key.connection_id.clone(),
                enabled: view.enabled,
                frequency: HumanDuration(view.frequency).to_string(),
                last_run: view.last_run.as_ref().map(RunSummary::of),
                name: view.name,
                next_run_at: view.next_run_at,
                state: view.state,
            });
        }
    }
    Ok(Json(SyncStatusList { syncs }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    integration: String,
    connection_id: String,
    /// The sync's name.
    sync: String,
    /// How many runs, 1 to 100 (default 10).
    limit: Option<u32>,
}

/// `GET /syncs/runs`' answer.
#[derive(Serialize, ToSchema)]
struct RunList {
    runs: Vec<Run>,
}

/// One run with the log lines it kept.
#[derive(Serialize, ToSchema)]
struct Run {
    #[serde(flatten)]
    outcome: RunSummary,
    id: String,
    logs: Vec<RunLogLine>,
    /// `incremental` or `full`.
    mode: String,
}

#[derive(Serialize, ToSchema)]
struct RunLogLine {
    at: DateTime<Utc>,
    level: String,
    message: String,
}

impl From<RunLog> for RunLogLine {
    fn from(log: RunLog) -> RunLogLine {
        RunLogLine {
            at: log.at,
            level: log.level,
            message: log.message,
        }
    }
}

/// The latest runs of a sync for a connection
///
/// Newest first, with the log lines each kept.
#[utoipa::path(
    get,
    path = "/syncs/runs",
    operation_id = "sync_runs",
    params(RunsQuery),
    responses(
        (status = 200, description = "The runs.", body = RunList),
        (status = 400, description = "An unknown sync (`unknown_sync`), or a query that cannot \
            be read (`invalid_query`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn runs(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<RunList>, ApiError> {
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
        let logs = store
            .run_logs(&run.id)
            .await?
            .into_iter()
            .map(RunLogLine::from)
            .collect();
        runs.push(Run {
            outcome: RunSummary::of(&run),
            id: run.id,
            logs,
            mode: run.mode,
        });
    }
    Ok(Json(RunList { runs }))
}

/// `GET /webhooks/deliveries`' answer.
#[derive(Serialize, ToSchema)]
struct DeliveryList {
    deliveries: Vec<Delivery>,
}

// Fields in alphabetical order, as the JSON map this replaced wrote them.
/// One webhook event and how its delivery went.
#[derive(Serialize, ToSchema)]
struct Delivery {
    attempts: u32,
    created_at: DateTime<Utc>,
    delivered: bool,
    /// Why the last attempt failed.
    error: Option<String>,
    /// The event's id, the same on every attempt.
    id: String,
    /// The receiver's last HTTP status.
    status: Option<u16>,
    /// The event's type, such as `connection.refresh_failed`.
    #[serde(rename = "type")]
    event_type: String,
}

impl From<WebhookDelivery> for Delivery {
    fn from(d: WebhookDelivery) -> Delivery {
        Delivery {
            attempts: d.attempts,
            created_at: d.created_at,
            delivered: d.delivered,
            error: d.error,
            id: d.id,
            status: d.status,
            event_type: d.event_type,
        }
    }
}

/// The latest webhook events and how their delivery went
///
/// The latest 100, newest first.
#[utoipa::path(
    get,
    path = "/webhooks/deliveries",
    tag = "webhooks",
    operation_id = "webhook_deliveries",
    responses((status = 200, description = "The deliveries.", body = DeliveryList)),
    security(("api_key" = []))
)]
async fn deliveries(State(state): State<AppState>) -> Result<Json<DeliveryList>, ApiError> {
    let deliveries = state
        .connections
        .store()
        .webhook_deliveries(100)
        .await?
        .into_iter()
        .map(Delivery::from)
        .collect();
    Ok(Json(DeliveryList { deliveries }))
}
