//! Throttling per (app, mailbox): concurrency cap and request budget, with Retry-After.

use plugboard_emulator::{ThrottleSettings, UpdateSettings};
use reqwest::StatusCode;

use crate::harness::{scrub, start};

#[tokio::test]
async fn the_fifth_concurrent_request_is_throttled() {
    let h = start(10).await;
    let token = h.access_token().await;
    h.control
        .update_settings(&UpdateSettings {
            graph_latency_ms: Some(500),
            ..UpdateSettings::default()
        })
        .await
        .unwrap();
    h.control.reset_counters().await.unwrap();

    let requests = (0..6).map(|_| h.graph("/v1.0/me/people", &token));
    let responses = futures::future::join_all(requests).await;
    let throttled: Vec<_> = responses
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(throttled.len(), 2);
    let (_, headers, body) = throttled[0];
    assert_eq!(headers["retry-after"], "1");
    insta::assert_json_snapshot!("429_concurrency", scrub(body.clone()));

    let counters = h.control.counters().await.unwrap();
    assert_eq!(
        counters.max_concurrency_per_mailbox[&h.demo.user_id], 5,
        "attempts count, rejected ones too"
    );
    assert_eq!(counters.max_concurrency, 5);
    assert_eq!(counters.throttled, 2);
    assert_eq!(counters.graph_requests["/v1.0/me/people"], 6);
}

#[tokio::test]
async fn the_request_budget_refills_with_the_window() {
    let h = start(10).await;
    let token = h.access_token().await;
    let throttling = ThrottleSettings {
        requests_per_window: 3,
        window_secs: 60,
        ..ThrottleSettings::default()
    };
    h.control
        .update_settings(&UpdateSettings {
            throttling: Some(throttling),
            ..UpdateSettings::default()
        })
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(h.graph("/v1.0/me/people", &token).await.0, StatusCode::OK);
    }
    let (status, headers, body) = h.graph("/v1.0/me", &token).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));

    h.control.advance_clock(60).await.unwrap();
    assert_eq!(h.graph("/v1.0/me/people", &token).await.0, StatusCode::OK);

    let fixed = ThrottleSettings {
        requests_per_window: 0,
        retry_after_secs: Some(7),
        ..ThrottleSettings::default()
    };
    h.control
        .update_settings(&UpdateSettings {
            throttling: Some(fixed),
            ..UpdateSettings::default()
        })
        .await
        .unwrap();
    assert_eq!(
        h.graph("/v1.0/me/people", &token).await.1["retry-after"],
        "7"
    );
}
