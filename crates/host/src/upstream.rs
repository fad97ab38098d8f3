//! The proxy's HTTP client: hyper's pooled HTTP/1 client, used directly.
//!
//! A proxied request is one request forwarded and one response streamed back, which is what
//! hyper's client does. reqwest (the rest of the process's client) adds per request a URL
//! round trip, copies of the header map, its own future and body wrappers; on the proxy's hot
//! path those showed up as a measurable share of Plugboard's CPU per request (see
//! BENCHMARKS.md, "Proxy overhead"). The rules stay those of
//! [`plugboard_core::http::http_client`]: redirects are never followed (hyper does not follow
//! them), a connection gets 10 s to open, a request `[server] proxy_timeout` (by default
//! [`DEFAULT_REQUEST_TIMEOUT`], as for syncs) from sending to the last byte of the answer, so
//! a provider that drips its answer, pauses in it or never ends it is cut there, `TCP_NODELAY`
//! is set, HTTPS uses rustls with the webpki roots, and requests without `User-Agent` or
//! `Accept` get reqwest's defaults. Nothing is decompressed: bodies pass through as sent.
//!
//! Each connection (an end user's account) has at most `[server]
//! max_proxy_requests_per_connection` requests in flight, counted until the answer's body has
//! streamed out ([`Upstream::admit`]): one caller looping on one account cannot hold an
//! unbounded share of the host's sockets and memory, nor of the provider's patience. The count
//! is each process's own: replicas each allow that many.

use std::collections::HashMap;
use std::error::Error as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
#[cfg(doc)]
use plugboard_core::http::DEFAULT_REQUEST_TIMEOUT;
use plugboard_store::{Connection, ConnectionKey};
use tokio::time::Sleep;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// What reqwest sends when the caller sets none, so the provider sees the same requests
/// from the proxy as from syncs and actions.
const DEFAULT_USER_AGENT: &str = concat!("plugboard/", env!("CARGO_PKG_VERSION"));
const DEFAULT_ACCEPT: &str = "*/*";

/// Why a request got no answer.
#[derive(Debug)]
pub enum UpstreamError {
    /// No answer within the proxy's timeout.
    Timeout,
    /// The connection failed or broke; the message names why, never the URL or a header.
    Failed(String),
}

/// One connection pool for every proxied request, and the requests in flight per connection.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    in_flight: Arc<InFlight>,
}

/// Proxied requests in flight, by connection.
///
/// A connection's entry stays when its count falls to zero, so that counting the requests of a
/// connection in use allocates nothing; entries at zero are swept when the table has grown to
/// twice its size after the last sweep (and at least [`SWEEP_AT`]), which keeps it about as
/// large as the number of connections in use at once.
#[derive(Default)]
struct InFlight(Mutex<Counts>);

#[derive(Default)]
struct Counts {
    by_connection: HashMap<ConnectionKey, usize>,
    /// The table's size at which the next admission sweeps it.
    sweep_at: usize,
}

/// The smallest table that is swept.
const SWEEP_AT: usize = 1024;

impl InFlight {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One admitted request of a connection: it counts until the last clone is dropped, which is
/// when the answer's body has streamed out (or the request failed).
#[derive(Clone)]
pub struct Slot {
    _admitted: Arc<Admitted>,
}

struct Admitted {
    in_flight: Arc<InFlight>,
    connection: Arc<Connection>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.in_flight.counts();
        if let Some(count) = counts.by_connection.get_mut(&self.connection.key) {
            *count -= 1;
        }
    }
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
        Upstream {
            client,
            in_flight: Arc::default(),
        }
    }

    /// A slot for one more request of `connection`, unless `limit` of its requests are in
    /// flight.
    pub fn admit(&self, connection: &Arc<Connection>, limit: usize) -> Option<Slot> {
        let mut counts = self.in_flight.counts();
        match counts.by_connection.get_mut(&connection.key) {
            Some(count) if *count >= limit => return None,
            Some(count) => *count += 1,
            None => {
                if counts.by_connection.len() >= counts.sweep_at.max(SWEEP_AT) {
                    counts.by_connection.retain(|_, count| *count > 0);
                    counts.sweep_at = 2 * counts.by_connection.len();
                }
                counts.by_connection.insert(connection.key.clone(), 1);
            }
        }
        Some(Slot {
            _admitted: Arc::new(Admitted {
                in_flight: self.in_flight.clone(),
                connection: connection.clone(),
            }),
        })
    }

    /// Sends `request` and returns the answer once its headers arrived; its body streams on
    /// under the same deadline, `timeout` from now, and holds `slot` until it ends.
    pub async fn send(
        &self,
        mut request: Request<Body>,
        timeout: Duration,
        slot: Slot,
    ) -> Result<Response<Body>, UpstreamError> {
        let headers = request.headers_mut();
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(DEFAULT_USER_AGENT));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static(DEFAULT_ACCEPT));
        let mut deadline = Box::pin(tokio::time::sleep(timeout));
        let response = tokio::select! {
            biased;
            response = self.client.request(request) => response.map_err(failed)?,
            () = deadline.as_mut() => return Err(UpstreamError::Timeout),
        };
        Ok(response.map(|incoming| {
            Body::new(Deadline {
                inner: incoming,
                deadline,
                _slot: slot,
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

/// A response body that fails once the request's deadline has passed, holding its
/// connection's slot until it is dropped.
struct Deadline {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    _slot: Slot,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_gets_its_limit_of_slots_and_each_dropped_one_back() {
        let upstream = Upstream::new();
        let (a, b) = (connection("a"), connection("b"));
        let held: Vec<Slot> = (0..2).map(|_| upstream.admit(&a, 2).unwrap()).collect();
        assert!(upstream.admit(&a, 2).is_none(), "a third slot of two");
        assert!(
            upstream.admit(&b, 2).is_some(),
            "another connection is not held up"
        );

        // Clones (one per attempt at the request) count once, until the last is gone.
        let clone = held[0].clone();
        drop(held);
        assert!(upstream.admit(&a, 2).is_some());
        drop(clone);
        let counts = upstream.in_flight.counts();
        assert!(counts.by_connection.values().all(|count| *count == 0));
    }

    #[test]
    fn idle_connections_are_swept_as_the_table_grows() {
        let upstream = Upstream::new();
        let busy = connection("busy");
        let _held = upstream.admit(&busy, 1).unwrap();
        for n in 0..SWEEP_AT * 3 {
            drop(upstream.admit(&connection(&n.to_string()), 1).unwrap());
        }
        let counts = upstream.in_flight.counts();
        assert!(
            counts.by_connection.len() <= SWEEP_AT,
            "{} entries",
            counts.by_connection.len()
        );
        assert_eq!(counts.by_connection[&busy.key], 1, "one in use is kept");
        drop(counts);
        assert!(upstream.admit(&busy, 1).is_none(), "and still counted");
    }

    fn connection(id: &str) -> Arc<Connection> {
        Arc::new(plugboard_store::testing::connection("m", id))
    }
}
