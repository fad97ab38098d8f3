//! `ANY /proxy/{*path}`: a request forwarded to the provider's API with the connection's token
//! (or API key, placed as the spec says).
//!
//! Method, query, body and ordinary headers pass through; hop-by-hop headers and Plugboard's
//! own (`Authorization`, `Connection-Id`, `Integration`, `Retries`) do not. Responses stream
//! back as they arrive. Request bodies with a known length up to [`REPLAYABLE_BODY`] are held in
//! memory so the request can be sent again (after a token refresh, or a 429/503); larger or
//! chunked bodies stream straight through and are sent once.
//!
//! Each connection has at most `[server] max_proxy_requests_per_connection` requests in flight
//! (more are answered 429 `too_many_concurrent_requests` at once), each within `[server]
//! proxy_timeout` to the last byte of its answer. Answers, redirects included, come back as the
//! provider sent them, never followed and never decompressed.
//!
//! A 401 from an OAuth provider gets one token refresh (or the token another request already
//! refreshed) and one more attempt. `Retries: N` (0 to 10, default 0) asks for up to N more
//! attempts after a 429 or 503, each after the provider's `Retry-After` (capped by the spec's
//! `max_backoff`) or an exponential backoff without one.
//!
//! The path is taken from the raw request URI, not the decoded route parameter, so that
//! `resolve_url` sees `%2e%2e` and friends and refuses them instead of their decoded form
//! slipping through.

use std::net::IpAddr;
use std::time::Instant;

use axum::body::HttpBody as _;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use plugboard_core::http::{RetryPolicy, resolve_url};
use plugboard_core::spec::RetrySpec;

use super::{ApiError, AppState, ErrorBody, auth};
use crate::refresh::REFRESH_MARGIN;
use crate::telemetry::metrics;
use crate::upstream::UpstreamError;

/// Bodies up to this size are kept so a request can be retried.
const REPLAYABLE_BODY: u64 = 1024 * 1024;
/// Most retries a caller may ask for with `Retries: N`.
const MAX_RETRIES: u32 = 10;
/// Statuses the proxy retries when asked to: throttling and unavailability, both of which
/// come with `Retry-After` at Microsoft.
const RETRY_STATUSES: [u16; 2] = [429, 503];

const CONNECTION_ID: HeaderName = HeaderName::from_static("connection-id");
const INTEGRATION: HeaderName = HeaderName::from_static("integration");
const RETRIES: HeaderName = HeaderName::from_static("retries");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// The proxy's route, as request logs name it.
const ROUTE: &str = "/proxy/{*path}";

/// Whether `path` is the proxy's: `/proxy/` and something after it.
pub fn handles(path: &str) -> bool {
    path.strip_prefix("/proxy/")
        .is_some_and(|rest| !rest.is_empty())
}

