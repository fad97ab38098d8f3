//! The HTTP API: handlers on the host's [`AppState`], one error type ([`ApiError`]), and a
//! router per area.
//!
//! Every route but `/health` and the OAuth browser routes (`/oauth/…`, which browsers reach
//! through links and provider redirects) needs `Authorization: Bearer <secret_key>`.
//! Request logs name the route pattern, never the URI: queries carry session tokens and
//! authorization codes.

mod account;
mod actions;
mod auth;
mod connect;
mod connections;
mod extract;
mod integrations;
mod key_connections;
mod oauth;
mod openapi;
mod pages;
mod proxy;
mod records;
mod requests;
mod syncs;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_service::Service;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::integrations::Integration;
use crate::refresh::RefreshError;
pub use crate::state::AppState;
use plugboard_store::StoreError;

pub use connect::{CreateSession, create_session};
pub(crate) use oauth::cookie;
pub use records::record_json;

impl AppState {
    /// The integration, or the API's 404.
    fn integration(&self, name: &str) -> Result<Arc<Integration>, ApiError> {
        self.integrations.get(name).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "integration_not_found",
                format!("no integration `{name}`"),
            )
        })
    }
}

/// The API as the server runs it: [`router`], except that proxied requests skip it.
///
/// The proxy is the hot path, and for it the router's matching, path-parameter decoding,
/// request extensions and boxed middleware layers made about 30 of the 60 allocations of a
/// proxied request; skipping them cut Plugboard's CPU per proxied request by a fifth
/// (BENCHMARKS.md, "Proxy overhead"). Proxied requests get the same API key check and request
/// log in [`proxy::serve`].
#[derive(Clone)]
pub struct Api {
    router: Router,
    state: AppState,
    /// The client's address on this clone's connection, for routes that need it (the
    /// dashboard's sign-in slows failures down per address).
    peer: Option<SocketAddr>,
}

impl Api {
    pub fn new(state: AppState) -> Api {
        Api {
            router: router(state.clone()),
            state,
            peer: None,
        }
    }

    /// The clone that serves one connection, from the client at `peer`.
    pub fn for_peer(&self, peer: SocketAddr) -> Api {
        Api {
            peer: Some(peer),
            ..self.clone()
        }
    }
}

impl Service<Request> for Api {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if proxy::handles(request.uri().path()) {
            let state = self.state.clone();
            let peer = self.peer.map(|peer| peer.ip());
            Box::pin(proxy::serve(state, peer, request).map(Ok))
        } else {
            if let Some(peer) = self.peer {
                request.extensions_mut().insert(ConnectInfo(peer));
            }
            Box::pin(self.router.call(request))
        }
    }
}

/// Every route but the proxy's (see [`Api`]). Bodies are read up to `[server] max_body_size`
/// (a larger one is answered 413); the proxy streams them instead.
fn router(state: AppState) -> Router {
    let authenticated = Router::new()
        .merge(connect::routes())
        .merge(connections::routes())
        .merge(integrations::routes())
        .merge(records::routes())
        .merge(syncs::routes())
        .merge(actions::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi::document))
        .merge(oauth::routes())
        .merge(crate::console::routes())
        .merge(authenticated)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.server.max_body_size))
        .layer(middleware::from_fn(requests::observe))
        .with_state(state)
}

/// `GET /health`'s answer.
#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `ok`: any answer at all means the server is up.
    #[schema(example = "ok")]
    status: &'static str,
}

/// Whether the server is up
#[utoipa::path(
    get,
    path = "/health",
    tag = "server",
    responses((status = 200, description = "The server is up.", body = Health))
)]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take {method}"),
    )
}

/// The longest error message or page detail, in bytes, before [`cut`] shortens it.
const MAX_MESSAGE: usize = 1024;

/// `message` cut at [`MAX_MESSAGE`] bytes: messages quote what a request sent (an id, an
/// unknown field's name), which may be kilobytes long.
pub(crate) fn cut(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (cut)");
    }
    message
}

/// The API's one error type: `{"error": {"code": "snake_case", "message": "…"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header, on answers that say when to try again.
    retry_after: Option<u32>,
}

impl ApiError {
    /// The message is [`cut`] to a bounded length.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: cut(message.into()),
            retry_after: None,
        }
    }

    /// The answer with `Retry-After: seconds`.
    fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// What went wrong, in words: for the dashboard, which shows it on a page.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn connection_not_found(connection_id: &str, integration: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "connection_not_found",
            format!("no connection `{connection_id}` in integration `{integration}`"),
        )
    }
}

// The wire form of an [`ApiError`], a type rather than a `json!` map so that the API
// description (`openapi.rs`) shows its shape.
/// Every error answer of the API.
#[derive(Serialize, ToSchema)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// What went wrong, as a stable snake_case word to branch on, such as
    /// `connection_not_found`.
    #[schema(example = "connection_not_found")]
    code: &'static str,
    /// The same for people: what is wrong and where.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// When to try again after the store was away or busy: a dropped connection is replaced, a
/// lost race retried, within seconds.
const STORE_RETRY_AFTER: u32 = 5;

/// When to try again after the store refused a write: a disk filled up or a database turned
/// read-only waits for an operator or a failover, which takes longer than a reconnect.
const WRITES_REFUSED_RETRY_AFTER: u32 = 30;

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            // Passing: the disk is full or the database read-only. Reads still work; the
            // write that was refused rolled back whole.
            StoreError::WritesRefused { reason } => {
                tracing::warn!(%error, "store refused a write");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!(
                        "the store refused to write: {reason}; reads still work; try again later"
                    ),
                )
                .retry_after(WRITES_REFUSED_RETRY_AFTER)
            }
            // Passing: the database is away or busy. The caller may try again shortly.
            _ if error.is_passing() => {
                tracing::warn!(%error, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store cannot be reached right now; try again shortly",
                )
                .retry_after(STORE_RETRY_AFTER)
            }
            _ => {
                tracing::error!(%error, "store failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store_error",
                    "the store failed; see the server log",
                )
            }
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(error: RefreshError) -> Self {
        let message = error.to_string();
        match error {
            RefreshError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "connection_not_found", message)
            }
            RefreshError::NeedsReconnect(_) => {
                ApiError::new(StatusCode::CONFLICT, "needs_reconnect", message)
            }
            RefreshError::Misconfigured(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "integration_misconfigured",
                message,
            ),
            RefreshError::Transient(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "refresh_failed", message)
            }
            RefreshError::Store(error) => error.into(),
        }
    }
}

/// `Json` whose rejections are [`ApiError`]s, naming every missing field at once
/// ([`extract`]).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + PartialSchema> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        extract::read_json(request, state).await.map(ApiJson)
    }
}

/// `Query` whose rejections are [`ApiError`]s, naming every missing parameter at once
/// ([`extract`]).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + IntoParams> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        extract::read_query(parts).map(ApiQuery)
    }
}

/// `Path` whose rejections (a segment that is not UTF-8 once decoded, say) are [`ApiError`]s.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::bad_request("invalid_path", rejection.body_text())),
        }
    }
}

/// 32 random bytes, base64url: session tokens, states and browser bindings.
pub fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256, how single-use tokens and states are looked up without being stored.
pub fn hash_token(token: &str) -> String {
    crate::state::digest(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
