//! The API key check.
//!
//! Keys are compared as SHA-256 digests in constant time. Wrong keys are counted per client
//! address in the dashboard's [`SignInThrottle`](crate::console::SignInThrottle): after a few,
//! that address is answered 429 with `Retry-After`, whatever key it sends, until its wait has
//! passed (each wait twice the one before, up to a minute), so guessing the key is slow while
//! callers from other addresses are never held up. A request without any key is refused
//! without counting: it guesses nothing.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::state::digest;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

/// Lets the request through only with `Authorization: Bearer <secret_key>`.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    match refusal(&state, request.headers(), peer) {
        None => next.run(request).await,
        Some(refused) => refused,
    }
}

/// Unless the headers of a request from `peer` carry `Authorization: Bearer <secret_key>`,
/// the answer refusing it: 401, or 429 while `peer` must wait.
pub fn refusal(state: &AppState, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<Response> {
    let throttle = &state.sign_in_throttle;
    if let Some(wait) = peer.and_then(|address| throttle.wait(address)) {
        return Some(throttled(wait));
    }
    let Some(key) = bearer(headers) else {
        return Some(unauthorized());
    };
    // Digests of equal length are compared in constant time, so the comparison leaks neither
    // the key's content nor its length.
    if bool::from(digest(key).ct_eq(&state.api_key_digest)) {
        if let Some(address) = peer {
            throttle.succeeded(address);
        }
        return None;
    }
    if let Some(address) = peer {
        throttle.failed(address);
        tracing::warn!(%address, "a request with a wrong API key was refused");
    }
    Some(unauthorized())
}

/// The key of `Authorization: Bearer <key>`, if the request sends one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
}

/// The answer to a request without the API key.
fn unauthorized() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send the API key as `Authorization: Bearer <secret_key>`",
    )
    .into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The answer to an address that sent too many wrong keys, while it must wait.
fn throttled(wait: Duration) -> Response {
    let seconds = wait.as_secs() + 1;
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failed_attempts",
        format!(
            "too many requests with a wrong API key came from your address; try again in {seconds} s"
        ),
    )
    .retry_after(u32::try_from(seconds).unwrap_or(u32::MAX))
    .into_response()
}
