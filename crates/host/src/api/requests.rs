//! What happens around every API request, the proxy's included: its request id, which its log
//! lines carry, its debug log line and its metrics.
//!
//! The id is the caller's `X-Request-Id` when that is a plain token (so one id follows a call
//! through the caller's systems and ours), a new random one otherwise, and is echoed in the
//! response so that a caller can quote it in a support request.

use std::pin::pin;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ::metrics::SharedString;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::telemetry::{logs, metrics};

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

/// `answer(request)` as the request's id (its log lines carry it), with the id in the
/// response, a debug log line and the request's metrics.
///
/// Not an `async fn`: the request is taken apart and handed to `answer` before the future
/// starts, so that the future holds `answer`'s future once, not also the request and the
/// closure it came from, and is small to copy into place (see `proxy::answer`).
pub fn observed<F>(
    route: SharedString,
    request: Request,
    answer: impl FnOnce(Request) -> F,
) -> impl Future<Output = Response>
where
    F: Future<Output = Response>,
{
    let id = request_id(request.headers());
    let method = request.method().clone();
    let started = Instant::now();
    let answering = answer(request);
    let scoped = logs::with_request_id(id, async move {
        let response = answering.await;
        let elapsed = started.elapsed();
        tracing::debug!(
            %method,
            %route,
            status = response.status().as_u16(),
            elapsed_us = elapsed.as_micros() as u64,
            "request"
        );
        metrics::http_request(&method, route, response.status(), elapsed);
        response
    });
    async move {
        let mut scoped = pin!(scoped);
        let mut response = scoped.as_mut().await;
        // Taken back rather than cloned before: a new id's clone would be an allocation.
        if let Some(id) = scoped.as_mut().take_value() {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        response
    }
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

/// A new id: this process's random prefix and a counter, 32 hex digits. Unique across
/// processes and requests, and made without formatting or a random draw per request; an id
/// is not a secret.
fn new_request_id() -> HeaderValue {
    static PREFIX: LazyLock<u64> = LazyLock::new(rand::random);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut id = [0u8; 32];
    hex(&mut id[..16], *PREFIX);
    hex(&mut id[16..], NEXT.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_bytes(&id).expect("hex digits are a valid header value")
}

/// `value` as 16 lowercase hex digits into `out`.
fn hex(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
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
