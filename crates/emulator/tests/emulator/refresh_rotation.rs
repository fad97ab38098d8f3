//! Refresh-token rotation, switched by the control API: Microsoft keeps a used refresh token
//! valid (the default); rotating providers revoke it, some with its whole family on reuse.

use plugboard_emulator::RefreshTokenRotation;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, SCOPES, start};

/// Redeems `token`, checked to work: the new refresh token.
async fn rotate(h: &Harness, token: &str) -> String {
    let (status, body) = h.refresh(token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["refresh_token"].as_str().unwrap().to_owned()
}

/// Redeems `token`, checked to be refused as a revoked grant.
async fn refused(h: &Harness, token: &str) -> Value {
    let (status, body) = h.refresh(token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(body["error_codes"][0], 50173, "{body}");
    body
}

async fn signed_in(h: &Harness) -> String {
    h.tokens(SCOPES).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn microsofts_old_refresh_tokens_stay_valid() {
    let h = start(0).await;
    assert_eq!(
        h.control.settings().await.unwrap().refresh_token_rotation,
        RefreshTokenRotation::Off
    );
    let first = signed_in(&h).await;
    let second = rotate(&h, &first).await;
    assert_ne!(first, second);
    rotate(&h, &first).await;
    rotate(&h, &second).await;
}

#[tokio::test]
async fn a_used_refresh_token_is_revoked_while_rotation_is_on() {
    let h = start(0).await;
    let settings = h
        .control
        .set_refresh_token_rotation(RefreshTokenRotation::RevokeUsed)
        .await
        .unwrap();
    assert_eq!(
        settings.refresh_token_rotation,
        RefreshTokenRotation::RevokeUsed
    );
    let first = signed_in(&h).await;
    let second = rotate(&h, &first).await;
    refused(&h, &first).await;
    // Only the used one: its successor works, and is used up in turn.
    let third = rotate(&h, &second).await;
    refused(&h, &second).await;
    rotate(&h, &third).await;
}

#[tokio::test]
async fn reuse_revokes_the_whole_family_and_no_other() {
    let h = start(0).await;
    h.control
        .set_refresh_token_rotation(RefreshTokenRotation::RevokeFamilyOnReuse)
        .await
        .unwrap();
    let first = signed_in(&h).await;
    let other_sign_in = signed_in(&h).await;
    let second = rotate(&h, &first).await;
    refused(&h, &first).await;
    // The newest of the family goes with it; another sign-in's tokens do not.
    refused(&h, &second).await;
    rotate(&h, &other_sign_in).await;
}
