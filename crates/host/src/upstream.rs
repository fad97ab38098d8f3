//! The proxy's HTTP client: hyper's pooled HTTP/1 client, used directly.
//!
//! A proxied request is one request forwarded and one response streamed back, which is what
//! hyper's client does. reqwest (the rest of the process's client) adds per request a URL
//! round trip, copies of the header map, its own future and body wrappers; on the proxy's hot
//! path those showed up as a measurable share of Plugboard's CPU per request (see
//! BENCHMARKS.md, "Proxy overhead"). The rules stay those of
//! [`plugboard_core::http::http_client`]: redirects are never followed (hyper does not follow
//! them), a connection gets 10 s to open, a request [`DEFAULT_REQUEST_TIMEOUT`] from sending
//! to the last byte of the answer, `TCP_NODELAY` is set, HTTPS uses rustls with the webpki
//! roots, and requests without `User-Agent` or `Accept` get reqwest's defaults.

use std::error::Error as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{ACCEPT, USER_AGENT};
use axum::http::{HeaderValue, Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use plugboard_core::http::DEFAULT_REQUEST_TIMEOUT;
use tokio::time::Sleep;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// What reqwest sends when the caller sets none, so the provider sees the same requests
/// from the proxy as from syncs and actions.
const DEFAULT_USER_AGENT: &str = concat!("plugboard/", env!("CARGO_PKG_VERSION"));
const DEFAULT_ACCEPT: &str = "*/*";

/// Why a request got no answer.
#[derive(Debug)]
pub enum UpstreamError {
    /// No answer within [`DEFAULT_REQUEST_TIMEOUT`].
    Timeout,
    /// The connection failed or broke; the message names why, never the URL or a header.
    Failed(String),
}

/// One connection pool for every proxied request.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
}

impl Upstream {
    pub fn new() -> Upstream {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(https);
        Upstream { client }
    }

    /// Sends `request` and returns the answer once its headers arrived; its body streams on
    /// under the same deadline.
    pub async fn send(&self, mut request: Request<Body>) -> Result<Response<Body>, UpstreamError> {
        let headers = request.headers_mut();
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(DEFAULT_USER_AGENT));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static(DEFAULT_ACCEPT));
        let mut deadline = Box::pin(tokio::time::sleep(DEFAULT_REQUEST_TIMEOUT));
        let response = tokio::select! {
            biased;
            response = self.client.request(request) => response.map_err(failed)?,
            () = deadline.as_mut() => return Err(UpstreamError::Timeout),
        };
        Ok(response.map(|incoming| {
            Body::new(Deadline {
                inner: incoming,
                deadline,
            })
        }))
    }
}

/// The error and its causes, e.g. "client error (Connect): tcp connect error: Connection
/// refused (os error 111)".
fn failed(error: hyper_util::client::legacy::Error) -> UpstreamError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    UpstreamError::Failed(message)
}

/// A response body that fails once the request's deadline has passed.
struct Deadline {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(
                "the provider did not finish its answer in time".into(),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