/// A request to the proxy, answered as the router answers its routes: the API key checked,
/// then [`forward`]ed, with its request id, log line and metrics.
#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/proxy/{path}",
    tag = "proxy",
    operation_id = "proxy",
    summary = "Call the provider's API for a connection",
    description = "The request goes to the provider's API with the connection's token (or API \
        key) added, its method, query, body and ordinary headers passed through; the answer \
        streams back as it comes. A 401 from an OAuth provider gets one token refresh and one \
        more attempt. The statuses below are Plugboard's own answers, with its error body; any \
        status may also be the provider's answer, passed through with its own body.",
    params(
        ("path" = String, Path, description = "The path below the provider's API base URL, of \
            one or more segments, such as `v1.0/me/people`; the query passes through too."),
        ("Integration" = String, Header, description = "The connection's integration."),
        ("Connection-Id" = String, Header, description = "The caller's key for the connection."),
        ("Retries" = Option<u32>, Header, description = "Up to this many more attempts (0 to 10, \
            default 0) after a 429 or 503, each after the provider's `Retry-After`."),
    ),
    request_body(content_type = "*/*", description = "Sent to the provider as it came."),
    responses(
        (status = "default", description = "The provider's answer: its status, headers (less \
            hop-by-hop ones) and body as it sent them.", content(("*/*"))),
        (status = 400, description = "No `Integration` or `Connection-Id` header \
            (`missing_header`), a `Retries` header out of range (`invalid_header`), a path \
            outside the provider's API (`path_refused`), or a body that could not be read \
            (`invalid_body`).", body = ErrorBody),
        (status = 404, description = "No such integration or connection \
            (`integration_not_found`, `connection_not_found`).", body = ErrorBody),
        (status = 429, description = "The connection already has `[server] \
            max_proxy_requests_per_connection` proxied requests in flight \
            (`too_many_concurrent_requests`), or too many requests with a wrong API key came \
            from the caller's address (`too_many_failed_attempts`); try again after \
            `Retry-After`. A 429 with any other body is the provider's.", body = ErrorBody),
        (status = 409, description = "The provider refused a refresh: the end user must \
            connect again (`needs_reconnect`).", body = ErrorBody),
        (status = 502, description = "The integration is misconfigured \
            (`integration_misconfigured`, `invalid_credential`), or the provider could not be \
            reached (`upstream_unreachable`).", body = ErrorBody),
        (status = 504, description = "The provider did not answer within `[server] \
            proxy_timeout` (`upstream_timeout`); an answer whose body is still streaming then \
            is cut off.", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub fn serve(
    state: AppState,
    peer: Option<IpAddr>,
    request: Request,
) -> impl Future<Output = Response> {
    let route = ::metrics::SharedString::const_str(ROUTE);
    super::requests::observed(route, request, move |request| answer(state, peer, request))
}

async fn answer(state: AppState, peer: Option<IpAddr>, request: Request) -> Response {
    if let Some(refused) = auth::refusal(&state, request.headers(), peer) {
        return refused;
    }
    // Boxed: the request's whole state (its parts, the upstream request and answer, the
    // retries' bookkeeping) is kilobytes, and every future around it would hold it inline and
    // copy it as it starts, each layer once, on every request (BENCHMARKS.md, "Proxy
    // overhead"). One allocation costs less than those copies.
    Box::pin(forward(state, request)).await.into_response()
}

/// The old, non-standard spelling of `Connection` some proxies and servers still send.
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one hop, never the end-to-end message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    PROXY_CONNECTION,
];

/// The headers a message's `Connection` (and `Proxy-Connection`) header names: hop-by-hop too.
fn named_hop_by_hop(headers: &HeaderMap) -> Vec<String> {
    [header::CONNECTION, PROXY_CONNECTION]
        .iter()
        .flat_map(|connection| headers.get_all(connection))
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

async fn forward(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let integration_name = required_header(&parts.headers, &INTEGRATION)?;
    let connection_id = required_header(&parts.headers, &CONNECTION_ID)?;
    let retries = retries(&parts.headers)?;
    let integration = &state.integration(integration_name)?;
    let connection = state
        .connections
        .named(integration_name, connection_id)
        .await?
        .ok_or_else(|| ApiError::connection_not_found(connection_id, integration_name))?;
    let limit = state.server.max_proxy_requests_per_connection;
    let slot = state
        .upstream
        .admit(&connection, limit)
        .ok_or_else(|| too_many_concurrent_requests(limit))?;
    let mut connection = state
        .connections
        .fresh(integration, connection, REFRESH_MARGIN)
        .await?;

    let target = target(&parts.uri)?;
    let base = integration
        .api_base_url(&connection.connection_config)
        .map_err(|why| ApiError::new(StatusCode::BAD_GATEWAY, "integration_misconfigured", why))?;
    let url = resolve_url(base.as_ref(), target)
        .map_err(|refused| ApiError::bad_request("path_refused", refused.to_string()))?;
    // An API key that goes in the query is the same on every attempt (it is never refreshed),
    // so the target is made once.
    let url = integration
        .credential(&connection)
        .url_with_key(&url)
        .unwrap_or(url);
    let uri = request_uri(url)?;
    let mut body = Outgoing::read(body).await?;
    let policy = (retries > 0).then(|| {
        RetryPolicy::from_spec(&RetrySpec {
            statuses: RETRY_STATUSES.to_vec(),
            max_attempts: retries + 1,
            ..integration.api().retry.clone()
        })
    });

    let mut attempt = 1;
    let mut refreshed = false;
    loop {
        // The headers are built anew for each attempt, since a refresh changes the token,
        // rather than cloned: most requests have only one attempt.
        let mut headers = forwarded_headers(&parts.headers, &integration.default_headers);
        integration
            .credential(&connection)
            .apply_to_headers(&mut headers)
            .map_err(|e| {
                ApiError::new(StatusCode::BAD_GATEWAY, "invalid_credential", e.to_string())
            })?;
        let mut outgoing = axum::http::Request::new(body.for_attempt());
        *outgoing.method_mut() = parts.method.clone();
        *outgoing.uri_mut() = uri.clone();
        *outgoing.headers_mut() = headers;
        let sent = Instant::now();
        let response = state
            .upstream
            .send(outgoing, state.server.proxy_timeout, slot.clone())
            .await
            .map_err(upstream_error)?;
        metrics::upstream_latency(integration_name, sent.elapsed());
        let status = response.status().as_u16();
        let replayable = body.replayable();
        // An API key cannot be refreshed: its 401 is the provider's answer.
        if status == 401 && replayable && !refreshed && integration.refreshes() {
            // The token may have been revoked or expired early; `replace` refreshes only if
            // no other request already did, then this request tries once more.
            refreshed = true;
            connection = state
                .connections
                .replace(integration, &connection.key, connection.token_version)
                .await?;
            continue;
        }
        if let Some(policy) = &policy
            && replayable
            && policy.retries_status(status)
        {
            let response_headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            if let Some(delay) = policy.delay_after_status(attempt, status, &response_headers) {
                tracing::debug!(status, attempt, ?delay, "proxy retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
        }
        metrics::proxied(integration_name, response.status());
        return Ok(stream_back(response));
    }
}

fn required_header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("missing_header", format!("the `{name}` header is required"))
        })
}

fn retries(headers: &HeaderMap) -> Result<u32, ApiError> {
    let Some(value) = headers.get(RETRIES) else {
        return Ok(0);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| *n <= MAX_RETRIES)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_header",
                format!("`Retries` must be a number from 0 to {MAX_RETRIES}"),
            )
        })
}

