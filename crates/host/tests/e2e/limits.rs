//! Clients that hold connections open (slowloris) through the real binary: a silent client, a
//! half-sent request line, an idle keep-alive connection and a body that never finishes are
//! all cut after `[server]`'s read timeouts, and connections beyond `max_connections` wait
//! until one closes.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{API_KEY, Host, KEY_1, SYNCS_OFF, TempDir, free_port, host_config_with};

/// A host (no emulator: these tests never reach a provider) with `limits` in `[server]`.
async fn host_with(limits: &str) -> (TempDir, Host) {
    let dir = TempDir::new();
    let port = free_port();
    let nowhere = "http://127.0.0.1:9";
    let config = host_config_with(
        port,
        &format!("sqlite://{}", dir.0.join("plugboard.db").display()),
        nowhere,
        "client-id",
        nowhere,
        &["k1"],
        SYNCS_OFF,
    )
    .replace(
        "allowed_return_origins",
        &format!("{limits}\nallowed_return_origins"),
    );
    let host = Host::start(&dir.0, port, &config, "secret", &[("k1", KEY_1)]).await;
    (dir, host)
}

/// Reads until the server closes the connection: what it sent, and how long that took. Fails
/// the test when the connection is still open after `limit`.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buffer = [0; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    let received = String::from_utf8_lossy(&received).into_owned();
    assert!(
        read.is_ok(),
        "still open after {limit:?}; received {received:?}"
    );
    (received, started.elapsed())
}

async fn connect(host: &Host) -> TcpStream {
    TcpStream::connect(("127.0.0.1", host.port()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_idle_clients_are_disconnected() {
    let (_dir, host) = host_with("header_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"").await;
    let limit = Duration::from_secs(5);

    // Connected, and nothing sent.
    let mut silent = connect(&host).await;
    let (received, took) = until_closed(&mut silent, limit).await;
    assert!(
        took >= Duration::from_millis(900),
        "closed too soon: {took:?}"
    );
    assert!(!received.contains("200 OK"), "{received}");

    // Half a request line.
    let mut half = connect(&host).await;
    half.write_all(b"GET /health HT").await.unwrap();
    until_closed(&mut half, limit).await;

    // A keep-alive connection left idle after its answer.
    let mut idle = connect(&host).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: plugboard\r\n\r\n")
        .await
        .unwrap();
    let (received, took) = until_closed(&mut idle, limit).await;
    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
    assert!(
        took >= Duration::from_millis(900),
        "closed too soon: {took:?}"
    );

    // A body that stops half-way: the request is refused and the connection closed.
    let mut body = connect(&host).await;
    let head = format!(
        "POST /connect/sessions HTTP/1.1\r\nHost: plugboard\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"integration\""
    );
    body.write_all(head.as_bytes()).await.unwrap();
    let (received, _) = until_closed(&mut body, limit).await;
    assert!(received.starts_with("HTTP/1.1 4"), "{received}");
    assert!(received.contains("\"invalid_body\""), "{received}");

    // Requests that are not slow are served as before.
    let (status, _) = host.call(reqwest::Method::GET, "/health").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let (_dir, host) = host_with("max_connections = 2\nheader_read_timeout = \"3s\"").await;
    // The start-up health check's idle connection is gone after the header read timeout.
    tokio::time::sleep(Duration::from_millis(3500)).await;

    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_millis(700))
            .build()
            .unwrap()
    };
    let health = format!("{}/health", host.url);
    let first = connect(&host).await;
    let _second = connect(&host).await;
    let refused = fresh().get(&health).send().await;
    assert!(
        refused.as_ref().is_err_and(reqwest::Error::is_timeout),
        "a third connection was served: {refused:?}"
    );

    drop(first);
    let served = fresh().get(&health).send().await.unwrap();
    assert_eq!(served.status(), 200);
}
