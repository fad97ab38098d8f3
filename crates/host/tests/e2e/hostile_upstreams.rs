//! Providers that misbehave, through the real binary: a real TCP server in the test, writing
//! raw HTTP so it can drip an answer byte by byte, never end it, never answer at all, send a
//! 10 GB body, a gzip bomb, a redirect to another host or next links to another origin and to
//! a cloud metadata address. The proxy and a sync both meet it; each case ends within its
//! timeout with a clear error, the host's memory stays flat, and nothing is followed off the
//! API base URL (a second server, the canary, never hears a request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{World, reply};
use crate::syncs::{finished_run, syncing, trigger};

/// What the provider does with one request.
#[derive(Debug, Clone)]
pub(crate) enum Behaviour {
    /// 200 with this JSON body.
    Json(String),
    /// 200 with headers at once, then the body held back until [`Hostile::release`].
    Held,
    /// Reads the request and never answers.
    Silent,
    /// 200 announcing 1000 bytes, then one byte every 100 ms.
    Drip,
    /// 200, chunked, one chunk, then nothing ever again.
    Endless,
    /// 200 announcing 10 GB, then zeros as fast as they are taken.
    Huge,
    /// 200 `Content-Encoding: gzip`, chunked: a deflate stream of zeros that never ends, each
    /// 13 bytes inflating to 2064 (one GB of zeros is 6.5 MB of it).
    GzipBomb,
    /// 302 to this URL.
    Redirect(String),
}

/// A provider API on a loopback port that misbehaves as told, per path.
pub(crate) struct Hostile {
    pub url: String,
    /// The request line of every request received, in order.
    requests: Arc<Mutex<Vec<String>>>,
    /// Body bytes written to clients that took them.
    written: Arc<AtomicU64>,
    /// Bodies whose writing failed because the client had gone: a cut-off answer.
    abandoned: Arc<AtomicU64>,
    routes: Arc<Mutex<Vec<(String, Behaviour)>>>,
    release: Arc<tokio::sync::Notify>,
}