/// The provider-relative target from the raw request path, with the query as it came.
fn target(uri: &axum::http::Uri) -> Result<&str, ApiError> {
    let raw = uri
        .path_and_query()
        .map_or(uri.path(), |target| target.as_str());
    let rest = raw.strip_prefix("/proxy").unwrap_or(raw);
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    if path.contains("://") || path.starts_with("//") {
        return Err(ApiError::bad_request(
            "path_refused",
            "send a path below the provider's API, not an absolute URL",
        ));
    }
    Ok(rest)
}

/// The caller's headers minus hop-by-hop and Plugboard's own, plus the spec's defaults for
/// headers the caller did not set.
fn forwarded_headers(incoming: &HeaderMap, defaults: &HeaderMap) -> HeaderMap {
    let named = named_hop_by_hop(incoming);
    let mut headers = HeaderMap::with_capacity(incoming.len());
    for (name, value) in incoming {
        let ours = [
            header::HOST,
            header::AUTHORIZATION,
            header::CONTENT_LENGTH,
            CONNECTION_ID,
            INTEGRATION,
            RETRIES,
        ]
        .contains(name);
        if ours || HOP_BY_HOP.contains(name) || named.iter().any(|n| n == name.as_str()) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    for (name, value) in defaults {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers
}

/// The request body: in memory when it may be sent again, else a stream sent once.
enum Outgoing {
    Replayable(Bytes),
    Stream(Option<Body>),
}

impl Outgoing {
    async fn read(body: Body) -> Result<Outgoing, ApiError> {
        let size = body.size_hint().upper();
        // Most proxied requests are GETs: nothing to read, and no reading machinery to set up.
        if size == Some(0) {
            return Ok(Outgoing::Replayable(Bytes::new()));
        }
        if size.is_none_or(|n| n > REPLAYABLE_BODY) {
            return Ok(Outgoing::Stream(Some(body)));
        }
        let bytes = axum::body::to_bytes(body, REPLAYABLE_BODY as usize)
            .await
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("reading the request body failed: {e}"),
                )
            })?;
        Ok(Outgoing::Replayable(bytes))
    }

    fn replayable(&self) -> bool {
        matches!(self, Outgoing::Replayable(_))
    }

    fn for_attempt(&mut self) -> Body {
        match self {
            // An empty body needs no allocation; most proxied requests are GETs.
            Outgoing::Replayable(bytes) if bytes.is_empty() => Body::empty(),
            Outgoing::Replayable(bytes) => Body::from(bytes.clone()),
            // `replayable()` is false for streams, so there is only ever one attempt.
            Outgoing::Stream(body) => body.take().unwrap_or_else(Body::empty),
        }
    }
}

