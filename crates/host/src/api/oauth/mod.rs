//! The browser side of OAuth: `/oauth/connect/{integration}`, `/oauth/admin-consent/{integration}`
//! and `/oauth/callback`, with the pages they show ([`pages`]).
//!
//! A connect link opens the connect page, which shows what the application asks for and
//! leaves the connect session in place; its Continue button posts the session token back to
//! the same path, which takes the session and starts the flow. So a link checker or a preview
//! that opens the link does not use it up, and the URL that starts a flow is never a link.
//!
//! A flow's `state` is random, stored hashed, lives 10 minutes and is taken exactly once. It is
//! also bound to the browser that started the flow by a cookie (stored hashed too): a callback
//! that arrives in another browser — a login CSRF, or a victim tricked into completing an
//! attacker's flow — is refused before any token request, as is an unknown, expired or replayed
//! state. Only then is the code redeemed, so a code is never sent to the token endpoint twice.

pub(super) mod finish;
pub(super) mod start;

use axum::Router;
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plugboard_core::oauth::OAuthErrorKind;

use super::AppState;
use super::pages::{self, Message};

const STATE_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);
const BROWSER_COOKIE: &str = "plugboard_oauth";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/oauth/connect/{integration}",
            get(start::connect_page).post(start::connect),
        )
        .route(
            "/oauth/admin-consent/{integration}",
            get(start::admin_consent),
        )
        .route("/oauth/callback", get(finish::callback))
        .merge(pages::routes())
}

/// What a browser route answers: a redirect, or a page.
enum Outcome {
    Redirect {
        location: String,
        cookie: Option<String>,
    },
    Page(Message),
}

impl Outcome {
    fn page(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Outcome::Page(Message::new(status, title, detail))
    }

    fn respond(self, state: &AppState) -> Response {
        match self {
            Outcome::Redirect { location, cookie } => {
                let mut response = StatusCode::FOUND.into_response();
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(LOCATION, value);
                }
                if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    response.headers_mut().insert(SET_COOKIE, value);
                }
                pages::harden(state, response.headers_mut());
                response
            }
            Outcome::Page(page) => pages::message(state, &page),
        }
    }
}

/// A link whose path or query cannot be read (a segment that is not UTF-8, a parameter
/// given twice): a page, like every other answer of these browser routes.
fn malformed_link() -> Outcome {
    Outcome::page(
        StatusCode::BAD_REQUEST,
        "This link is not valid",
        "The link is malformed. Ask the application for a new one.",
    )
}

fn kind_code(kind: OAuthErrorKind) -> &'static str {
    match kind {
        OAuthErrorKind::ReconnectNeeded => "reconnect_needed",
        OAuthErrorKind::IntegrationMisconfigured => "integration_misconfigured",
        OAuthErrorKind::CodeAlreadyUsed => "code_already_used",
        OAuthErrorKind::CallbackRejected => "callback_rejected",
        OAuthErrorKind::UserDeclined => "user_declined",
        OAuthErrorKind::InteractionRequired => "interaction_required",
        OAuthErrorKind::Transient => "temporarily_unavailable",
    }
}

fn store_failure(error: plugboard_store::StoreError) -> Outcome {
    // The database away, busy, full or read-only: the sign-in can be done again shortly.
    if error.is_passing() {
        tracing::warn!(%error, "the store is unavailable in an OAuth flow");
        return Outcome::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again in a moment",
            "Plugboard cannot save this sign-in right now. Start it again in a moment.",
        );
    }
    tracing::error!(%error, "store failure in an OAuth flow");
    Outcome::page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Plugboard could not save this sign-in. Try again later.",
    )
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}
