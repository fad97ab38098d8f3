//! `ApiClient` and `TestContext` against the emulator's Graph, with injected faults: retries
//! honour `Retry-After` (capped), give up after the spec's attempts, repeat transport failures
//! only when safe, and never leak the token.
#![cfg(feature = "testkit")]

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use plugboard_core::http::ApiClient;
use plugboard_core::spec::ApiSpec;
use plugboard_core::testkit::{TestContext, connect_auto_consent};
use plugboard_core::{Context, ErrorKind, HttpRequest};
use plugboard_emulator::{FaultKind, FaultRule};
use secrecy::{ExposeSecret, SecretString};

struct Graph {
    h: Harness,
    token: SecretString,
}

impl Graph {
    async fn start() -> Graph {
        let h = Harness::start().await;
        let tokens = connect_auto_consent(&h.http, &h.oauth(), &h.tenant(), &[])
            .await
            .unwrap();
        Graph {
            h,
            token: tokens.access_token,
        }
    }

    fn client(&self, api: &ApiSpec) -> ApiClient {
        ApiClient::new(
            self.h.http.clone(),
            api,
            url::Url::parse(&self.h.emulator.url()).unwrap(),
        )
    }

    async fn fault(&self, method: &str, count: u32, kind: FaultKind) {
        self.h
            .control
            .add_fault(&FaultRule {
                method: Some(method.into()),
                path_prefix: "/v1.0/me".into(),
                count,
                kind,
            })
            .await
            .unwrap();
    }

    async fn me_requests(&self) -> u64 {
        let counters = self.h.control.counters().await.unwrap();
        counters
            .graph_requests
            .get("/v1.0/me")
            .copied()
            .unwrap_or(0)
    }
}

fn throttled(retry_after_secs: Option<u64>) -> FaultKind {
    FaultKind::Status {
        status: 429,
        retry_after_secs,
    }
}

#[tokio::test]
async fn retries_honour_retry_after() {
    let g = Graph::start().await;
    let api = g.client(&Harness::graph_api());
    g.fault("GET", 2, throttled(Some(1))).await;

    let started = Instant::now();
    let response = api
        .send(&HttpRequest::get("/v1.0/me"), Some(g.token.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    // Two waits of one second each; the spec's backoff alone would be 50ms + 100ms.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(g.me_requests().await, 3);
}

#[tokio::test]
async fn retry_after_is_capped_at_max_backoff() {
    let g = Graph::start().await;
    let mut spec = Harness::graph_api();
    spec.retry.max_backoff = "300ms".parse().unwrap();
    let api = g.client(&spec);
    g.fault("GET", 1, throttled(Some(3600))).await;

    let started = Instant::now();
    let response = api
        .send(&HttpRequest::get("/v1.0/me"), Some(g.token.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn exhausted_retries_return_the_last_answer_and_the_context_makes_it_an_error() {
    let g = Graph::start().await;
    let api = g.client(&Harness::graph_api());
    g.fault("GET", 3, throttled(None)).await;
    let response = api
        .send(&HttpRequest::get("/v1.0/me"), Some(g.token.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status, 429, "max_attempts is 3");
    assert_eq!(g.me_requests().await, 3);

    // A status outside the retry list is answered at once.
    g.fault(
        "GET",
        1,
        FaultKind::Status {
            status: 500,
            retry_after_secs: Some(1),
        },
    )
    .await;
    let response = api
        .send(&HttpRequest::get("/v1.0/me"), Some(g.token.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status, 500);
    assert_eq!(g.me_requests().await, 4);

    // Through the context, exhausted retries are an error, as the Context docs promise.
    let ctx = TestContext::new(g.client(&Harness::graph_api()), g.token.clone());
    g.fault("GET", 3, throttled(None)).await;
    let err = ctx.http(HttpRequest::get("/v1.0/me")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Http { status: 429 });
    let me = ctx.get_json(HttpRequest::get("/v1.0/me")).await.unwrap();
    assert_eq!(me["id"], g.h.demo.user_id.as_str());
}

#[tokio::test]
async fn transport_failures_are_repeated_only_when_safe() {
    let g = Graph::start().await;
    let api = g.client(&Harness::graph_api());

    g.fault("GET", 2, FaultKind::DropConnection).await;
    let response = api
        .send(&HttpRequest::get("/v1.0/me"), Some(g.token.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status, 200);

    // A POST may have been acted on before the connection broke: not repeated.
    g.fault("POST", 1, FaultKind::DropConnection).await;
    let before = g.me_requests().await;
    let err = api
        .send(
            &HttpRequest::post("/v1.0/me"),
            Some(g.token.expose_secret()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transport);
    assert_eq!(g.me_requests().await, before + 1);
    assert!(
        err.message.starts_with("POST /v1.0/me: "),
        "{}",
        err.message
    );
    assert!(!err.message.contains(g.token.expose_secret()));

    // Every attempt fails: the error says how many were made.
    g.fault("GET", 3, FaultKind::DropConnection).await;
    let err = api
        .send(&HttpRequest::get("/v1.0/me"), Some(g.token.expose_secret()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transport);
    assert!(
        err.message.ends_with("(after 3 attempt(s))"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn requests_carry_the_token_and_follow_next_links_on_the_origin_only() {
    let g = Graph::start().await;
    let api = g.client(&Harness::graph_api());
    let base = g.h.emulator.url();
    let token = g.token.expose_secret();

    let page = api
        .send(
            &HttpRequest::get("/v1.0/me/people").query("$top", "2"),
            Some(token),
        )
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&base), "{next}");
    let second = api
        .send(&HttpRequest::get(next), Some(token))
        .await
        .unwrap();
    assert_eq!(second.status, 200);

    // Without a token Graph refuses; with another origin nothing is sent at all.
    let anonymous = api.send(&HttpRequest::get("/v1.0/me"), None).await.unwrap();
    assert_eq!(anonymous.status, 401);
    for target in ["https://evil.example/v1.0/me", "/v1.0/../_emulator/clock"] {
        let err = api
            .send(&HttpRequest::get(target), Some(token))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{target}");
        assert!(!err.message.contains(token));
    }
}
