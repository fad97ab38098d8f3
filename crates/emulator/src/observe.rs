//! The outermost layer: gives each request its ids, counts it, and sets the id headers.
//!
//! Microsoft puts the request's ids into error bodies (`trace_id`, `correlation_id`,
//! `innerError.request-id`) and into `request-id`/`client-request-id` headers. Error types
//! build their bodies in `IntoResponse`, which has no access to the request, so the ids live in
//! a task-local [`RequestContext`] for the duration of the request.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::graph;
use crate::random;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `request-id` for Graph, `trace_id` for the identity platform.
    pub request_id: String,
    /// The client's `client-request-id` when it sent one, else the request id (as Graph does).
    pub client_request_id: String,
    /// The identity platform's correlation id: the client's `client-request-id`, else random.
    pub correlation_id: String,
    /// Virtual time at arrival.
    pub timestamp: DateTime<Utc>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

impl RequestContext {
    fn new(timestamp: DateTime<Utc>, client_request_id: Option<String>) -> Self {
        let request_id = random::guid();
        let correlation_id = client_request_id.clone().unwrap_or_else(random::guid);
        let client_request_id = client_request_id.unwrap_or_else(|| request_id.clone());
        RequestContext {
            request_id,
            client_request_id,
            correlation_id,
            timestamp,
        }
    }

    /// The context of the request being served (a fresh one outside a request).
    pub fn current() -> RequestContext {
        CURRENT
            .try_with(Clone::clone)
            .unwrap_or_else(|_| RequestContext::new(Utc::now(), None))
    }
}

pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let context = RequestContext::new(state.clock.now(), client_request_id);
    if graph::is_graph_path(request.uri().path()) {
        state.counters.graph_request(request.uri().path());
    }

    let mut response = CURRENT.scope(context.clone(), next.run(request)).await;

    if response.status() == axum::http::StatusCode::TOO_MANY_REQUESTS {
        state.counters.throttled();
    }
    let headers = response.headers_mut();
    for (name, value) in [
        ("request-id", &context.request_id),
        ("client-request-id", &context.client_request_id),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}
