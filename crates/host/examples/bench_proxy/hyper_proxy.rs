//! The benchmark's second floor: the least an HTTP reverse proxy does.
//!
//! A hyper server hands each request, as it is, to a pooled hyper client with one fixed
//! `Authorization` header put in; the answer streams back as it is. No API key check, no
//! connection lookup, no token refresh, no routing, no logging, no metrics. It parses and
//! writes HTTP on both sides as Plugboard does, on the same multi-threaded runtime, so what
//! Plugboard loses against it is the cost of Plugboard's own work per request, not of HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The argument that makes the benchmark's own executable run as this proxy.
const MODE: &str = "hyper-proxy";

/// The proxy in its own process, like Plugboard, so that its CPU is measured apart.
pub struct HyperProxy {
    pub child: Child,
    pub url: String,
}

impl HyperProxy {
    /// Starts this executable as a proxy to `upstream` (`host:port`) that sends `token` as a
    /// bearer token, and waits until it listens.
    pub fn start(upstream: &str, token: &str) -> HyperProxy {
        let mut child = Command::new(std::env::current_exe().expect("the benchmark's own path"))
            .args([MODE, upstream])
            .env("BENCH_PROXY_TOKEN", token)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the hyper proxy");
        let mut port = String::new();
        BufReader::new(child.stdout.take().expect("the proxy's stdout"))
            .read_line(&mut port)
            .expect("reading the proxy's port");
        HyperProxy {
            child,
            url: format!("http://127.0.0.1:{}", port.trim()),
        }
    }
}

impl Drop for HyperProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When this process was started as the proxy (`<exe> hyper-proxy HOST:PORT`, the token in
/// `BENCH_PROXY_TOKEN`), serves until killed and never returns; otherwise returns at once.
pub fn serve_if_asked() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(MODE) {
        return;
    }
    let upstream = args
        .next()
        .expect("usage: bench_proxy hyper-proxy HOST:PORT");
    let token = std::env::var("BENCH_PROXY_TOKEN").expect("BENCH_PROXY_TOKEN");
    let authorization =
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a token fits in a header");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the proxy's runtime")
        .block_on(serve(upstream, authorization));
}

async fn serve(upstream: String, authorization: HeaderValue) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the proxy");
    // The parent reads the port from the first line.
    println!(
        "{}",
        listener.local_addr().expect("the proxy's address").port()
    );
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (client, upstream, authorization) =
            (client.clone(), upstream.clone(), authorization.clone());
        tokio::spawn(async move {
            let service = service_fn(move |mut request: Request<Incoming>| {
                let target = format!(
                    "http://{upstream}{}",
                    request.uri().path_and_query().map_or("/", |p| p.as_str())
                );
                *request.uri_mut() = target.parse::<Uri>().expect("a valid target");
                request.headers_mut().remove(HOST);
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, authorization.clone());
                client.request(request)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
