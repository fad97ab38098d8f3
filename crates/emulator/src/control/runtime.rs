//! The emulator itself: virtual clock, faults, counters and settings.

use axum::Json;
use axum::extract::State;

use super::ControlError;
use super::types::{AdvanceClock, ClockInfo, Counters, FaultRule, Settings, UpdateSettings};
use crate::state::AppState;

pub async fn clock(State(state): State<AppState>) -> Json<ClockInfo> {
    Json(ClockInfo {
        now: state.clock.now(),
        offset_secs: state.clock.offset_secs(),
    })
}

pub async fn advance_clock(
    State(state): State<AppState>,
    Json(request): Json<AdvanceClock>,
) -> Json<ClockInfo> {
    let now = state.clock.advance(request.seconds);
    Json(ClockInfo {
        now,
        offset_secs: state.clock.offset_secs(),
    })
}

pub async fn faults(State(state): State<AppState>) -> Json<Vec<FaultRule>> {
    Json(state.faults.pending())
}

pub async fn add_fault(
    State(state): State<AppState>,
    Json(rule): Json<FaultRule>,
) -> Result<Json<Vec<FaultRule>>, ControlError> {
    Ok(Json(
        state.faults.add(rule).map_err(ControlError::BadRequest)?,
    ))
}

pub async fn clear_faults(State(state): State<AppState>) -> Json<Vec<FaultRule>> {
    state.faults.clear();
    Json(Vec::new())
}

pub async fn counters(State(state): State<AppState>) -> Json<Counters> {
    Json(state.counters.snapshot())
}

pub async fn reset_counters(State(state): State<AppState>) -> Json<Counters> {
    state.counters.reset();
    Json(state.counters.snapshot())
}

pub async fn settings(State(state): State<AppState>) -> Json<Settings> {
    Json(state.settings().clone())
}

pub async fn update_settings(
    State(state): State<AppState>,
    Json(update): Json<UpdateSettings>,
) -> Json<Settings> {
    let mut settings = state.settings();
    if let Some(throttling) = update.throttling {
        settings.throttling = throttling;
    }
    if let Some(latency) = update.graph_latency_ms {
        settings.graph_latency_ms = latency;
    }
    if let Some(rotation) = update.refresh_token_rotation {
        settings.refresh_token_rotation = rotation;
    }
    Json(settings.clone())
}