/// The resolved URL as the request target hyper sends; taken by value so that its text
/// becomes the target's without a copy.
fn request_uri(url: url::Url) -> Result<axum::http::Uri, ApiError> {
    axum::http::Uri::try_from(String::from(url)).map_err(|_| {
        ApiError::bad_request(
            "path_refused",
            "the path and query do not form a valid HTTP request target",
        )
    })
}

/// The provider's answer minus its hop-by-hop headers (those its `Connection` header names
/// included), its body streamed as it arrives.
fn stream_back(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for name in named_hop_by_hop(headers) {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    response
}

/// The answer to a request beyond its connection's share: at once, rather than queued, so a
/// caller looping on one account learns it and no queue grows without end.
fn too_many_concurrent_requests(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_concurrent_requests",
        format!(
            "this connection already has {limit} proxied requests in flight, the most \
             `[server] max_proxy_requests_per_connection` allows; try again when one has finished"
        ),
    )
    .retry_after(1)
}

fn upstream_error(error: UpstreamError) -> ApiError {
    match error {
        UpstreamError::Timeout => {
            tracing::warn!("proxied request timed out");
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the provider did not answer in time",
            )
        }
        // Without the URL: its query may hold personal data.
        UpstreamError::Failed(error) => {
            tracing::warn!(%error, "proxied request failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("the provider could not be reached: {error}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_takes_what_its_route_pattern_matches() {
        for path in ["/proxy/v1.0/me", "/proxy//evil.example/x", "/proxy/%2e%2e"] {
            assert!(handles(path), "{path}");
        }
        for path in ["/proxy/", "/proxy", "/proxyv1.0/me", "/connections", "/"] {
            assert!(!handles(path), "{path}");
        }
    }

    #[test]
    fn targets_come_from_the_raw_path_and_refuse_absolute_urls() {
        let target_of = |uri: &str| target(&uri.parse().unwrap()).map(str::to_owned);
        assert_eq!(
            target_of("/proxy/v1.0/me/people?$top=50").unwrap(),
            "/v1.0/me/people?$top=50"
        );
        assert_eq!(target_of("/proxy/v1.0/%2e%2e/x").unwrap(), "/v1.0/%2e%2e/x");
        assert_eq!(
            target_of("/proxy/v1.0/me?next=https://elsewhere.example/").unwrap(),
            "/v1.0/me?next=https://elsewhere.example/",
            "a URL in the query is the provider's business"
        );
        for bad in ["/proxy/https://evil.example/x", "/proxy//evil.example/x"] {
            assert!(target_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_providers_hop_by_hop_headers_stay_there() {
        let mut answer = Response::new(Body::empty());
        for (name, value) in [
            ("connection", "close, x-upstream-hop"),
            ("proxy-connection", "x-other-hop"),
            ("x-upstream-hop", "1"),
            ("x-other-hop", "2"),
            ("keep-alive", "timeout=5"),
            ("content-type", "application/json"),
            ("x-ms-request-id", "r1"),
        ] {
            answer
                .headers_mut()
                .append(HeaderName::from_static(name), value.parse().unwrap());
        }
        let back = stream_back(answer);
        let mut names: Vec<&str> = back.headers().keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-ms-request-id"]);
    }

    #[test]
    fn hop_by_hop_and_plugboard_headers_stay_here() {
        let mut incoming = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer plugboard-key"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("integration", "microsoft"),
            ("connection-id", "c1"),
            ("retries", "2"),
            ("host", "127.0.0.1:3003"),
            ("content-type", "application/json"),
            ("accept", "text/plain"),
            ("x-request-id", "abc"),
        ] {
            incoming.append(HeaderName::from_static(name), value.parse().unwrap());
        }
        let mut defaults = HeaderMap::new();
        defaults.insert("accept", "application/json".parse().unwrap());
        defaults.insert("x-default", "d".parse().unwrap());
        let headers = forwarded_headers(&incoming, &defaults);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["accept", "content-type", "x-default", "x-request-id"]
        );
        assert_eq!(
            headers["accept"], "text/plain",
            "the caller's header wins over the default"
        );
    }
}
