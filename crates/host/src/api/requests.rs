//! What happens around every API request, the proxy's included: its request id, the span its
//! log lines are written in, its debug log line and its metrics.
//!
//! The id is the caller's `X-Request-Id` when that is a plain token (so one id follows a call
//! through the caller's systems and ours), a new random one otherwise, and is echoed in the
//! response so that a caller can quote it in a support request.

use std::time::Instant;

use ::metrics::SharedString;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::telemetry::metrics;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id taken as it is.
const MAX_REQUEST_ID: usize = 128;

/// The route a request matched no pattern of, as logs and metrics name it.
const NO_ROUTE: &str = "(no route)";

/// The router's middleware: [`observed`] under the route pattern the request matched.
pub async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(SharedString::const_str(NO_ROUTE), |p| {
            SharedString::from(p.as_str().to_owned())
        });
    observed(route, request, |request| next.run(request)).await
}

/// `answer(request)`, inside a span carrying the request id, with the id in the response,
/// a debug log line and the request's metrics.
pub async fn observed<F>(
    route: SharedString,
    request: Request,
    answer: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    let id = request_id(request.headers());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id.to_str().unwrap_or_default(),
        %method,
        route = %route,
    );
    let started = Instant::now();
    let mut response = answer(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            elapsed_us = elapsed.as_micros() as u64,
            "request"
        );
    });
    metrics::http_request(&method, route, status, elapsed);
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// The caller's id when it is 1 to 128 characters of letters, digits and `-_.:/+=@`; a new
/// one otherwise, so that what logs repeat is never arbitrary caller text.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&REQUEST_ID)
        .filter(|value| {
            let bytes = value.as_bytes();
            (1..=MAX_REQUEST_ID).contains(&bytes.len())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
        })
        .cloned()
        .unwrap_or_else(new_request_id)
}

fn new_request_id() -> HeaderValue {
    let id = format!("{:032x}", rand::random::<u128>());
    HeaderValue::from_str(&id).expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn a_plain_incoming_id_is_kept_and_anything_else_replaced() {
        let kept = request_id(&with_id(b"req-42_a.b:c/d+e=f@g"));
        assert_eq!(kept, "req-42_a.b:c/d+e=f@g");
        for refused in [
            &b"has space"[..],
            b"quote\"",
            b"<script>",
            "é".as_bytes(),
            &[b'a'; MAX_REQUEST_ID + 1],
        ] {
            let replaced = request_id(&with_id(refused));
            assert_ne!(replaced.as_bytes(), refused);
            assert_eq!(replaced.len(), 32, "{replaced:?}");
        }
        let fresh = request_id(&HeaderMap::new());
        assert!(
            fresh
                .to_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
        assert_ne!(fresh, request_id(&HeaderMap::new()));
    }
}
