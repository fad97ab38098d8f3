//! The pages an end user's browser is shown: the connect page that a connect link opens, and
//! the pages that end a flow or refuse a link.
//!
//! They are rendered from `templates/pages/` by askama, which escapes every value, styled by one
//! stylesheet served from here (`[ui] accent_color` is its only variable), and carry no script
//! at all. Their URLs and forms carry session tokens, so every answer of the browser routes —
//! redirects included — forbids caching, framing and referrers ([`harden`]).

mod failure;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::AppState;

pub(super) use failure::{explain, needs_admin_consent_first};

/// Where the stylesheet is served.
const STYLESHEET_PATH: &str = "/oauth/assets/pages.css";

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(STYLESHEET_PATH, get(stylesheet))
}

/// A page telling the end user what happened and where to go from here.
#[derive(Debug)]
pub(super) struct Message {
    pub status: StatusCode,
    pub title: String,
    /// What happened, in plain words.
    pub detail: String,
    /// The provider's code and words, for whoever the user asks for help.
    pub details: Option<String>,
    /// A link for an administrator, when one must consent for the organisation first.
    pub admin_consent_url: Option<String>,
    /// Back to the application's `return_url`, with the outcome in its query.
    pub back_url: Option<String>,
}

impl Message {
    pub fn new(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Message {
            status,
            title: title.into(),
            // Details quote what the browser sent (an integration's name), at a bounded length.
            detail: super::cut(detail.into()),
            details: None,
            admin_consent_url: None,
            back_url: None,
        }
    }
}

/// The connect page: what the application asks for, and the button that starts the flow.
#[derive(Debug)]
pub(super) struct ConnectPage<'a> {
    /// The provider's display name.
    pub provider: &'a str,
    pub scopes: Vec<ScopeLine<'a>>,
    /// Where Continue posts the session token.
    pub action: String,
    pub session_token: &'a str,
}

/// One scope the integration asks for, described as the provider's spec describes it.
#[derive(Debug)]
pub(super) struct ScopeLine<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub admin_only: bool,
}

/// What every page shows around its content.
struct Layout<'a> {
    app_name: &'a str,
    logo_url: Option<&'a str>,
    stylesheet_url: String,
}

impl<'a> Layout<'a> {
    fn new(state: &'a AppState) -> Self {
        Layout {
            app_name: &state.ui.app_name,
            logo_url: state.ui.logo_url.as_ref().map(url::Url::as_str),
            stylesheet_url: public_url(state, STYLESHEET_PATH),
        }
    }
}

#[derive(Template)]
#[template(path = "pages/message.html")]
struct MessageHtml<'a> {
    layout: Layout<'a>,
    page: &'a Message,
}

#[derive(Template)]
#[template(path = "pages/connect.html")]
struct ConnectHtml<'a> {
    layout: Layout<'a>,
    page: &'a ConnectPage<'a>,
}

#[derive(Template)]
#[template(path = "pages/style.css", escape = "none")]
struct Stylesheet<'a> {
    /// Checked by the config to be `#rgb` or `#rrggbb`, so it cannot end the declaration.
    accent: &'a str,
}

/// `path` on this server as browsers reach it (`[server] public_url`).
pub(super) fn public_url(state: &AppState, path: &str) -> String {
    format!(
        "{}{path}",
        state.server.public_url.as_str().trim_end_matches('/')
    )
}

pub(super) fn message(state: &AppState, page: &Message) -> Response {
    let html = MessageHtml {
        layout: Layout::new(state),
        page,
    };
    respond(state, page.status, html.render())
}

pub(super) fn connect(state: &AppState, page: &ConnectPage<'_>) -> Response {
    let html = ConnectHtml {
        layout: Layout::new(state),
        page,
    };
    respond(state, StatusCode::OK, html.render())
}

fn respond(state: &AppState, status: StatusCode, rendered: askama::Result<String>) -> Response {
    let mut response = match rendered {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a page failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    harden(state, response.headers_mut());
    response
}

/// The headers of every answer of the browser routes. No script may run (`default-src 'none'`
/// and no `script-src`), styles come only from this server and images only from the logo's
/// origin; no site may frame the pages (clickjacking the Continue button); nothing is cached,
/// and no `Referer` carries a session token to the provider or to the logo's host.
///
/// There is no `form-action`: browsers apply it to the redirects that follow a form, and
/// Continue's answer redirects to the provider, whose origin a URL template may only decide
/// per connection.
pub(super) fn harden(state: &AppState, headers: &mut HeaderMap) {
    let own = state.server.public_url.origin().ascii_serialization();
    let images = match &state.ui.logo_url {
        Some(logo) => logo.origin().ascii_serialization(),
        None => "'none'".to_owned(),
    };
    let policy = format!(
        "default-src 'none'; style-src {own}; img-src {images}; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// The stylesheet, with the configured accent colour. Cached briefly: a changed colour shows
/// within minutes of a restart.
#[utoipa::path(
    get,
    path = STYLESHEET_PATH,
    tag = "oauth",
    operation_id = "pages_stylesheet",
    summary = "The stylesheet of the end user's pages",
    responses((status = 200, description = "The stylesheet.", body = String, content_type = "text/css"))
)]
async fn stylesheet(State(state): State<AppState>) -> Response {
    let css = Stylesheet {
        accent: &state.ui.accent_color,
    }
    .render();
    match css {
        Ok(css) => (
            [
                (CONTENT_TYPE, "text/css; charset=utf-8"),
                (CACHE_CONTROL, "public, max-age=300"),
                (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            css,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering the stylesheet failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
