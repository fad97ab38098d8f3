//! Every token endpoint error of the reference table, with Microsoft's exact body shape.
//! Snapshots are scrubbed of GUIDs and timestamps; statuses are part of each snapshot.

use plugboard_emulator::{ExpireTokens, UpdateSecret};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Harness, REDIRECT_URI, SCOPES, scrub, start};

fn check(name: &str, (status, body): (StatusCode, Value)) {
    let codes = body["error_codes"].as_array().expect("error_codes").clone();
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{}: ", codes[0])),
        "{description}"
    );
    assert!(description.contains(&format!(
        "\r\nTrace ID: {}\r\nCorrelation ID: ",
        body["trace_id"].as_str().unwrap()
    )));
    insta::assert_json_snapshot!(
        name,
        json!({"status": status.as_u16(), "body": scrub(body)})
    );
}

async fn refresh_token(h: &Harness) -> String {
    h.tokens(SCOPES).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn aadsts_70000_refresh_asks_for_scopes_not_granted() {
    let h = start(0).await;
    let token = refresh_token(&h).await;
    check(
        "70000_scopes_not_granted",
        h.refresh(&token, Some("People.Read.All offline_access"))
            .await,
    );
}

#[tokio::test]
async fn aadsts_70008_code_expired_after_ten_minutes() {
    let h = start(0).await;
    let (code, pkce) = h.code(SCOPES).await;
    h.control.advance_clock(601).await.unwrap();
    check("70008_code_expired", h.redeem(&code, &pkce).await);
}

#[tokio::test]
async fn aadsts_70008_refresh_token_expired() {
    let h = start(0).await;
    let token = refresh_token(&h).await;
    let request = ExpireTokens {
        refresh_token: Some(token.clone()),
        ..ExpireTokens::default()
    };
    assert_eq!(
        h.control
            .expire_tokens(&request)
            .await
            .unwrap()
            .refresh_tokens,
        1
    );
    check("70008_refresh_token_expired", h.refresh(&token, None).await);
}

#[tokio::test]
async fn aadsts_700082_refresh_token_unused_for_90_days() {
    let h = start(0).await;
    let token = refresh_token(&h).await;
    h.control.advance_clock(89 * 86_400).await.unwrap();
    let (status, body) = h.refresh(&token, None).await;
    assert_eq!(status, StatusCode::OK, "used within 90 days");
    h.control.advance_clock(90 * 86_400).await.unwrap();
    check(
        "700082_refresh_token_inactive",
        h.refresh(&token, None).await,
    );
    assert_eq!(
        h.refresh(body["refresh_token"].as_str().unwrap(), None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn aadsts_50173_refresh_tokens_revoked() {
    let h = start(0).await;
    let token = refresh_token(&h).await;
    h.control
        .revoke_refresh_tokens(&h.demo.user_principal_name)
        .await
        .unwrap();
    check("50173_grant_revoked", h.refresh(&token, None).await);
    // A new sign-in yields working tokens again.
    assert_eq!(
        h.refresh(&refresh_token(&h).await, None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn aadsts_54005_code_redeemed_twice() {
    let h = start(0).await;
    let (code, pkce) = h.code(SCOPES).await;
    assert_eq!(h.redeem(&code, &pkce).await.0, StatusCode::OK);
    check("54005_code_redeemed", h.redeem(&code, &pkce).await);
}

#[tokio::test]
async fn aadsts_65001_consent_revoked() {
    let h = start(0).await;
    let token = refresh_token(&h).await;
    h.control.revoke_consent(&h.demo.user_id).await.unwrap();
    let (status, body) = h.refresh(&token, None).await;
    assert_eq!(body["suberror"], "consent_required");
    check("65001_consent_required", (status, body));
    assert_eq!(
        h.refresh(&refresh_token(&h).await, None).await.0,
        StatusCode::OK,
        "signing in consents again"
    );
}

#[tokio::test]
async fn aadsts_50076_mfa_required() {
    let h = start(0).await;
    let token = refresh_token(&h).await;
    h.control.require_mfa(&h.demo.user_id).await.unwrap();
    let (status, body) = h.refresh(&token, None).await;
    assert_eq!(body["suberror"], "basic_action");
    assert!(body["claims"].is_string());
    check("50076_mfa_required", (status, body));
}

#[tokio::test]
async fn aadsts_50148_pkce_verifier_mismatch_or_missing() {
    let h = start(0).await;
    let (code, _) = h.code(SCOPES).await;
    check(
        "50148_pkce_mismatch",
        h.redeem(&code, &crate::harness::Pkce::new()).await,
    );
    let (status, body) = h
        .token(&[
            ("client_id", &h.demo.client_id),
            ("client_secret", &h.demo.client_secret),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ])
        .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (StatusCode::BAD_REQUEST, Some(50148))
    );
}

#[tokio::test]
async fn aadsts_7000215_wrong_client_secret() {
    let h = start(0).await;
    let (code, pkce) = h.code(SCOPES).await;
    let response = h
        .token(&[
            ("client_id", &h.demo.client_id),
            ("client_secret", "4f9e2b8a-secret-id-not-value"),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ])
        .await;
    assert_eq!(response.0, StatusCode::UNAUTHORIZED);
    check("7000215_wrong_secret", response);
}

#[tokio::test]
async fn aadsts_7000222_client_secret_expired() {
    let h = start(0).await;
    let token = refresh_token(&h).await;
    h.control.expire_secret(&h.demo.client_id).await.unwrap();
    let response = h.refresh(&token, None).await;
    assert_eq!(response.0, StatusCode::UNAUTHORIZED);
    check("7000222_secret_expired", response);

    let renewed = UpdateSecret {
        expires_in_secs: 3600,
        rotate: true,
    };
    let app = h
        .control
        .update_secret(&h.demo.client_id, &renewed)
        .await
        .unwrap();
    assert_ne!(app.client_secret, h.demo.client_secret);
    h.control.advance_clock(3601).await.unwrap();
    let (status, body) = h
        .token(&[
            ("client_id", &h.demo.client_id),
            ("client_secret", &app.client_secret),
            ("grant_type", "refresh_token"),
            ("refresh_token", &token),
        ])
        .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(7000222)),
        "virtual clock"
    );
}

#[tokio::test]
async fn aadsts_70011_invalid_scope() {
    let h = start(0).await;
    let token = refresh_token(&h).await;
    check(
        "70011_invalid_scope",
        h.refresh(
            &token,
            Some("https://graph.microsoft.com/Files.Read.Everything"),
        )
        .await,
    );
}

#[tokio::test]
async fn malformed_requests() {
    let h = start(0).await;
    let id = h.demo.client_id.as_str();
    let secret = h.demo.client_secret.as_str();
    check(
        "900144_missing_code",
        h.token(&[
            ("client_id", id),
            ("client_secret", secret),
            ("grant_type", "authorization_code"),
        ])
        .await,
    );
    check(
        "900144_missing_grant_type",
        h.token(&[("client_id", id), ("client_secret", secret)])
            .await,
    );
    check(
        "70003_unsupported_grant_type",
        h.token(&[
            ("client_id", id),
            ("client_secret", secret),
            ("grant_type", "password"),
        ])
        .await,
    );
    check(
        "7000218_missing_credential",
        h.token(&[
            ("client_id", id),
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
        ])
        .await,
    );
    check(
        "9002313_unknown_refresh_token",
        h.token(&[
            ("client_id", id),
            ("client_secret", secret),
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
        ])
        .await,
    );
    check(
        "700016_unknown_client",
        h.token(&[
            ("client_id", "6731de76-14a6-49ae-97bc-6eba6914391e"),
            ("grant_type", "refresh_token"),
        ])
        .await,
    );
    check(
        "90002_unknown_tenant",
        h.token_at(
            "fabrikam.com",
            &[("client_id", id), ("grant_type", "refresh_token")],
        )
        .await,
    );
}
