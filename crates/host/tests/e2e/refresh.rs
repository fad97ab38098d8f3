//! Token refresh: single-flight under load, rotation of refresh tokens, and giving up cleanly.

use std::sync::Arc;

use plugboard_emulator::ExpireTokens;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{World, execute_sql};

async fn expire_access_tokens(world: &World) {
    let expired = world
        .control
        .expire_tokens(&ExpireTokens {
            user: Some(world.demo.user_id.clone()),
            ..ExpireTokens::default()
        })
        .await
        .unwrap();
    assert!(expired.access_tokens > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_storm_makes_exactly_one_token_request() {
    let world = Arc::new(World::start().await);
    world.connect("microsoft", "storm").await;
    let before = world.host.credentials("microsoft", "storm").await;
    expire_access_tokens(&world).await;
    world.control.reset_counters().await.unwrap();

    let requests = (0..200).map(|_| {
        let world = world.clone();
        tokio::spawn(async move {
            let response = world
                .host
                .proxy(Method::GET, "microsoft", "storm", "/v1.0/me")
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        })
    });
    for outcome in futures::future::join_all(requests).await {
        let (status, body) = outcome.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let counters = world.control.counters().await.unwrap();
    assert_eq!(
        counters.token_requests.get("refresh_token"),
        Some(&1),
        "{counters:?}"
    );

    let after = world.host.credentials("microsoft", "storm").await;
    assert_ne!(
        before["credentials"]["access_token"],
        after["credentials"]["access_token"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forced_and_due_refreshes_replace_the_tokens() {
    let world = World::start().await;
    world.connect("microsoft", "r1").await;
    let first = world.host.credentials("microsoft", "r1").await;
    let response = world
        .host
        .api(
            Method::GET,
            "/connections/r1?integration=microsoft&refresh=true",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    assert_ne!(
        first["credentials"]["access_token"],
        second["credentials"]["access_token"]
    );
    assert_eq!(world.token_requests("refresh_token").await, 1);
    // The rotated refresh token was stored: a second refresh with it works.
    let response = world
        .host
        .api(
            Method::GET,
            "/connections/r1?integration=microsoft&refresh=true",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(world.token_requests("refresh_token").await, 2);
    assert_eq!(
        world
            .host
            .proxy(Method::GET, "microsoft", "r1", "/v1.0/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_grant_marks_the_connection_and_stops_trying() {
    let world = World::start().await;
    world.connect("microsoft", "gone").await;
    world
        .control
        .revoke_refresh_tokens(&world.demo.user_id)
        .await
        .unwrap();
    expire_access_tokens(&world).await;

    let response = world
        .host
        .proxy(Method::GET, "microsoft", "gone", "/v1.0/me")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "needs_reconnect");
    assert_eq!(world.token_requests("refresh_token").await, 1);

    let list: Value = world
        .host
        .api(Method::GET, "/connections?integration=microsoft")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connection = &list["connections"][0];
    assert_eq!(connection["status"], "needs_reconnect");
    assert!(
        connection["status_reason"]
            .as_str()
            .unwrap()
            .contains("AADSTS"),
        "{connection}"
    );

    // No more token requests for it, whatever is asked.
    for _ in 0..3 {
        let response = world
            .host
            .proxy(Method::GET, "microsoft", "gone", "/v1.0/me")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT);
    }
    let response = world
        .host
        .api(
            Method::GET,
            "/connections/gone?integration=microsoft&refresh=true",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(world.token_requests("refresh_token").await, 1);

    // Connecting again heals it.
    world.connect("microsoft", "gone").await;
    let list: Value = world
        .host
        .api(Method::GET, "/connections?integration=microsoft")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["connections"][0]["status"], "ok");
    assert!(list["connections"][0].get("status_reason").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_about_to_expire_is_refreshed_before_it_is_handed_out() {
    let world = World::start().await;
    world.connect("microsoft", "soon").await;
    let before = world.host.credentials("microsoft", "soon").await;
    // One minute left: inside the five-minute refresh margin.
    execute_sql(
        &world.host.db_path,
        "UPDATE connections SET expires_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) + 60000",
    )
    .await;
    let after = world.host.credentials("microsoft", "soon").await;
    assert_ne!(
        before["credentials"]["access_token"],
        after["credentials"]["access_token"]
    );
    assert_eq!(world.token_requests("refresh_token").await, 1);
    world.host.credentials("microsoft", "soon").await;
    assert_eq!(
        world.token_requests("refresh_token").await,
        1,
        "the new token is good for an hour"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_token_failures_back_off_and_misconfiguration_leaves_the_connection_alone() {
    use plugboard_emulator::{FaultKind, FaultRule, UpdateSecret};
    let world = World::start().await;
    world.connect("microsoft", "t1").await;
    world
        .control
        .add_fault(&FaultRule {
            method: Some("POST".into()),
            path_prefix: "/common/oauth2/v2.0/token".into(),
            count: 1,
            kind: FaultKind::Status {
                status: 503,
                retry_after_secs: None,
            },
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let response = world
        .host
        .api(
            Method::GET,
            "/connections/t1?integration=microsoft&refresh=true",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(400),
        "the retry waited"
    );

    // A new client secret at the provider: the integration is wrong, not the connection.
    world
        .control
        .update_secret(
            &world.demo.client_id,
            &UpdateSecret {
                expires_in_secs: 3600,
                rotate: true,
            },
        )
        .await
        .unwrap();
    let response = world
        .host
        .api(
            Method::GET,
            "/connections/t1?integration=microsoft&refresh=true",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "integration_misconfigured");
    let list: Value = world
        .host
        .api(Method::GET, "/connections?integration=microsoft")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["connections"][0]["status"], "ok");
}
