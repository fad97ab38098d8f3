//! Graph (`graph.microsoft.com`): `/me`, `/me/people` and `/users/{id}/people`, under both
//! `/v1.0` and `/beta`.

mod auth;
pub mod error;
mod me;
mod people;
mod query;

use axum::Router;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::routing::get;

use crate::state::AppState;
use crate::throttle::{Admission, Throttled};
use auth::Caller;
use error::GraphError;

pub fn routes() -> Router<AppState> {
    let version = || {
        Router::new()
            .route("/me", get(me::me))
            .route("/me/people", get(people::my_people))
            .route("/users/{user}/people", get(people::user_people))
    };
    Router::new()
        .nest("/v1.0", version())
        .nest("/beta", version())
}

pub fn is_graph_path(path: &str) -> bool {
    path.starts_with("/v1.0/") || path.starts_with("/beta/")
}

/// Admits a request to a mailbox (or refuses it with a 429), then waits out the configured
/// latency while holding its concurrency slot, as a slow real request would.
async fn admit(state: &AppState, caller: &Caller, mailbox: &str) -> Result<Admission, GraphError> {
    let settings = state.settings().throttling.clone();
    let admission = state
        .throttle
        .admit(
            &caller.client_id,
            mailbox,
            &settings,
            state.clock.now(),
            &state.counters,
        )
        .map_err(|throttled| match throttled {
            Throttled::Concurrency { retry_after_secs } => GraphError::throttled(
                "Application is over its MailboxConcurrency limit.",
                retry_after_secs,
            ),
            Throttled::Budget { retry_after_secs } => GraphError::throttled(
                "Application is over its MailboxRequests limit.",
                retry_after_secs,
            ),
        })?;
    let latency = state.graph_latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    Ok(admission)
}

/// The request's own URL root (from its `Host` header) and path, so that next links and
/// `@odata.context` point back at whatever address the client used.
pub struct RequestUrl {
    base: String,
    path: String,
}

impl RequestUrl {
    /// `v1.0` or `beta`.
    fn version(&self) -> &str {
        self.path.split('/').nth(1).unwrap_or("v1.0")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(parts.uri.path(), |uri| uri.path());
        Ok(RequestUrl {
            base: client_root(&parts.headers),
            path: path.to_owned(),
        })
    }
}

/// The URL root the client used (`http://` and its `Host` header), which Graph's links repeat.
pub fn client_root(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}