impl Hostile {
    pub(crate) async fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hostile = Hostile {
            url: format!("http://{}", listener.local_addr().unwrap()),
            requests: Arc::default(),
            written: Arc::default(),
            abandoned: Arc::default(),
            routes: Arc::default(),
            release: Arc::default(),
        };
        let server = hostile.clone_handles();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(server.clone_handles().serve(stream));
            }
        });
        hostile
    }

    fn clone_handles(&self) -> Hostile {
        Hostile {
            url: self.url.clone(),
            requests: self.requests.clone(),
            written: self.written.clone(),
            abandoned: self.abandoned.clone(),
            routes: self.routes.clone(),
            release: self.release.clone(),
        }
    }

    /// Answers requests whose path starts with `prefix` with `behaviour` (the latest matching
    /// route wins).
    pub(crate) fn route(&self, prefix: &str, behaviour: Behaviour) {
        self.routes
            .lock()
            .unwrap()
            .push((prefix.to_owned(), behaviour));
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Lets every [`Behaviour::Held`] body finish.
    pub(crate) fn release(&self) {
        self.release.notify_waiters();
    }

    async fn serve(self, mut stream: TcpStream) {
        loop {
            let Some(target) = read_request(&mut stream).await else {
                return;
            };
            self.requests.lock().unwrap().push(target.clone());
            let path = target.split(' ').nth(1).unwrap_or_default().to_owned();
            let behaviour = self
                .routes
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                .map(|(_, b)| b.clone())
                .unwrap_or(Behaviour::Json("{}".to_owned()));
            if self.answer(&mut stream, behaviour).await.is_err() {
                self.abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }

    async fn answer(&self, stream: &mut TcpStream, behaviour: Behaviour) -> std::io::Result<()> {
        let head = |extra: &str| {
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}\r\n")
        };
        match behaviour {
            Behaviour::Json(body) => {
                let answer = format!(
                    "{}{body}",
                    head(&format!("Content-Length: {}\r\n", body.len()))
                );
                stream.write_all(answer.as_bytes()).await
            }
            Behaviour::Held => {
                let released = self.release.notified();
                stream
                    .write_all(head("Content-Length: 2\r\n").as_bytes())
                    .await?;
                released.await;
                stream.write_all(b"{}").await
            }
            Behaviour::Silent => until_closed(stream).await,
            Behaviour::Drip => {
                stream
                    .write_all(head("Content-Length: 1000\r\n").as_bytes())
                    .await?;
                for _ in 0..1000 {
                    stream.write_all(b" ").await?;
                    self.written.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(())
            }
            Behaviour::Endless => {
                stream
                    .write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
                    .await?;
                stream.write_all(b"1\r\n[\r\n").await?;
                until_closed(stream).await
            }
            Behaviour::Huge => {
                stream
                    .write_all(head("Content-Length: 10000000000\r\n").as_bytes())
                    .await?;
                let zeros = vec![0u8; 64 * 1024];
                loop {
                    stream.write_all(&zeros).await?;
                    self.written.fetch_add(zeros.len() as u64, Ordering::SeqCst);
                }
            }
            Behaviour::GzipBomb => {
                stream
                    .write_all(
                        head("Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n").as_bytes(),
                    )
                    .await?;
                let mut first = GZIP_HEADER.to_vec();
                first.extend_from_slice(&DEFLATE_HEAD);
                stream.write_all(&chunk(&first)).await?;
                let zeros = chunk(&DEFLATE_ZEROS.repeat(5000));
                loop {
                    stream.write_all(&zeros).await?;
                    self.written.fetch_add(zeros.len() as u64, Ordering::SeqCst);
                }
            }
            Behaviour::Redirect(location) => {
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                );
                stream.write_all(answer.as_bytes()).await
            }
        }
    }
}

/// A gzip member header: deflate, no name, no time, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
/// The start of a deflate block with fixed Huffman codes (BFINAL 0, BTYPE 01) and the
/// literal 0, then the first bits of copies of it.
const DEFLATE_HEAD: [u8; 2] = [0x62, 0x18];
/// Eight copies of (length 258, distance 1), 13 bits each, continuing the bits of
/// `DEFLATE_HEAD`: repeated, the block goes on inflating to zeros for ever.
const DEFLATE_ZEROS: [u8; 13] = [
    0x05, 0xa3, 0x60, 0x14, 0x8c, 0x82, 0x51, 0x30, 0x0a, 0x46, 0xc1, 0x28, 0x18,
];

/// Waits, sending nothing more, until the client gives up on the answer.
async fn until_closed(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut rest = [0; 1024];
    while stream.read(&mut rest).await? > 0 {}
    Err(std::io::ErrorKind::ConnectionAborted.into())
}

/// `bytes` as one HTTP/1.1 chunk.
fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
    framed.extend_from_slice(bytes);
    framed.extend_from_slice(b"\r\n");
    framed
}

/// Reads one request's head (the host's requests to a provider here have no body): its
/// request line, or `None` once the client closed the connection.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    Some(head.lines().next().unwrap_or_default().to_owned())
}

/// The resident memory of process `pid`, in bytes.
fn resident_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/<pid>/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

/// How long each proxied request may take in these tests.
const PROXY_TIMEOUT: Duration = Duration::from_secs(3);
/// What a case may take beyond its timeout: a loaded machine, a debug build.
const SLACK: Duration = Duration::from_secs(4);

/// A world whose `microsoft` connection `h1` was made, and first synced, at the emulator,
/// after which the integration's API base URL points at `hostile`; proxied requests get
/// [`PROXY_TIMEOUT`].
async fn world_against(hostile: &Hostile) -> (World, String) {
    let mut world = World::start_with(20, &syncing("http://127.0.0.1:9/unused")).await;
    world.connect("microsoft", "h1").await;
    let first = finished_run(&world, "h1", "").await;
    assert_eq!(first["status"], "success", "{first}");
    let emulator = world.emulator.url();
    let timeout = format!("proxy_timeout = \"{}s\"", PROXY_TIMEOUT.as_secs());
    let url = hostile.url.clone();
    world
        .restart_with(|config| {
            config
                .replacen(
                    &format!("api_base_url = \"{emulator}\""),
                    &format!("api_base_url = \"{url}\""),
                    1,
                )
                .replacen(
                    "allowed_return_origins",
                    &format!("{timeout}\nallowed_return_origins"),
                    1,
                )
        })
        .await;
    (world, first["started_at"].as_str().unwrap().to_owned())
}

