//! The management listener (`[server] management_bind`): Prometheus metrics and health checks,
//! on an address of their own so that a deployment never exposes them with the public API.
//!
//! `/health/live` answers while the process serves at all (restart it otherwise);
//! `/health/ready` only when it can do its work: the store answers, its schema is the one this
//! build migrates to, and the providers are loaded. A load balancer sends traffic to ready
//! replicas only. A store that refuses writes (its disk full, or read-only) leaves the server
//! ready: it still serves reads and the proxy, and every replica shares the store, so taking
//! them out would turn a write outage into a total one; each refused write answers 503
//! `store_unavailable` with the reason instead.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;

use crate::listener::{self, Limits};
use crate::state::AppState;

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The exposition format's media type, which Prometheus negotiates.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct Management {
    state: AppState,
    metrics: PrometheusHandle,
}

fn router(state: AppState, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(Management { state, metrics })
}

/// Makes the process record metrics and serves the management routes on `listener` until the
/// task is aborted.
pub fn spawn(
    listener: TcpListener,
    limits: Limits,
    state: AppState,
) -> tokio::task::JoinHandle<()> {
    let metrics = super::metrics::install();
    tokio::spawn(async move {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, "management listener (metrics, health) listening");
        }
        let upkeep = keep_up(metrics.clone());
        let router = router(state, metrics);
        let served = listener::serve(
            listener,
            limits,
            move |_| router.clone(),
            std::future::pending(),
        );
        tokio::select! {
            () = served => {}
            () = upkeep => {}
        }
    })
}

/// The exporter keeps each histogram's samples until it folds them into buckets; folding them
/// regularly keeps memory flat whether or not anything scrapes.
async fn keep_up(metrics: PrometheusHandle) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    loop {
        every.tick().await;
        metrics.run_upkeep();
    }
}

async fn render_metrics(State(management): State<Management>) -> Response {
    (
        [(CONTENT_TYPE, PROMETHEUS_TEXT)],
        management.metrics.render(),
    )
        .into_response()
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

async fn ready(State(management): State<Management>) -> (StatusCode, Json<serde_json::Value>) {
    let state = &management.state;
    let providers = state.integrations.iter().count();
    let store = match state.connections.store().schema_version().await {
        Ok(version) if version.is_current() => Ok(version.expected),
        Ok(version) => Err(match version.applied {
            Some(applied) if applied > version.expected => format!(
                "the database's schema is at migration {applied}, newer than this build's {} (a newer Plugboard migrated it)",
                version.expected
            ),
            applied => format!(
                "the database's schema is at migration {}, this build needs {}",
                applied.unwrap_or(0),
                version.expected
            ),
        }),
        Err(error) => Err(error.to_string()),
    };
    match store {
        Ok(schema) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "checks": {"store": "ok", "schema": schema, "integrations": providers},
            })),
        ),
        Err(problem) => {
            tracing::warn!(%problem, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "not_ready",
                    "checks": {"store": problem, "integrations": providers},
                })),
            )
        }
    }
}
