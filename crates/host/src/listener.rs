//! The accept loop of the API (and of the management listener): HTTP/1.1 connections with read
//! timeouts and a cap on how many are open.
//!
//! `axum::serve` reads requests without a time limit, so a client that sends half a request
//! line, keeps an idle keep-alive connection, or never finishes a body holds a connection, a
//! task and a file descriptor for as long as it likes, without authenticating (slowloris).
//! Here every connection is served by hyper's HTTP/1.1 server with:
//! - a header read timeout, running from the moment the connection waits for a request (at
//!   accept, and after each response on a keep-alive connection): a silent, slow or idle
//!   client is disconnected;
//! - a body read timeout: each part of a request body must arrive within it, or reading the
//!   body fails and the request is answered with an error;
//! - a cap on open connections: at the cap, accepting waits until one closes, so a flood of
//!   connections queues in the kernel's backlog instead of exhausting file descriptors.
//!
//! HTTP/1.1 only. HTTP/2 without TLS (h2c) is spoken by no browser, and hyper-util's protocol
//! detection reads the first bytes without any timer, which would reopen the hole.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Sleep;
use tower_service::Service;

/// How long a connection may take, and how many may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From waiting for a request to having read its whole head.
    pub header_read_timeout: Duration,
    /// Between two parts of a request body.
    pub body_read_timeout: Duration,
    /// Connections open at once; further ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// How long accepting pauses after an error such as "too many open files", which would
/// otherwise repeat at once in a busy loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `listener` until `shutdown` completes, each connection with the service `connect`
/// makes for its client's address; then stops accepting and waits for the requests in flight.
pub async fn serve<S>(
    listener: TcpListener,
    limits: Limits,
    connect: impl Fn(SocketAddr) -> S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let max_connections = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let open = Arc::new(Semaphore::new(max_connections as usize));
    let closing = Arc::new(Closing::default());
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers go out at once instead of waiting for the peer's delayed ACK (Nagle).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = connect(peer);
        let body_read_timeout = limits.body_read_timeout;
        let requests = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let request = request.map(|body| Body::new(ReadTimeout::new(body, body_read_timeout)));
            service.clone().call(request)
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(tcp), requests);
        let (id, stop) = closing.open();
        let closing = closing.clone();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let ended = tokio::select! {
                biased;
                ended = connection.as_mut() => ended,
                _ = stop => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            closing.closed(id);
            drop(permit);
        });
    }
    drop(listener);
    closing.close_all();
    // Every connection holds a permit until it has ended: all of them back means all ended.
    let _ = open.acquire_many(max_connections).await;
}

/// How the accept loop asks its open connections to finish: each has a one-shot channel of
/// its own.
///
/// hyper-util's `GracefulShutdown` has every connection wait on one shared `watch` channel,
/// whose wait takes the channel's one lock on each wake of every connection, several times a
/// request, from every worker thread. A one-shot channel per connection is polled with atomics
/// on memory no other connection touches; the shared lock here is taken only as connections
/// open and close.
#[derive(Default)]
struct Closing(Mutex<OpenConnections>);

#[derive(Default)]
struct OpenConnections {
    next_id: u64,
    stops: HashMap<u64, oneshot::Sender<()>>,
}

impl Closing {
    /// A new connection's id, and what resolves when it is asked to finish.
    fn open(&self) -> (u64, oneshot::Receiver<()>) {
        let (stop, stopped) = oneshot::channel();
        let mut open = self.connections();
        let id = open.next_id;
        open.next_id += 1;
        open.stops.insert(id, stop);
        (id, stopped)
    }

    /// The connection `id` has ended.
    fn closed(&self, id: u64) {
        self.connections().stops.remove(&id);
    }

    /// Asks every open connection to finish the request it is serving, then close.
    fn close_all(&self) {
        for (_, stop) in self.connections().stops.drain() {
            let _ = stop.send(());
        }
    }

    fn connections(&self) -> MutexGuard<'_, OpenConnections> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request body whose every part must arrive within `timeout` of asking for it.
///
/// It passes the body's size hint and end through, which the proxy relies on: a body of known,
/// small size is kept to be sent again after a token refresh, and an empty one costs no timer.
struct ReadTimeout {
    body: Incoming,
    timeout: Duration,
    /// Armed while a part is awaited; dropped when it arrives.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl ReadTimeout {
    fn new(body: Incoming, timeout: Duration) -> Self {
        ReadTimeout {
            body,
            timeout,
            deadline: None,
        }
    }
}

/// Reading the body took longer than `[server] body_read_timeout` between two parts.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no part of the request body within {0:?}")]
struct BodyReadTimedOut(Duration);

impl HttpBody for ReadTimeout {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyReadTimedOut(timeout).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
