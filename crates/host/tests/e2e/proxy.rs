//! The authenticated proxy: pass-through, path escapes, retries.

use std::time::{Duration, Instant};

use plugboard_emulator::FaultKind;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{API_KEY, World, raw_get};

#[tokio::test(flavor = "multi_thread")]
async fn proxied_answers_equal_the_providers() {
    let world = World::start().await;
    world.connect("microsoft", "p1").await;
    let proxied = world
        .host
        .proxy(Method::GET, "microsoft", "p1", "/v1.0/me/people?$top=50")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::OK);
    assert!(
        proxied.headers().contains_key("request-id"),
        "provider headers pass through"
    );
    let proxied: Value = proxied.json().await.unwrap();

    let token = world.host.access_token("microsoft", "p1").await;
    let direct = world.graph_direct("/v1.0/me/people?$top=50", &token).await;
    assert_eq!(proxied, direct);
    assert_eq!(proxied["value"].as_array().unwrap().len(), 50);

    // The provider's own errors come back as they are.
    let (status, body) = world
        .host
        .proxy_get("microsoft", "p1", "/v1.0/me/nothing")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn method_query_headers_and_bodies_round_trip() {
    let world = World::start().await;
    world.connect("echo", "e1").await;
    let token = world.host.access_token("echo", "e1").await;

    let body = "{\"name\": \"Zoë\", \"tags\": [1, 2, 3]}";
    let response = world
        .host
        .proxy(
            Method::PATCH,
            "echo",
            "e1",
            "/v1.0/things/42?select=a,b&x=%20y",
        )
        .header("Content-Type", "application/json")
        .header("X-Custom", "kept")
        .header("Connection", "keep-alive, x-private")
        .header("X-Private", "dropped")
        .header("Retries", "1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["x-echo-method"], "PATCH");
    assert_eq!(
        headers["x-echo-uri"],
        "/api/v1.0/things/42?select=a,b&x=%20y"
    );
    assert_eq!(
        headers["x-echo-authorization"].to_str().unwrap(),
        format!("Bearer {token}")
    );
    assert_eq!(headers["content-type"], "application/json");
    let seen = headers["x-echo-headers"].to_str().unwrap().to_owned();
    for expected in ["x-custom", "content-type", "accept"] {
        assert!(
            seen.split(',').any(|h| h == expected),
            "{expected} missing from {seen}"
        );
    }
    for dropped in ["x-private", "integration", "connection-id", "retries"] {
        assert!(
            !seen.split(',').any(|h| h == dropped),
            "{dropped} forwarded: {seen}"
        );
    }
    assert!(!seen.contains(API_KEY));
    assert_eq!(response.text().await.unwrap(), body);

    // A body too large to keep for a retry streams through in both directions.
    let large: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let response = world
        .host
        .proxy(Method::POST, "echo", "e1", "/upload")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(
            large
                .chunks(64 * 1024)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), large.as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_that_leave_the_base_url_are_refused() {
    let world = World::start().await;
    world.connect("microsoft", "p2").await;
    world.control.reset_counters().await.unwrap();
    let headers = [
        ("Authorization", &*format!("Bearer {API_KEY}")),
        ("Integration", "microsoft"),
        ("Connection-Id", "p2"),
    ];
    for target in [
        "/proxy/v1.0/../_emulator/counters",
        "/proxy/v1.0/%2e%2e/_emulator/counters",
        "/proxy/v1.0/%2E%2e/_emulator/counters",
        "/proxy/v1.0/.%2e/_emulator/counters",
        "/proxy/v1.0%2f..%2f_emulator",
        "/proxy/https://evil.example/v1.0/me",
        "/proxy//evil.example/v1.0/me",
        "/proxy/http://user:pw@127.0.0.1/v1.0/me",
        "/proxy/v1.0\\..\\_emulator",
    ] {
        let (status, body) = raw_get(&world.host.url, target, &headers).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains("path_refused"), "{target}: {body}");
    }
    let counters = world.control.counters().await.unwrap();
    assert!(
        counters.graph_requests.is_empty(),
        "nothing reached the provider: {counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_after_retry_after() {
    let world = World::start().await;
    world.connect("microsoft", "p3").await;
    let throttled = FaultKind::Status {
        status: 429,
        retry_after_secs: Some(1),
    };
    world.add_fault(None, "/v1.0/me/people", 1, throttled).await;
    let started = Instant::now();
    let response = world
        .host
        .proxy(Method::GET, "microsoft", "p3", "/v1.0/me/people?$top=5")
        .header("Retries", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(world.graph_requests("/v1.0/me/people").await, 2);

    // Without `Retries` the 429 is the answer, Retry-After included.
    let unavailable = FaultKind::Status {
        status: 503,
        retry_after_secs: Some(3),
    };
    world
        .add_fault(None, "/v1.0/me/people", 1, unavailable)
        .await;
    let response = world
        .host
        .proxy(Method::GET, "microsoft", "p3", "/v1.0/me/people")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "3");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_refreshes_once_and_a_broken_connection_is_a_clear_502() {
    let world = World::start().await;
    world.connect("microsoft", "p4").await;
    let token = world.host.access_token("microsoft", "p4").await;
    world.control.reset_counters().await.unwrap();
    let unauthorized = FaultKind::Status {
        status: 401,
        retry_after_secs: None,
    };
    world.add_fault(None, "/v1.0/me", 1, unauthorized).await;
    let (status, _) = world.host.proxy_get("microsoft", "p4", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK, "retried after one refresh");
    assert_eq!(world.token_requests("refresh_token").await, 1);
    assert_eq!(world.graph_requests("/v1.0/me").await, 2);
    let refreshed = world.host.access_token("microsoft", "p4").await;
    assert_ne!(refreshed, token, "the new token is the one stored");

    // The provider drops the connection: no answer to pass on, so the proxy says so.
    world
        .add_fault(None, "/v1.0/me", 1, FaultKind::DropConnection)
        .await;
    let (status, body) = world
        .host
        .proxy_get("microsoft", "p4", "/v1.0/me?secret-query=1")
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the provider could not be reached: "),
        "{message}"
    );
    for private in [refreshed.as_str(), "secret-query", "/v1.0/me"] {
        assert!(!message.contains(private), "{message}");
    }
    assert!(!world.host.logs().contains("secret-query"));
    // The pool recovers: the next request gets a fresh connection.
    let (status, _) = world.host.proxy_get("microsoft", "p4", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK);
}
