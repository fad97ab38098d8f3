//! The authorization code flow: authorize, consent, redemption, refresh, admin consent.

use plugboard_emulator::{AuthorizeErrorKind, ConsentMode, CreateApp, CreateUser, NextOutcome};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, LOCATION};

use crate::harness::{REDIRECT_URI, SCOPES, basic_auth, jwt_claims, redirect_params, start};

#[tokio::test]
async fn code_flow_with_pkce_and_the_secret_in_the_body() {
    let h = start(10).await;
    let pkce = crate::harness::Pkce::new();
    let params = h.sign_in(SCOPES, &pkce).await;
    assert_eq!(params["state"], "opaque-state");
    assert!(
        params.contains_key("session_state"),
        "an extra parameter clients must ignore"
    );

    let (status, body) = h.redeem(&params["code"], &pkce).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "People.Read User.Read openid");
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((3600..=5399).contains(&expires_in));
    assert_eq!(body["ext_expires_in"], expires_in);
    assert!(body["refresh_token"].is_string());

    let access = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["scp"], "People.Read User.Read");
    assert_eq!(access["oid"], h.demo.user_id.as_str());
    assert_eq!(access["tid"], h.demo.tenant_id.as_str());
    assert_eq!(access["aud"], "00000003-0000-0000-c000-000000000000");

    let id = jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], h.demo.client_id.as_str());
    assert_eq!(id["oid"], h.demo.user_id.as_str());
    assert_eq!(
        id["preferred_username"],
        h.demo.user_principal_name.as_str()
    );
    assert_eq!(
        id["iss"],
        format!(
            "https://login.microsoftonline.com/{}/v2.0",
            h.demo.tenant_id
        )
    );
    assert!(id["exp"].as_i64().unwrap() > chrono::Utc::now().timestamp());

    let (status, _, me) = h
        .graph("/v1.0/me", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["userPrincipalName"], h.demo.user_principal_name.as_str());
}

