//! Token refresh: single-flight under load, rotation of refresh tokens, and giving up cleanly.

use std::sync::Arc;

use reqwest::StatusCode;

use plugboard_store::{ConnectionKey, NewConnection};

use crate::support::{World, all_answered};

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_storm_makes_exactly_one_token_request() {
    let world = Arc::new(World::start().await);
    world.connect("microsoft", "storm").await;
    let before = world.host.credentials("microsoft", "storm").await;
    world.expire_access_tokens().await;
    world.control.reset_counters().await.unwrap();

    let requests = (0..200).map(|_| {
        let world = world.clone();
        tokio::spawn(async move { world.host.proxy_get("microsoft", "storm", "/v1.0/me").await })
    });
    all_answered(requests, StatusCode::OK).await;
    assert_eq!(world.token_requests("refresh_token").await, 1);

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
    let (status, second) = world.host.force_refresh("microsoft", "r1").await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(
        first["credentials"]["access_token"],
        second["credentials"]["access_token"]
    );
    assert_eq!(world.token_requests("refresh_token").await, 1);
    // The rotated refresh token was stored: a second refresh with it works.
    let (status, _) = world.host.force_refresh("microsoft", "r1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.token_requests("refresh_token").await, 2);
    let (status, _) = world.host.proxy_get("microsoft", "r1", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_grant_marks_the_connection_and_stops_trying() {
    let world = World::start().await;
    world.connect("microsoft", "gone").await;
    world.revoke_grant().await;

    let (status, body) = world.host.proxy_get("microsoft", "gone", "/v1.0/me").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "needs_reconnect");
    assert_eq!(world.token_requests("refresh_token").await, 1);

    let list = world
        .host
        .get_json("/connections?integration=microsoft")
        .await;
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
        let (status, _) = world.host.proxy_get("microsoft", "gone", "/v1.0/me").await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
    let (status, _) = world.host.force_refresh("microsoft", "gone").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(world.token_requests("refresh_token").await, 1);

    // Connecting again heals it.
    world.connect("microsoft", "gone").await;
    let list = world
        .host
        .get_json("/connections?integration=microsoft")
        .await;
    assert_eq!(list["connections"][0]["status"], "ok");
    assert!(list["connections"][0].get("status_reason").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_about_to_expire_is_refreshed_before_it_is_handed_out() {
    let world = World::start().await;
    world.connect("microsoft", "soon").await;
    let before = world.host.credentials("microsoft", "soon").await;
    // An hour-long token with one minute left: inside the five-minute refresh margin. Saved as
    // another process would (a reconnect, dated when the token was issued, an hour ago), which
    // the host sees within a second.
    let store = world.store().await;
    let key = ConnectionKey::new("microsoft", "soon");
    let stored = store.connection(&key).await.unwrap().unwrap();
    let mut tokens = stored.tokens.clone();
    let now = chrono::Utc::now();
    tokens.expires_at = Some(now + chrono::Duration::seconds(60));
    let expiring = NewConnection {
        key,
        provider: stored.provider,
        connection_config: stored.connection_config,
        account: stored.account,
        tokens,
    };
    let issued = now - chrono::Duration::minutes(59);
    store.save_connection(expiring, issued).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
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
    use plugboard_emulator::UpdateSecret;
    let world = World::start().await;
    world.connect("microsoft", "t1").await;
    world.token_endpoint_unavailable(1).await;
    let started = std::time::Instant::now();
    let (status, _) = world.host.force_refresh("microsoft", "t1").await;
    assert_eq!(status, StatusCode::OK);
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
    let (status, body) = world.host.force_refresh("microsoft", "t1").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["code"], "integration_misconfigured");
    let list = world
        .host
        .get_json("/connections?integration=microsoft")
        .await;
    assert_eq!(list["connections"][0]["status"], "ok");
}
