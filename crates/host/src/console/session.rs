//! Signing in and out of the dashboard, and what every signed-in request checks.
//!
//! Signing in takes the API's secret key, or `[ui] admin_key` when one is set, compared in
//! constant time. A success makes a session: a random token in an HttpOnly, SameSite=Lax cookie
//! (Secure when `public_url` is https), of which the store keeps only the hash, so that every
//! replica knows it and signing out ends it everywhere. Every form carries a CSRF token
//! derived from the session's token; the sign-in form, which comes before any session, carries
//! one that must match a cookie of its own (double submit). A form without the right token is
//! refused with 403, never redirected.
//!
//! Failed sign-ins are slowed down per client address: after a few, each further attempt has
//! to wait twice as long as the one before, up to a minute; a success forgets them. The API's
//! key check counts its wrong keys in the same [`SignInThrottle`] (see `api/auth.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{ConsoleError, render, see_other};
use crate::api::{cookie, hash_token, random_token};
use crate::state::{AppState, digest};

/// The session cookie, sent to the dashboard's paths only.
const SESSION_COOKIE: &str = "plugboard_console";
/// The sign-in form's own CSRF cookie.
const FORM_COOKIE: &str = "plugboard_console_form";
/// How long a session lasts; then its operator signs in again.
const SESSION_LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// Failed sign-ins from one address before each further attempt has to wait.
const FREE_FAILURES: u32 = 5;
/// The longest wait between attempts.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Failures older than this are forgotten.
const FAILURES_KEPT: Duration = Duration::from_secs(15 * 60);
/// Addresses whose failures are kept at most.
const MAX_ADDRESSES: usize = 10_000;

/// A signed-in request: its session token, from which its forms' CSRF token is derived.
pub struct SignedIn {
    token: String,
}

impl SignedIn {
    /// The CSRF token of this session's forms: not the session token itself, which only the
    /// cookie carries, but derived from it, so no state is kept for it.
    pub fn csrf(&self) -> String {
        hash_token(&format!("plugboard-console-csrf:{}", self.token))
    }

    /// Refuses a form whose CSRF token is missing or wrong.
    pub fn check(&self, csrf: &str) -> Result<(), ConsoleError> {
        if bool::from(self.csrf().as_bytes().ct_eq(csrf.as_bytes())) {
            Ok(())
        } else {
            Err(forged())
        }
    }
}

fn forged() -> ConsoleError {
    ConsoleError::new(
        StatusCode::FORBIDDEN,
        "This form is not valid",
        "The form was not sent from this dashboard, or it expired. Go back, reload the page and try again.",
    )
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = cookie(&parts.headers, SESSION_COOKIE);
        if let Some(token) = token {
            let valid = state
                .connections
                .store()
                .console_session_valid(&hash_token(&token), Utc::now())
                .await
                .map_err(|e| ConsoleError::from(e).into_response())?;
            if valid {
                return Ok(SignedIn { token });
            }
        }
        // A page asks to sign in; a form whose session ended is refused, never redirected,
        // so that nothing posted is ever replayed after signing in.
        Err(
            if parts.method == Method::GET || parts.method == Method::HEAD {
                see_other("/ui/sign-in")
            } else {
                ConsoleError::new(
                    StatusCode::FORBIDDEN,
                    "You are signed out",
                    "Your dashboard session has ended. Sign in again, then repeat what you did.",
                )
                .into_response()
            },
        )
    }
}

/// Failed attempts at a secret key by client address: the dashboard's sign-ins and requests
/// to the API with a wrong bearer key. One table for both, since both guess at the API's key
/// (unless `[ui] admin_key` is set): guessing through both gets no more tries than through one.
#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
    /// Whether any failure is kept, read without the lock: every API request asks, and
    /// almost always none is.
    any: AtomicBool,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl SignInThrottle {
    /// How long `address` must still wait before its next attempt, if it must.
    pub(crate) fn wait(&self, address: IpAddr) -> Option<Duration> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let failures = self.failures.lock().ok()?;
        let seen = failures.get(&address)?;
        let wait = wait_after(seen.count)?;
        wait.checked_sub(seen.last.elapsed())
    }

    pub(crate) fn failed(&self, address: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            self.any.store(true, Ordering::Relaxed);
            failures.retain(|_, f| f.last.elapsed() < FAILURES_KEPT);
            // Guessing from many addresses must not grow the table without end: the address
            // that failed longest ago makes room.
            if failures.len() >= MAX_ADDRESSES && !failures.contains_key(&address) {
                let oldest = failures.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    failures.remove(&oldest);
                }
            }
            let entry = failures.entry(address).or_insert(Failures {
                count: 0,
                last: Instant::now(),
            });
            entry.count += 1;
            entry.last = Instant::now();
        }
    }

    pub(crate) fn succeeded(&self, address: IpAddr) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&address);
            self.any.store(!failures.is_empty(), Ordering::Relaxed);
        }
    }
}

