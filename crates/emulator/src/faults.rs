//! Fault injection: the next N requests matching a method and path prefix misbehave.
//!
//! Runs inside [`crate::observe`] (so faulted responses still carry request ids and 429s are
//! counted) and before any route, so faults reach every identity and Graph endpoint alike.
//!
//! A `*` segment in a rule's path prefix (`/*/oauth2/v2.0/token`) matches any one segment of
//! the path: the token endpoint of every tenant at once, as an outage of the identity platform
//! takes them all down, rather than one tenant's path.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;

use crate::control::types::{FaultKind, FaultRule};
use crate::graph::{self, error::GraphError};
use crate::identity::error::OAuthError;
use crate::state::AppState;

/// The start of a real people page, cut off mid-string.
const TRUNCATED_JSON: &str = r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users('7af3431f')/people","value":[{"id":"7af3431f-ee68-4559-a1ca-17dc7bfcc269","displayName":"Alex Wil"#;

#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    fn rules(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add(&self, rule: FaultRule) -> Result<Vec<FaultRule>, String> {
        if let FaultKind::Status { status, .. } = rule.kind {
            StatusCode::from_u16(status).map_err(|_| format!("invalid status {status}"))?;
        }
        if let Some(method) = &rule.method {
            Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("invalid method '{method}'"))?;
        }
        let mut rules = self.rules();
        if rule.count > 0 {
            rules.push(rule);
        }
        Ok(rules.clone())
    }

    pub fn pending(&self) -> Vec<FaultRule> {
        self.rules().clone()
    }

    pub fn clear(&self) {
        self.rules().clear();
    }

    /// Consumes one use of the first rule matching the request.
    fn take(&self, method: &Method, path: &str) -> Option<FaultKind> {
        let mut rules = self.rules();
        let position = rules.iter().position(|rule| {
            prefix_matches(&rule.path_prefix, path)
                && rule
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
        })?;
        let rule = &mut rules[position];
        rule.count -= 1;
        let kind = rule.kind.clone();
        if rule.count == 0 {
            rules.remove(position);
        }
        Some(kind)
    }
}

/// Whether `path` starts with `prefix`, a `*` segment of `prefix` (one followed by more of
/// it) standing for any one non-empty segment of `path`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let Some(wildcard) = prefix.find("/*/") else {
        return path.starts_with(prefix);
    };
    let Some(rest) = path
        .strip_prefix(&prefix[..wildcard])
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return false;
    };
    match rest.find('/') {
        Some(end) if end > 0 => prefix_matches(&prefix[wildcard + 2..], &rest[end..]),
        _ => false,
    }
}

pub async fn inject(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    match state.faults.take(request.method(), &path) {
        None => next.run(request).await,
        Some(FaultKind::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(request).await
        }
        Some(FaultKind::Status {
            status,
            retry_after_secs,
        }) => error_response(&path, status, retry_after_secs),
        Some(FaultKind::MalformedBody) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            TRUNCATED_JSON,
        )
            .into_response(),
        Some(FaultKind::DropConnection) => severed(),
        Some(FaultKind::RepeatNextLink) => repeat_next_link(request, next).await,
    }
}

/// Serves the request, then points the page's `@odata.nextLink` back at the page itself,
/// written the way Graph writes next links (the client's own root, the path and query as
/// sent), so a client that follows next links verbatim is sent round in a circle.
async fn repeat_next_link(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let own_url = format!(
        "{}{}",
        graph::client_root(request.headers()),
        request
            .uri()
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str())
    );
    let response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return error_response(&path, 500, None);
    };
    // Members kept as raw JSON, so the people stay exactly as served; a page's member names
    // sort into Graph's own order (`@odata.context`, `@odata.nextLink`, `value`).
    let mut page = match serde_json::from_slice::<BTreeMap<String, Box<RawValue>>>(&bytes) {
        Ok(page) if page.contains_key("value") => page,
        _ => return Response::from_parts(parts, Body::from(bytes)),
    };
    let link = serde_json::value::to_raw_value(&own_url).expect("a string serialises");
    page.insert("@odata.nextLink".to_owned(), link);
    let body = serde_json::to_vec(&page).expect("raw JSON members serialise");
    // The length changed; the server sets it again from the new body.
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// An error shaped like the endpoint's own: Graph's body under Graph paths, OAuth's elsewhere.
fn error_response(path: &str, status: u16, retry_after_secs: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).expect("validated when the rule was added");
    let mut response = if graph::is_graph_path(path) {
        GraphError::for_status(status).into_response()
    } else {
        OAuthError::for_status(status).into_response()
    };
    if let Some(seconds) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A response whose body fails before its first byte. Hyper then drops the connection without
/// flushing the status line, so the client sees a transport error rather than any response.
fn severed() -> Response {
    let failure = io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection dropped by fault injection",
    );
    Response::new(Body::from_stream(futures::stream::once(async move {
        Err::<Bytes, _>(failure)
    })))
}

#[cfg(test)]
mod tests {
    use super::prefix_matches;

    #[test]
    fn a_star_segment_matches_any_one_segment() {
        let every_tenant = "/*/oauth2/v2.0/token";
        for path in [
            "/common/oauth2/v2.0/token",
            "/0f8c6b1e-5a4b-4c3d-9e2f-1a2b3c4d5e6f/oauth2/v2.0/token",
        ] {
            assert!(prefix_matches(every_tenant, path), "{path}");
        }
        for path in [
            "/oauth2/v2.0/token",
            "//oauth2/v2.0/token",
            "/a/b/oauth2/v2.0/token",
            "/common/oauth2/v2.0/authorize",
            "/common",
        ] {
            assert!(!prefix_matches(every_tenant, path), "{path}");
        }
        assert!(prefix_matches("/v1.0/*/people", "/v1.0/me/people?x"));
        assert!(
            prefix_matches("/v1.0/", "/v1.0/me"),
            "plain prefixes as before"
        );
        assert!(prefix_matches("/*/*/x", "/a/b/x/y"));
        assert!(!prefix_matches("/*/*/x", "/a/x"));
    }
}
