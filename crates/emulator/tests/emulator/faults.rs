//! Fault injection: each kind, matching by method and path prefix, and consumption.

use std::time::{Duration, Instant};

use plugboard_emulator::{FaultKind, FaultRule};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{SCOPES, scrub, start};

/// A fault for the next `count` requests of any method whose path starts with `path_prefix`.
fn rule(path_prefix: &str, count: u32, kind: FaultKind) -> FaultRule {
    FaultRule {
        method: None,
        path_prefix: path_prefix.into(),
        count,
        kind,
    }
}

/// An error status fault, with a `Retry-After` header when `retry_after_secs` is set.
fn status(status: u16, retry_after_secs: Option<u64>) -> FaultKind {
    FaultKind::Status {
        status,
        retry_after_secs,
    }
}

#[tokio::test]
async fn status_faults_are_shaped_for_the_endpoint() {
    let h = start(5).await;
    let token = h.access_token().await;
    h.control
        .add_fault(&rule("/v1.0/me/people", 2, status(503, Some(3))))
        .await
        .unwrap();
    for _ in 0..2 {
        let (status, headers, body) = h.graph("/v1.0/me/people", &token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["retry-after"], "3");
        assert!(headers.contains_key("request-id"));
        insta::assert_json_snapshot!("fault_503_graph", scrub(body));
    }
    assert_eq!(h.graph("/v1.0/me/people", &token).await.0, StatusCode::OK);
    assert!(h.control.faults().await.unwrap().is_empty());

    let token_fault = FaultRule {
        method: Some("POST".into()),
        ..rule("/common/oauth2/v2.0/token", 1, status(500, None))
    };
    h.control.add_fault(&token_fault).await.unwrap();
    let (code, pkce) = h.code(SCOPES).await;
    let (status, body) = h.redeem(&code, &pkce).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    insta::assert_json_snapshot!("fault_500_token", scrub(body));
    assert_eq!(
        h.redeem(&code, &pkce).await.0,
        StatusCode::OK,
        "the faulted request did not consume the code"
    );
}

#[tokio::test]
async fn faults_match_the_method() {
    let h = start(5).await;
    let token = h.access_token().await;
    let fault = FaultRule {
        method: Some("POST".into()),
        ..rule("/v1.0/", 1, status(500, None))
    };
    h.control.add_fault(&fault).await.unwrap();
    assert_eq!(h.graph("/v1.0/me", &token).await.0, StatusCode::OK);
    assert_eq!(h.control.faults().await.unwrap().len(), 1);
    h.control.clear_faults().await.unwrap();
    assert!(h.control.faults().await.unwrap().is_empty());
}

#[tokio::test]
async fn delay_then_answer_normally() {
    let h = start(5).await;
    let token = h.access_token().await;
    h.control
        .add_fault(&rule("/v1.0/me", 1, FaultKind::Delay { ms: 250 }))
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(h.graph("/v1.0/me", &token).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn malformed_body() {
    let h = start(5).await;
    let token = h.access_token().await;
    h.control
        .add_fault(&rule("/v1.0/me/people", 1, FaultKind::MalformedBody))
        .await
        .unwrap();
    let response = h.graph_response("/v1.0/me/people", &token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.json::<Value>().await.is_err());
}

#[tokio::test]
async fn dropped_connections_are_transport_errors() {
    let h = start(5).await;
    let token = h.access_token().await;
    h.control
        .add_fault(&rule("/v1.0/me/people", 2, FaultKind::DropConnection))
        .await
        .unwrap();
    for _ in 0..2 {
        let error = h
            .graph_response("/v1.0/me/people", &token)
            .await
            .unwrap_err();
        assert!(error.status().is_none(), "{error:?}");
    }
    assert_eq!(h.graph("/v1.0/me/people", &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn throttling_faults_are_counted() {
    let h = start(5).await;
    let token = h.access_token().await;
    h.control.reset_counters().await.unwrap();
    h.control
        .add_fault(&rule("/v1.0/", 1, status(429, Some(2))))
        .await
        .unwrap();
    let (status, _, body) = h.graph("/v1.0/me/people", &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("TooManyRequests"))
    );
    assert_eq!(h.control.counters().await.unwrap().throttled, 1);
}

#[tokio::test]
async fn repeated_next_links_point_back_at_the_page_served() {
    let h = start(25).await;
    let token = h.access_token().await;
    let page = "/v1.0/me/people?%24top=10&%24skip=10";
    h.control
        .add_fault(&rule("/v1.0/me/people", 2, FaultKind::RepeatNextLink))
        .await
        .unwrap();

    // An answer that is not a page passes unchanged, and uses up one of the faulted requests.
    let (status, _, body) = h.graph(page, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    let response = h.graph_response(page, &token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"].clone();
    let text = response.text().await.unwrap();
    let stuck: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stuck["@odata.nextLink"], format!("{}{page}", h.url));
    // Graph's member order: context, next link, value.
    let at = |member: &str| text.find(member).unwrap();
    assert!(
        at("@odata.context") < at("@odata.nextLink") && at("@odata.nextLink") < at("\"value\"")
    );
    assert!(h.control.faults().await.unwrap().is_empty());

    // The same page without the fault: the same people, and a next link that moves on.
    let response = h.graph_response(page, &token).await.unwrap();
    assert_eq!(response.headers()["content-type"], kind);
    let real: Value = response.json().await.unwrap();
    assert_eq!(
        real["@odata.nextLink"],
        format!("{}/v1.0/me/people?%24top=10&%24skip=20", h.url)
    );
    assert_eq!(stuck["@odata.context"], real["@odata.context"]);
    assert_eq!(stuck["value"], real["value"]);
    assert_eq!(real["value"].as_array().unwrap().len(), 10);
}