/// Reads a proxied answer's body until it ends or fails: its first `keep` bytes, how many
/// bytes came, and whether it failed.
async fn drain(mut response: reqwest::Response, keep: usize) -> (Vec<u8>, u64, bool) {
    let mut kept = Vec::new();
    let mut total = 0u64;
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                total += bytes.len() as u64;
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
            }
            Ok(None) => return (kept, total, false),
            Err(_) => return (kept, total, true),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_cuts_slow_and_endless_answers_and_streams_huge_ones_in_flat_memory() {
    let hostile = Hostile::start().await;
    let canary = Hostile::start().await;
    hostile.route("/silent", Behaviour::Silent);
    hostile.route("/drip", Behaviour::Drip);
    hostile.route("/endless", Behaviour::Endless);
    hostile.route("/huge", Behaviour::Huge);
    hostile.route("/bomb", Behaviour::GzipBomb);
    hostile.route(
        "/redirect",
        Behaviour::Redirect(format!("{}/v1.0/steal", canary.url)),
    );
    let (world, _) = world_against(&hostile).await;
    let host = &world.host;
    let get = |path: &str| host.proxy(Method::GET, "microsoft", "h1", path);

    // No answer at all: 504 once the timeout has passed.
    let started = Instant::now();
    let (status, body) = reply(get("/silent")).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "upstream_timeout", "{body}");
    assert!(
        took >= PROXY_TIMEOUT - Duration::from_millis(200),
        "{took:?}"
    );
    assert!(took < PROXY_TIMEOUT + SLACK, "{took:?}");

    // An answer dripped byte by byte, and one that never ends: their first bytes come through
    // as they are sent, and the answer is cut at the timeout.
    for path in ["/drip", "/endless"] {
        let started = Instant::now();
        let response = get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let (kept, _, failed) = drain(response, 16).await;
        let took = started.elapsed();
        assert!(failed, "{path}: the body ended as if complete");
        assert!(!kept.is_empty(), "{path}: nothing streamed before the cut");
        assert!(
            took >= PROXY_TIMEOUT - Duration::from_millis(200),
            "{path}: {took:?}"
        );
        assert!(took < PROXY_TIMEOUT + SLACK, "{path}: {took:?}");
    }

    // 10 GB announced: it streams until the timeout without being held in memory.
    let before = resident_memory(host.pid());
    let started = Instant::now();
    let response = get("/huge").send().await.unwrap();
    assert_eq!(
        response.headers()["content-length"],
        "10000000000",
        "passed on as announced"
    );
    let (_, streamed, failed) = drain(response, 0).await;
    let after = resident_memory(host.pid());
    assert!(failed, "10 GB cannot arrive within the timeout");
    assert!(started.elapsed() < PROXY_TIMEOUT + SLACK);
    assert!(
        streamed > 100 * 1024 * 1024,
        "only {streamed} bytes streamed: too few to show memory stays flat"
    );
    assert!(
        after < before + 50 * 1024 * 1024,
        "resident memory grew from {before} to {after} bytes while {streamed} bytes streamed"
    );

    // A gzip bomb passes through as the compressed bytes it is: nothing inflates it.
    let response = get("/bomb").send().await.unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let (kept, _, _) = drain(response, 10 + 2 + 13 * 100).await;
    let mut expected = GZIP_HEADER.to_vec();
    expected.extend_from_slice(&DEFLATE_HEAD);
    expected.extend_from_slice(&DEFLATE_ZEROS.repeat(100));
    assert_eq!(kept, expected, "the compressed bytes, as sent");

    // A redirect to another host is handed back as it is, never followed.
    let response = get("/redirect").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        format!("{}/v1.0/steal", canary.url).as_str()
    );
    assert_eq!(canary.requests(), Vec::<String>::new());

    // Every answer cut off (silent, drip, endless, 10 GB, bomb) was let go upstream too:
    // the host closed each of those connections to the provider.
    let deadline = Instant::now() + SLACK;
    while hostile.abandoned.load(Ordering::SeqCst) < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hostile.abandoned.load(Ordering::SeqCst),
        5,
        "connections to the provider left open"
    );
    world.finish().await;
}

