//! An API behind Azure API Management, which authenticates callers with a subscription key
//! instead of OAuth: the emulator's API-key service, for providers with `auth.mode = "api_key"`.
//!
//! As APIM does, the key is accepted in the `Ocp-Apim-Subscription-Key` header or the
//! `subscription-key` query parameter; a request without one, or with a key that is unknown or
//! revoked, is answered 401 with APIM's own body (`{"statusCode": 401, "message": "Access
//! denied due to …"}`) before it reaches the API. The API itself is APIM's sample "Echo API",
//! under `/apim`:
//!
//! | route | answer |
//! |---|---|
//! | `GET /apim/subscription` | the key's subscription: `{"id", "name"}` (an account endpoint) |
//! | `ANY /apim/echo/{*path}` | the request as received: subscription, method, path, query (without the key), where the key was found |
//!
//! Keys are issued and revoked through the control API (`POST /_emulator/subscriptions`,
//! `DELETE /_emulator/subscriptions/{id}`). This imitates Microsoft's documented gateway
//! behaviour; it is not part of Graph.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::control::types::SubscriptionInfo;
use crate::random;
use crate::state::AppState;

/// The header APIM reads the key from.
pub const KEY_HEADER: &str = "Ocp-Apim-Subscription-Key";
/// The query parameter APIM reads the key from when the header is absent.
pub const KEY_PARAM: &str = "subscription-key";

/// Issued subscriptions by key.
#[derive(Default)]
pub struct Subscriptions {
    by_key: HashMap<String, SubscriptionInfo>,
}

impl Subscriptions {
    /// A new subscription with a fresh random key.
    pub fn create(&mut self, name: Option<String>) -> SubscriptionInfo {
        let id = random::guid();
        let info = SubscriptionInfo {
            name: name.unwrap_or_else(|| format!("subscription {}", &id[..8])),
            id,
            key: random::opaque(16),
        };
        self.by_key.insert(info.key.clone(), info.clone());
        info
    }

    /// Removes the subscription; its key stops working at once.
    pub fn revoke(&mut self, id: &str) -> Option<SubscriptionInfo> {
        let key = self.by_key.values().find(|s| s.id == id)?.key.clone();
        self.by_key.remove(&key)
    }

    fn by_key(&self, key: &str) -> Option<&SubscriptionInfo> {
        self.by_key.get(key)
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/apim/subscription", get(subscription))
        .route("/apim/echo/{*path}", any(echo))
}

/// Where a request's key was found.
#[derive(Clone, Copy)]
enum Location {
    Header,
    Query,
}

/// The caller's subscription, or the message of APIM's 401 ([`denied`]).
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> Result<(SubscriptionInfo, Location), &'static str> {
    let found = match headers.get(KEY_HEADER).and_then(|v| v.to_str().ok()) {
        Some(key) => Some((key, Location::Header)),
        None => query.get(KEY_PARAM).map(|k| (k.as_str(), Location::Query)),
    };
    let Some((key, location)) = found else {
        return Err(
            "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
        );
    };
    match state.read().subscriptions.by_key(key) {
        Some(subscription) => Ok((subscription.clone(), location)),
        None => Err(
            "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.",
        ),
    }
}

fn denied(message: &str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"statusCode": 401, "message": message})),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "AzureApiManagementKey realm=\"apim\",name=\"Ocp-Apim-Subscription-Key\",type=\"header\"",
        ),
    );
    response
}

async fn subscription(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    match authenticate(&state, &headers, &query) {
        Ok((subscription, _)) => {
            Json(json!({"id": subscription.id, "name": subscription.name})).into_response()
        }
        Err(message) => denied(message),
    }
}

async fn echo(
    State(state): State<AppState>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    Query(mut query): Query<BTreeMap<String, String>>,
) -> Response {
    let (subscription, location) = match authenticate(&state, &headers, &query) {
        Ok(found) => found,
        Err(message) => return denied(message),
    };
    query.remove(KEY_PARAM);
    let body: Value = json!({
        "subscription": {"id": subscription.id, "name": subscription.name},
        "method": method.as_str(),
        "path": format!("/{path}"),
        "query": query,
        "key_location": match location {
            Location::Header => "header",
            Location::Query => "query",
        },
    });
    Json(body).into_response()
}