#[tokio::test]
async fn http_basic_credentials_are_form_urlencoded() {
    let h = start(0).await;
    let (code, pkce) = h.code(SCOPES).await;
    let response = h
        .http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            h.url, h.demo.tenant_domain
        ))
        .header(
            AUTHORIZATION,
            basic_auth(&h.demo.client_id, &h.demo.client_secret),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn codes_are_single_use() {
    let h = start(0).await;
    let (code, pkce) = h.code(SCOPES).await;
    assert_eq!(h.redeem(&code, &pkce).await.0, StatusCode::OK);
    let (status, body) = h.redeem(&code, &pkce).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"][0], 54005);
}

#[tokio::test]
async fn every_refresh_rotates_and_the_old_token_stays_valid() {
    let h = start(0).await;
    let first = h.tokens(SCOPES).await;
    let old = first["refresh_token"].as_str().unwrap();
    let (status, second) = h.refresh(old, None).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_ne!(second["access_token"], first["access_token"]);
    let (status, third) = h.refresh(old, Some("People.Read offline_access")).await;
    assert_eq!(status, StatusCode::OK, "Microsoft does not revoke on reuse");
    assert_eq!(third["scope"], "People.Read");
    assert!(third.get("id_token").is_none());
    assert_eq!(h.refresh(new, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn refresh_and_id_tokens_only_with_their_scopes() {
    let h = start(0).await;
    let body = h.tokens("User.Read").await;
    assert_eq!(body["scope"], "User.Read");
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("id_token").is_none());
}

#[tokio::test]
async fn fragment_and_form_post_response_modes() {
    let h = start(0).await;
    let base = [
        ("client_id", h.demo.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "User.Read"),
        ("state", "s1"),
    ];
    let response = h
        .authorize(
            "common",
            &[&base[..], &[("response_mode", "fragment")]].concat(),
        )
        .await;
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{REDIRECT_URI}#code=")),
        "{location}"
    );
    assert_eq!(redirect_params(&response)["state"], "s1");

    let response = h
        .authorize(
            "common",
            &[&base[..], &[("response_mode", "form_post")]].concat(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains(&format!("action=\"{REDIRECT_URI}\"")));
    assert!(html.contains("name=\"code\"") && html.contains("value=\"s1\""));
    assert!(html.contains("document.forms[0].submit()"));
}

#[tokio::test]
async fn untrusted_requests_get_microsofts_error_page() {
    let h = start(0).await;
    let cases = [
        (
            "common",
            "00000000-0000-0000-0000-000000000000",
            REDIRECT_URI,
            "AADSTS700016",
        ),
        (
            "common",
            h.demo.client_id.as_str(),
            "http://localhost:3000/other",
            "AADSTS50011",
        ),
        (
            "fabrikam.onmicrosoft.com",
            h.demo.client_id.as_str(),
            REDIRECT_URI,
            "AADSTS90002",
        ),
    ];
    for (tenant, client_id, redirect_uri, code) in cases {
        let response = h
            .authorize(
                tenant,
                &[
                    ("client_id", client_id),
                    ("response_type", "code"),
                    ("redirect_uri", redirect_uri),
                    ("scope", "User.Read"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{code}");
        assert!(response.headers().get(LOCATION).is_none());
        assert!(response.text().await.unwrap().contains(code));
    }
}

#[tokio::test]
async fn single_tenant_apps_cannot_use_common() {
    let h = start(0).await;
    let app = h
        .control
        .create_app(&CreateApp {
            home_tenant: h.demo.tenant_id.clone(),
            redirect_uris: vec![REDIRECT_URI.into()],
            audience: plugboard_emulator::Audience::SingleTenant,
            ..CreateApp::default()
        })
        .await
        .unwrap();
    let params = [
        ("client_id", app.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "User.Read"),
    ];
    let response = h.authorize("common", &params).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("AADSTS50194"));
    assert_eq!(
        h.authorize(&h.demo.tenant_id, &params).await.status(),
        StatusCode::FOUND
    );

    let (status, body) = h
        .token(&[
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
            ("grant_type", "refresh_token"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"][0], 50194);
}

#[tokio::test]
async fn invalid_authorize_requests_redirect_with_an_error() {
    let h = start(0).await;
    type Params<'a> = &'a [(&'a str, &'a str)];
    let challenge = "a".repeat(43);
    let cases: [(Params, &str, &str); 4] = [
        (
            &[("response_type", "token"), ("scope", "User.Read")],
            "unsupported_response_type",
            "AADSTS700054",
        ),
        (
            &[
                ("response_type", "code"),
                ("scope", "User.Read Files.Read.Everything"),
            ],
            "invalid_request",
            "AADSTS70011",
        ),
        (
            &[("response_type", "code")],
            "invalid_request",
            "AADSTS900144",
        ),
        (
            &[
                ("response_type", "code"),
                ("scope", "User.Read"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
            "AADSTS501492",
        ),
    ];
    for (extra, error, code) in cases {
        let params = [
            &[
                ("client_id", h.demo.client_id.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("state", "st"),
            ],
            extra,
        ]
        .concat();
        let response = h.authorize("organizations", &params).await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let params = redirect_params(&response);
        assert_eq!(params["error"], error);
        assert!(
            params["error_description"].starts_with(code),
            "{}",
            params["error_description"]
        );
        assert!(params["error_description"].contains("\r\nTrace ID: "));
        assert_eq!(params["state"], "st");
        assert!(!params.contains_key("code"));
    }
}

#[tokio::test]
async fn scheduled_outcomes_apply_to_the_next_authorize_only() {
    let h = start(0).await;
    let kinds = [
        (AuthorizeErrorKind::InvalidRequest, "invalid_request"),
        (
            AuthorizeErrorKind::UnauthorizedClient,
            "unauthorized_client",
        ),
        (AuthorizeErrorKind::AccessDenied, "access_denied"),
        (
            AuthorizeErrorKind::UnsupportedResponseType,
            "unsupported_response_type",
        ),
        (AuthorizeErrorKind::ServerError, "server_error"),
        (
            AuthorizeErrorKind::TemporarilyUnavailable,
            "temporarily_unavailable",
        ),
        (AuthorizeErrorKind::InvalidResource, "invalid_resource"),
        (AuthorizeErrorKind::LoginRequired, "login_required"),
        (
            AuthorizeErrorKind::InteractionRequired,
            "interaction_required",
        ),
        (AuthorizeErrorKind::ConsentRequired, "consent_required"),
    ];
    let pkce = crate::harness::Pkce::new();
    for (kind, error) in kinds {
        let outcome = NextOutcome {
            error: kind,
            error_description: None,
        };
        h.control
            .schedule_outcome(&h.demo.client_id, &outcome)
            .await
            .unwrap();
        let params = h.sign_in(SCOPES, &pkce).await;
        assert_eq!(params["error"], error);
        assert!(params["error_description"].starts_with("AADSTS"));
        assert!(params["error_uri"].starts_with("https://login.microsoftonline.com/error?code="));
        assert_eq!(params["state"], "opaque-state");
    }
    let outcome = NextOutcome {
        error: AuthorizeErrorKind::AccessDenied,
        error_description: Some("AADSTS65004: nope".into()),
    };
    h.control
        .schedule_outcome(&h.demo.client_id, &outcome)
        .await
        .unwrap();
    assert_eq!(
        h.sign_in(SCOPES, &pkce).await["error_description"],
        "AADSTS65004: nope"
    );
    assert!(h.sign_in(SCOPES, &pkce).await.contains_key("code"));
}

#[tokio::test]
async fn consent_page_accept_and_decline() {
    let h = start(0).await;
    let app = h
        .control
        .create_app(&CreateApp {
            home_tenant: h.demo.tenant_id.clone(),
            redirect_uris: vec![REDIRECT_URI.into()],
            consent_mode: ConsentMode::Page,
            ..CreateApp::default()
        })
        .await
        .unwrap();
    for (decision, expect_code) in [("accept", true), ("decline", false)] {
        let params = [
            ("client_id", app.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "User.Read People.Read"),
            ("state", "st"),
        ];
        let page = h.authorize("common", &params).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("People.Read") && html.contains("Accept") && html.contains("Decline")
        );
        let action = attribute(&html, "action=\"");
        let prompt = attribute(&html, "name=\"prompt\" value=\"");
        let response = h
            .http
            .post(format!("{}{action}", h.url))
            .form(&[("prompt", prompt.as_str()), ("decision", decision)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let params = redirect_params(&response);
        assert_eq!(params["state"], "st");
        if expect_code {
            assert!(params.contains_key("code"));
        } else {
            assert_eq!(params["error"], "access_denied");
            assert!(
                params["error_description"]
                    .starts_with("AADSTS65004: User declined to consent to access the app.")
            );
        }
    }
}

fn attribute(html: &str, prefix: &str) -> String {
    let start = html.find(prefix).unwrap() + prefix.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn login_hint_picks_the_user() {
    let h = start(0).await;
    let other = h
        .control
        .create_user(&CreateUser {
            tenant: h.demo.tenant_domain.clone(),
            display_name: Some("Alex Wilber".into()),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    let pkce = crate::harness::Pkce::new();
    let response = h
        .authorize(
            "common",
            &[
                ("client_id", &h.demo.client_id),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "User.Read"),
                ("login_hint", &other.user_principal_name.to_uppercase()),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    let code = redirect_params(&response)["code"].clone();
    let (_, body) = h.redeem(&code, &pkce).await;
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["oid"],
        other.id.as_str()
    );
}

#[tokio::test]
async fn admin_consent_grants_people_read_all_for_the_tenant() {
    let h = start(5).await;
    let colleague = h
        .control
        .create_user(&CreateUser {
            tenant: h.demo.tenant_id.clone(),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    h.control.seed_people(&colleague.id, 3, 9).await.unwrap();
    let scope = "https://graph.microsoft.com/People.Read.All offline_access";

    // Without admin consent, the user cannot grant People.Read.All.
    let token = h.tokens(scope).await;
    assert_eq!(token["scope"], "");
    let path = format!("/v1.0/users/{}/people", colleague.user_principal_name);
    let (status, _, body) = h
        .graph(&path, token["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "ErrorAccessDenied");

    let admin_consent = |tenant: String| {
        let h = &h;
        async move {
            h.http
                .get(format!("{}/{tenant}/v2.0/adminconsent", h.url))
                .query(&[
                    ("client_id", h.demo.client_id.as_str()),
                    ("scope", scope),
                    ("redirect_uri", REDIRECT_URI),
                    ("state", "a1"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let page = admin_consent("common".into()).await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(page.text().await.unwrap().contains("AADSTS90130"));

    let outcome = NextOutcome {
        error: AuthorizeErrorKind::AccessDenied,
        error_description: None,
    };
    h.control
        .schedule_outcome(&h.demo.client_id, &outcome)
        .await
        .unwrap();
    let params = redirect_params(&admin_consent(h.demo.tenant_domain.clone()).await);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "a1");
    assert!(!params.contains_key("tenant"));

    let params = redirect_params(&admin_consent("organizations".into()).await);
    assert_eq!(params["admin_consent"], "True");
    assert_eq!(params["tenant"], h.demo.tenant_id);
    assert_eq!(params["scope"], scope);
    assert_eq!(params["state"], "a1");

    // The old refresh token can now reach People.Read.All.
    let (status, refreshed) = h
        .refresh(token["refresh_token"].as_str().unwrap(), Some(scope))
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["scope"], "People.Read.All");
    let (status, _, page) = h
        .graph(&path, refreshed["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["value"].as_array().unwrap().len(), 3);
}