/// A run of the people sync with the provider's people answered by `behaviour`: the run once
/// finished (after the run that started at `since`) and how long it took.
async fn sync_against(
    world: &World,
    hostile: &Hostile,
    behaviour: Behaviour,
    since: &str,
) -> (Value, Duration) {
    hostile.route(PEOPLE, behaviour);
    let started = Instant::now();
    trigger(world, "h1", "full").await;
    let run = finished_run(world, "h1", since).await;
    assert_eq!(run["status"], "failed", "{run}");
    (run, started.elapsed())
}

/// Where the people sync reads its first page.
const PEOPLE: &str = "/v1.0/me/people";

/// A page of one person linking to `next`.
fn page_linking_to(next: &str) -> Behaviour {
    Behaviour::Json(
        serde_json::json!({
            "value": [{"id": "p1", "displayName": "Ada Page"}],
            "@odata.nextLink": next,
        })
        .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_refuses_oversized_answers_redirects_and_next_links_off_the_api() {
    let hostile = Hostile::start().await;
    let canary = Hostile::start().await;
    let (world, synced) = world_against(&hostile).await;
    let error = |run: &Value| run["error"].as_str().unwrap_or_default().to_owned();
    let bound = "the answer is larger than 32 MiB, the most Plugboard reads";

    // 10 GB announced: refused on its Content-Length, before its body is read.
    let before = resident_memory(world.host.pid());
    let (run, took) = sync_against(&world, &hostile, Behaviour::Huge, &synced).await;
    assert!(error(&run).contains(bound), "{run}");
    assert!(error(&run).contains("GET /v1.0/me/people"), "{run}");
    assert!(took < Duration::from_secs(20), "{took:?}");

    // A gzip bomb without a length: read as the bytes it is, up to the bound, then refused,
    // and not asked for again. More than 32 MiB of it was taken: nothing inflated it.
    let written = hostile.written();
    let requests = hostile.requests().len();
    let since = run["started_at"].as_str().unwrap().to_owned();
    let (run, took) = sync_against(&world, &hostile, Behaviour::GzipBomb, &since).await;
    assert!(error(&run).contains(bound), "{run}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(hostile.written() - written >= 32 * 1024 * 1024);
    assert_eq!(hostile.requests().len(), requests + 1, "asked for once");
    let after = resident_memory(world.host.pid());
    assert!(
        after < before + 50 * 1024 * 1024,
        "resident memory grew from {before} to {after} bytes"
    );

    // A redirect to another host is the provider's answer, never followed.
    let since = run["started_at"].as_str().unwrap().to_owned();
    let steal = format!("{}/v1.0/me/people", canary.url);
    let (mut run, _) =
        sync_against(&world, &hostile, Behaviour::Redirect(steal.clone()), &since).await;
    assert!(error(&run).contains("provider answered 302"), "{run}");

    // Next links to another origin on this machine and to the cloud metadata address are
    // refused, naming the origin they left.
    let metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/";
    for next in [steal.as_str(), metadata] {
        let since = run["started_at"].as_str().unwrap().to_owned();
        let (run_, _) = sync_against(&world, &hostile, page_linking_to(next), &since).await;
        let error = error(&run_);
        assert!(error.contains(next), "{error}");
        assert!(
            error.contains(&format!("it is not on the API's origin `{}`", hostile.url)),
            "{error}"
        );
        run = run_;
    }
    assert_eq!(
        canary.requests(),
        Vec::<String>::new(),
        "the canary heard nothing"
    );
    assert!(
        hostile.requests().iter().all(|line| line.contains(PEOPLE)),
        "{:?}",
        hostile.requests()
    );
    world.finish().await;
}
