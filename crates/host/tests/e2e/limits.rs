//! Clients that hold connections open (slowloris) through the real binary: a silent client, a
//! half-sent request line, an idle keep-alive connection and a body that never finishes are
//! all cut after `[server]`'s read timeouts, and connections beyond `max_connections` wait
//! until one closes. A connection has a bounded share of proxied requests in flight, and
//! wrong API keys from one address slow that address down. A stopped host lets the answers in
//! flight finish.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use reqwest::Method;
use serde_json::{Value, json};

use crate::hostile_upstreams::{Behaviour, Hostile};
use crate::support::{
    API_KEY, Host, KEY_1, STORM_CAP, SYNCS_OFF, TempDir, free_port, host_config_with, reply,
};

/// A host (no emulator: these tests never reach a provider) with `limits` in `[server]`.
async fn host_with(limits: &str) -> (TempDir, Host) {
    host_in(TempDir::new(), limits, "").await
}

/// A host whose files are in `dir`, with `limits` in `[server]` and `extra` at the end of its
/// configuration.
async fn host_in(dir: TempDir, limits: &str, extra: &str) -> (TempDir, Host) {
    let port = free_port();
    let nowhere = "http://127.0.0.1:9";
    let config = host_config_with(
        port,
        &format!("sqlite://{}", dir.0.join("plugboard.db").display()),
        nowhere,
        "client-id",
        nowhere,
        &["k1"],
        &format!("{SYNCS_OFF}\n{extra}"),
    )
    .replace(STORM_CAP, "")
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

/// A provider authenticated by API key whose API is `hostile`'s.
const HELD_SPEC: &str = r#"
id = "held"
display_name = "Held"

[auth]
mode = "api_key"
header = "X-Api-Key"

[api]
base_url = "https://held.example"

[account]
path = "/account"
id = "/id"
display_name = "/name"
"#;

/// A host with `limits` in `[server]` and the `held` integration, whose API is `hostile`'s,
/// with one connection per id in `connections`.
async fn host_against(hostile: &Hostile, limits: &str, connections: &[&str]) -> (TempDir, Host) {
    hostile.route(
        "/account",
        Behaviour::Json(r#"{"id": "acct-1", "name": "Held account"}"#.to_owned()),
    );
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("specs")).unwrap();
    std::fs::write(dir.0.join("specs/held.toml"), HELD_SPEC).unwrap();
    let extra = format!(
        "[[providers]]\nspec_dir = \"specs\"\n\n[integrations.held]\nprovider = \"held\"\n\n\
         [integrations.held.overrides]\napi_base_url = \"{}\"\n",
        hostile.url
    );
    let (dir, host) = host_in(dir, limits, &extra).await;
    for id in connections {
        let (status, body) = host
            .post(
                "/connections",
                &json!({"integration": "held", "connection_id": id, "credentials": {"api_key": "provider-key"}}),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    }
    (dir, host)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_beyond_its_share_of_proxied_requests_is_answered_429_at_once() {
    let hostile = Hostile::start().await;
    hostile.route("/slow", Behaviour::Held);
    let (_dir, host) = host_against(
        &hostile,
        "max_proxy_requests_per_connection = 2",
        &["one", "other"],
    )
    .await;
    let slow = |connection: &str| host.proxy(Method::GET, "held", connection, "/slow");

    // Two answers of `one` whose bodies are still streaming hold both its slots.
    let first = slow("one").send().await.unwrap();
    let second = slow("one").send().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );

    let started = Instant::now();
    let refused = slow("one").send().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once, not queued"
    );
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "too_many_concurrent_requests",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 proxied requests in flight"),
        "{body}"
    );
    let slow_requests = |hostile: &Hostile| {
        hostile
            .requests()
            .iter()
            .filter(|line| line.contains("/slow"))
            .count()
    };
    assert_eq!(slow_requests(&hostile), 2, "the refused request never left");

    // Another connection is not held up by `one`'s.
    let other = slow("other").send().await.unwrap();
    assert_eq!(other.status(), 200);

    // Once the answers have streamed out, `one` has its slots back.
    hostile.release();
    for response in [first, second, other] {
        assert_eq!(response.text().await.unwrap(), "{}");
    }
    hostile.route("/slow", Behaviour::Json("{}".to_owned()));
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = reply(slow("one")).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{status}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client whose connections come from `address` (any of 127/8 reaches the host).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_api_keys_from_one_address_slow_that_address_down_and_no_other() {
    let (_dir, host) = host_with("").await;
    let wrong = "wrong-key-0123456789-guess";
    let ask = |from: &str, key: Option<&str>, path: &str| {
        let request = client_from(from).get(format!("{}{path}", host.url));
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        reply(
            request
                .header("Integration", "held")
                .header("Connection-Id", "one"),
        )
    };

    // A few wrong keys are answered 401 as any wrong key is.
    for _ in 0..5 {
        let (status, body) = ask("127.0.0.1", Some(wrong), "/connections").await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    // Then the address must wait, whatever it sends, on every route and the proxy.
    let response = client_from("127.0.0.1")
        .get(format!("{}/connections", host.url))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failed_attempts", "{body}");
    for path in ["/connections", "/proxy/v1/items"] {
        let (status, body) = ask("127.0.0.1", Some(API_KEY), path).await;
        assert_eq!(status, 429, "{path}: {body}");
        assert_eq!(
            body["error"]["code"], "too_many_failed_attempts",
            "{path}: {body}"
        );
    }

    // The right key from another address is never slowed down; neither is one after
    // requests without a key, which guess nothing.
    let (status, body) = ask("127.0.0.2", Some(API_KEY), "/connections").await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..8 {
        assert_eq!(ask("127.0.0.3", None, "/connections").await.0, 401);
    }
    assert_eq!(ask("127.0.0.3", Some(API_KEY), "/connections").await.0, 200);

    // Once the wait has passed, the right key gets in and the failures are forgotten.
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    assert_eq!(ask("127.0.0.1", Some(API_KEY), "/connections").await.0, 200);
    assert_eq!(ask("127.0.0.1", Some(wrong), "/connections").await.0, 401);

    let logs = host.logs();
    assert!(
        logs.contains("a request with a wrong API key was refused"),
        "{logs}"
    );
    assert!(!logs.contains(wrong), "a guessed key reached the log");
}

/// SIGTERM closes the listener at once, lets an answer that is still streaming finish, and
/// only then exits, cleanly.
#[tokio::test]
async fn a_stopped_host_finishes_the_answers_in_flight_then_exits() {
    let hostile = Hostile::start().await;
    hostile.route("/slow", Behaviour::Held);
    let (_dir, mut host) = host_against(&hostile, "", &["one"]).await;
    let streaming = host
        .proxy(Method::GET, "held", "one", "/slow")
        .send()
        .await
        .unwrap();
    assert_eq!(streaming.status(), 200);

    host.sigterm();
    let address = host.url.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&address).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        host.exit_within(Duration::from_millis(500)).await.is_none(),
        "exited with an answer still streaming:\n{}",
        host.logs()
    );

    hostile.release();
    assert_eq!(streaming.text().await.unwrap(), "{}");
    // Well within the 10 s header read timeout, which would otherwise be what closes the
    // client's idle keep-alive connection: the host must close it itself.
    let status = host.exit_within(Duration::from_secs(5)).await;
    let logs = host.logs();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{logs}");
    assert!(logs.contains("plugboard stopped"), "{logs}");
}
