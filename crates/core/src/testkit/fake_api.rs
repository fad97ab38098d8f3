//! A small fake of a provider's API over real HTTP, for a provider's own tests.
//!
//! The Microsoft emulator fakes one API in depth; a new provider's author needs a few lines
//! that answer like their API does, so that the sync runs through [`TestContext`](super::TestContext)
//! as it does in the host: real requests, real paging, real credentials placed as the spec says.
//! The fake speaks just enough HTTP/1.1 for that (one request per connection, bodies ignored)
//! on a thread of its own, so it needs no runtime and works inside and outside `block_on`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use serde_json::Value;

/// A request the fake received: its method, path, decoded query and headers.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
}

impl FakeRequest {
    /// The first query parameter of that name.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first header of that name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The fake's answer.
#[derive(Debug, Clone)]
pub struct FakeResponse {
    pub status: u16,
    pub body: Value,
}

impl FakeResponse {
    pub fn json(status: u16, body: Value) -> Self {
        FakeResponse { status, body }
    }
}

type Handler = dyn Fn(&FakeRequest) -> FakeResponse + Send + Sync;

/// A running fake; it stops when dropped.
pub struct FakeApi {
    url: String,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Starts a fake on a free loopback port, answering every request with `handler`.
    pub fn start(
        handler: impl Fn(&FakeRequest) -> FakeResponse + Send + Sync + 'static,
    ) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the fake");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    requests.fetch_add(1, Ordering::SeqCst);
                    let handler = handler.clone();
                    std::thread::spawn(move || serve(stream, &*handler));
                }
            })
        };
        FakeApi {
            url,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`: the API base URL to test against.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many requests the fake has received.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request's head and writes the handler's answer, closing the connection.
fn serve(stream: TcpStream, handler: &Handler) {
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut lines = BufReader::new(reader).lines();
    let Some(Ok(request_line)) = lines.next() else {
        return;
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return;
    };
    let mut headers = Vec::new();
    for line in lines.map_while(Result::ok) {
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = FakeRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        headers,
    };
    let response = handler(&request);
    let body = response.body.to_string();
    let head = format!(
        "HTTP/1.1 {} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        body.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}