/// The wait after `count` failures: none for the first few, then 1 s, 2 s, 4 s… up to
/// [`MAX_WAIT`].
fn wait_after(count: u32) -> Option<Duration> {
    let over = count.checked_sub(FREE_FAILURES)?;
    Some(Duration::from_secs(1u64 << over.min(6)).min(MAX_WAIT))
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInHtml<'a> {
    key_name: &'a str,
    refusal: Option<String>,
    csrf: &'a str,
}

/// The sign-in form, with a fresh CSRF token in it and in its cookie.
fn sign_in_page(
    state: &AppState,
    status: StatusCode,
    refusal: Option<String>,
) -> Result<Response, ConsoleError> {
    let csrf = random_token();
    let key_name = if state.ui.admin_key.is_some() {
        "the dashboard's admin key ([ui] admin_key)"
    } else {
        "the API's secret key"
    };
    let mut response = render(SignInHtml {
        key_name,
        refusal,
        csrf: &csrf,
    })?;
    *response.status_mut() = status;
    set_cookie(
        state,
        &mut response,
        &format!("{FORM_COOKIE}={csrf}; Path=/ui/sign-in; HttpOnly; SameSite=Strict"),
    );
    Ok(response)
}

pub async fn form(State(state): State<AppState>) -> Result<Response, ConsoleError> {
    sign_in_page(&state, StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, ConsoleError> {
    let expected = cookie(&headers, FORM_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return Err(forged());
    }
    let address = peer.ip();
    if let Some(wait) = state.sign_in_throttle.wait(address) {
        let seconds = wait.as_secs() + 1;
        return sign_in_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some(format!(
                "Too many failed sign-ins from your address. Try again in {seconds} s."
            )),
        );
    }
    if !bool::from(digest(&form.key).ct_eq(&state.console_key_digest)) {
        state.sign_in_throttle.failed(address);
        tracing::warn!(%address, "a dashboard sign-in was refused");
        return sign_in_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That key is not valid.".to_owned()),
        );
    }
    state.sign_in_throttle.succeeded(address);
    let token = random_token();
    let now = Utc::now();
    state
        .connections
        .store()
        .create_console_session(&hash_token(&token), now + SESSION_LIFETIME, now)
        .await?;
    tracing::info!(%address, "signed in to the dashboard");
    let mut response = see_other("/ui");
    set_cookie(
        &state,
        &mut response,
        &format!(
            "{SESSION_COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Lax; Max-Age={}",
            SESSION_LIFETIME.num_seconds()
        ),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, ConsoleError> {
    signed_in.check(&form.csrf)?;
    state
        .connections
        .store()
        .delete_console_session(&hash_token(&signed_in.token))
        .await?;
    let mut response = see_other("/ui/sign-in");
    set_cookie(
        &state,
        &mut response,
        &format!("{SESSION_COOKIE}=; Path=/ui; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(response)
}

/// Adds a `Set-Cookie`, `Secure` when browsers reach Plugboard over https.
fn set_cookie(state: &AppState, response: &mut Response, cookie: &str) {
    let secure = if state.server.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    if let Ok(value) = HeaderValue::from_str(&format!("{cookie}{secure}")) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_sign_ins_wait_longer_each_time_up_to_a_minute() {
        let waits: Vec<Option<u64>> = (0..14)
            .map(|count| wait_after(count).map(|w| w.as_secs()))
            .collect();
        assert_eq!(
            waits,
            [
                None,
                None,
                None,
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60),
                Some(60),
                Some(60)
            ]
        );
    }

    #[test]
    fn failures_from_many_addresses_keep_a_bounded_table() {
        let throttle = SignInThrottle::default();
        for n in 0..=MAX_ADDRESSES as u32 {
            throttle.failed(IpAddr::from(n.to_be_bytes()));
        }
        let failures = throttle.failures.lock().unwrap();
        assert_eq!(failures.len(), MAX_ADDRESSES);
        assert!(failures.contains_key(&IpAddr::from((MAX_ADDRESSES as u32).to_be_bytes())));
    }

    #[test]
    fn a_throttled_address_does_not_hold_up_another() {
        let throttle = SignInThrottle::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..FREE_FAILURES + 1 {
            throttle.failed(a);
        }
        assert!(throttle.wait(a).is_some());
        assert!(throttle.wait(b).is_none());
        throttle.succeeded(a);
        assert!(throttle.wait(a).is_none());
    }
}
