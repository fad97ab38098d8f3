//! An app holding several client secrets at once, as Entra allows for a rollover: any
//! unexpired one authenticates the client, an expired one answers AADSTS7000222, a removed or
//! unknown one AADSTS7000215, each on the emulator's clock; the counters say which did.

use plugboard_emulator::AddSecret;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, SCOPES, start};

/// A refresh with `secret` as the client's credential.
async fn refresh_with(h: &Harness, secret: &str, refresh_token: &str) -> (StatusCode, Value) {
    h.token(&[
        ("client_id", &h.demo.client_id),
        ("client_secret", secret),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ])
    .await
}

fn refused_with(answer: &(StatusCode, Value), code: u64) {
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED, "{}", answer.1);
    assert_eq!(answer.1["error"], "invalid_client", "{}", answer.1);
    assert_eq!(
        answer.1["error_codes"][0].as_u64(),
        Some(code),
        "{}",
        answer.1
    );
}

#[tokio::test]
async fn an_app_accepts_each_of_its_unexpired_secrets() {
    let h = start(0).await;
    let tokens = h.tokens(SCOPES).await;
    let mut refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let second = h
        .control
        .add_secret(
            &h.demo.client_id,
            &AddSecret {
                expires_in_secs: Some(3600),
            },
        )
        .await
        .unwrap();
    assert_ne!(second.value, h.demo.client_secret);
    let lifetime = second.expires_at - h.control.clock().await.unwrap().now;
    assert!(
        (3590..=3600).contains(&lifetime.num_seconds()),
        "{lifetime}"
    );

    let app = &h.control.apps().await.unwrap()[0];
    assert_eq!(app.secrets.len(), 2, "{app:?}");
    assert_eq!(app.secrets[1].id, second.id);
    assert_eq!(app.secrets[1].hint, second.value[..3]);
    assert_eq!(app.client_secret, h.demo.client_secret, "the first secret");
    let shown = serde_json::to_string(&app.secrets).unwrap();
    assert!(
        !shown.contains(&second.value),
        "a listed secret shows its value"
    );

    h.control.reset_counters().await.unwrap();
    for secret in [&h.demo.client_secret, &second.value] {
        let (status, body) = refresh_with(&h, secret, &refresh_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    }
    let counters = h.control.counters().await.unwrap();
    assert_eq!(counters.client_credentials.get(&second.id), Some(&1));
    assert_eq!(counters.client_credentials.len(), 2, "{counters:?}");

    // The second secret's hour passes on the emulator's clock: it alone is refused.
    h.control.advance_clock(3600).await.unwrap();
    refused_with(
        &refresh_with(&h, &second.value, &refresh_token).await,
        7000222,
    );
    let (status, body) = refresh_with(&h, &h.demo.client_secret, &refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let counters = h.control.counters().await.unwrap();
    assert_eq!(
        counters.token_errors.get("7000222"),
        Some(&1),
        "{counters:?}"
    );
}

#[tokio::test]
async fn one_secret_is_expired_or_removed_while_the_other_keeps_working() {
    let h = start(0).await;
    let tokens = h.tokens(SCOPES).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let client_id = &h.demo.client_id;
    let second = h
        .control
        .add_secret(client_id, &AddSecret::default())
        .await
        .unwrap();
    let first = h.control.apps().await.unwrap()[0].secrets[0].clone();

    let expired = h
        .control
        .expire_secret_by_id(client_id, &first.id)
        .await
        .unwrap();
    assert!(expired.expires_at <= h.control.clock().await.unwrap().now);
    refused_with(
        &refresh_with(&h, &h.demo.client_secret, &refresh_token).await,
        7000222,
    );
    let (status, body) = refresh_with(&h, &second.value, &refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    // Removed, the first value is unknown to the app, like any wrong value.
    let removed = h.control.remove_secret(client_id, &first.id).await.unwrap();
    assert_eq!(removed.id, first.id);
    refused_with(
        &refresh_with(&h, &h.demo.client_secret, &refresh_token).await,
        7000215,
    );
    let app = &h.control.apps().await.unwrap()[0];
    assert_eq!(app.secrets.len(), 1);
    assert_eq!(app.client_secret, second.value, "the first secret now");
    let (status, body) = refresh_with(&h, &second.value, &refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Unknown ids are named.
    let error = h
        .control
        .remove_secret(client_id, &first.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("404") && error.contains(&first.id),
        "{error}"
    );
}
