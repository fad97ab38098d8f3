//! The operator's dashboard at `/ui`: server-rendered pages over the same store and services as
//! the API, for the person who runs Plugboard and must see at a glance which connections are
//! broken and why.
//!
//! - [`session`]: signing in with the API key (or `[ui] admin_key`), sessions kept in the store
//!   so every replica knows them and signing out ends them, CSRF tokens on every form, and
//!   failed sign-ins slowed down per address.
//! - [`overview`], [`connections`], [`connection`] (its Auth, Syncs, Records and Logs tabs and
//!   their controls), [`activity`]: the pages.
//!
//! Pages are askama templates under `templates/console/`, which escape every value. There is no
//! script at all (auto-refresh is a `<meta http-equiv="refresh">`), and [`harden`] forbids any,
//! along with framing and caching. No token, API key or client secret is ever rendered.

mod activity;
mod connection;
mod connections;
mod format;
mod overview;
mod session;

use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use plugboard_store::StoreError;

use crate::state::AppState;

pub use session::SignInThrottle;

/// The dashboard's stylesheet, compiled in.
const STYLESHEET: &str = include_str!("../../templates/console/console.css");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(overview::page))
        .route("/ui/sign-in", get(session::form).post(session::sign_in))
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/connections", get(connections::page))
        .route("/ui/connection/{tab}", get(connection::tab))
        .route(
            "/ui/connection/connect-link",
            post(connection::connect_link),
        )
        .route("/ui/connection/delete", post(connection::delete))
        .route("/ui/connection/sync", post(connection::control_sync))
        .route("/ui/activity", get(activity::page))
        .route("/ui/webhooks/redeliver", post(activity::redeliver))
        .route("/ui/assets/console.css", get(stylesheet))
        .layer(middleware::from_fn(harden))
}

/// What every signed-in page shows around its content.
pub struct Chrome {
    pub title: String,
    /// The navigation entry to mark: `overview`, `connections` or `activity`.
    pub section: &'static str,
    /// The session's CSRF token, which every form carries.
    pub csrf: String,
    /// What the last action did, after its redirect.
    pub notice: Option<&'static str>,
    /// Seconds between reloads of a page that follows what happens (Activity).
    pub refresh_every: Option<u32>,
}

/// One choice of a filter's list, and whether it is the chosen one.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn new(value: &str, label: &str, chosen: &str) -> Choice {
        Choice {
            value: value.to_owned(),
            label: label.to_owned(),
            selected: value == chosen,
        }
    }
}

/// Every integration, as a filter's choices.
pub fn integration_choices(state: &AppState, chosen: &str) -> Vec<Choice> {
    state
        .integrations
        .iter()
        .map(|i| Choice::new(&i.name, &i.name, chosen))
        .collect()
}

/// A page that could not be shown, with what the operator can do about it.
#[derive(Debug)]
pub struct ConsoleError {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl ConsoleError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        ConsoleError {
            status,
            title,
            // Details quote what the request named (a tab, a connection id), which may be huge.
            detail: crate::api::cut(detail.into()),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Not understood", detail)
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorHtml<'a> {
    title: &'a str,
    detail: &'a str,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let html = ErrorHtml {
            title: self.title,
            detail: &self.detail,
        };
        match html.render() {
            Ok(body) => (self.status, Html(body)).into_response(),
            Err(_) => self.status.into_response(),
        }
    }
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        tracing::warn!(%error, "a dashboard page could not read the store");
        match error {
            StoreError::WritesRefused { reason } => ConsoleError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The store refuses changes",
                format!(
                    "Plugboard's database refused to write: {reason}. The change was not made; pages still show what is stored. Try again once it has room or takes writes again."
                ),
            ),
            _ if error.is_passing() => ConsoleError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The store is unavailable",
                "Plugboard cannot reach its database right now. Reload the page in a moment.",
            ),
            _ => ConsoleError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store failed",
                "Reading the store failed; the server's log says why.",
            ),
        }
    }
}

/// A rendered page, or the error page if rendering failed.
pub fn render(page: impl Template) -> Result<Response, ConsoleError> {
    page.render()
        .map(|body| Html(body).into_response())
        .map_err(|error| {
            tracing::error!(%error, "rendering a dashboard page failed");
            ConsoleError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page failed",
                "Rendering this page failed; the server's log says why.",
            )
        })
}

/// After a form: back to a page (Post/Redirect/Get), so reloading it does not post again.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// The headers of every dashboard answer: no script may run at all, styles and images come
/// only from Plugboard, forms post only to it, no site may frame it (clickjacking a Delete
/// button), nothing is cached, and no `Referer` leaves it.
async fn harden(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLESHEET,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_names_show_as_code_and_everything_is_escaped() {
        let page = ErrorHtml {
            title: "Not found",
            detail: "There is no connection `<b>x</b>` in integration `a&b`; <script>alert(1)</script>",
        }
        .render()
        .unwrap();
        assert!(
            page.contains(
                "<p>There is no connection <code>&#60;b&#62;x&#60;/b&#62;</code> in integration \
                 <code>a&#38;b</code>; &#60;script&#62;alert(1)&#60;/script&#62;</p>"
            ),
            "{page}"
        );
    }
}
