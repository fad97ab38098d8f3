//! The API key check.

use crate::state::digest;
use axum::extract::{Request, State};
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
    if authorized(&state, request.headers()) {
        next.run(request).await
    } else {
        unauthorized()
    }
}

/// Whether the headers carry `Authorization: Bearer <secret_key>`. Digests of equal length are
/// compared in constant time, so the comparison leaks neither the key's content nor its length.
pub fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| digest(key.trim()))
        .is_some_and(|d| bool::from(d.ct_eq(&state.api_key_digest)))
}

/// The answer to a request without the API key.
pub fn unauthorized() -> Response {
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
