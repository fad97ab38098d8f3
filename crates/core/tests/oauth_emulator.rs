//! The OAuth engine against the emulator, over real HTTP: the code flow with PKCE in both
//! client authentication styles, refresh with rotation, admin consent, and every failure the
//! identity platform documents, classified.
#![cfg(feature = "testkit")]

mod common;

use std::fmt::Write as _;

use chrono::Utc;
use common::{Harness, REDIRECT_URI, tenant};
use plugboard_core::HttpRequest;
use plugboard_core::http::ApiClient;
use plugboard_core::oauth::{
    AuthorizationRequest, CallbackCode, OAuthClient, OAuthClientConfig, OAuthError, OAuthErrorKind,
    Stage, TokenSet, parse_admin_consent_callback, parse_callback,
};
use plugboard_core::spec::ClientAuthentication;
use plugboard_core::testkit::connect_auto_consent;
use plugboard_emulator::{
    Audience, AuthorizeErrorKind, CreateApp, ExpireTokens, FaultKind, FaultRule, NextOutcome,
};
use secrecy::{ExposeSecret, SecretString};

/// Opens the authorization URL and reads the callback it redirects to, without redeeming.
async fn authorize(
    h: &Harness,
    oauth: &OAuthClient,
) -> (AuthorizationRequest, Result<CallbackCode, OAuthError>) {
    let request = oauth.authorization_request(&h.tenant(), &[]).unwrap();
    let query = redirect_query(h, &request.url).await;
    (request, parse_callback(&query))
}

/// GETs a URL that must redirect to the redirect URI and returns the redirect's query.
async fn redirect_query(h: &Harness, url: &str) -> String {
    let response = h.http.get(url).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    url::Url::parse(location)
        .unwrap()
        .query()
        .unwrap_or_default()
        .to_owned()
}

async fn connect(h: &Harness) -> TokenSet {
    connect_auto_consent(&h.http, &h.oauth(), &h.tenant(), &[])
        .await
        .unwrap()
}

/// The token works against Graph: `/v1.0/me` answers with the demo user.
async fn assert_token_works(h: &Harness, tokens: &TokenSet) {
    let api = ApiClient::new(
        h.http.clone(),
        &Harness::graph_api(),
        url::Url::parse(&h.emulator.url()).unwrap(),
    );
    let me = api
        .send(
            &HttpRequest::get("/v1.0/me"),
            Some(tokens.access_token.expose_secret()),
        )
        .await
        .unwrap();
    assert_eq!(me.status, 200, "{}", String::from_utf8_lossy(&me.body));
    let me: serde_json::Value = me.json().unwrap();
    assert_eq!(me["id"], h.demo.user_id.as_str());
}

#[tokio::test]
async fn code_flow_with_pkce_and_either_client_authentication() {
    let h = Harness::start().await;
    for auth in [ClientAuthentication::Form, ClientAuthentication::Basic] {
        let oauth = h.oauth_with(h.config(auth));
        let request = oauth.authorization_request(&h.tenant(), &[]).unwrap();
        let url = url::Url::parse(&request.url).unwrap();
        let params: std::collections::BTreeMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(params["code_challenge_method"], "S256");
        assert_eq!(
            params["scope"],
            "openid offline_access User.Read People.Read"
        );
        assert_eq!(params["redirect_uri"], REDIRECT_URI);
        assert!(request.state.len() >= 43, "256 random bits, base64url");
        assert!(request.pkce_verifier.is_some());

        // Spawned, so the futures the host will hold across awaits are `Send`.
        let http = h.http.clone();
        let connection = h.tenant();
        let tokens =
            tokio::spawn(
                async move { connect_auto_consent(&http, &oauth, &connection, &[]).await },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tokens.token_type, "Bearer");
        assert!(
            tokens.refresh_token.is_some(),
            "offline_access was asked for"
        );
        assert!(tokens.id_token.is_some(), "openid was asked for");
        assert!(
            tokens.scopes.contains(&"People.Read".to_owned()),
            "{:?}",
            tokens.scopes
        );
        let lifetime = tokens.expires_at.unwrap() - Utc::now();
        assert!(
            (3590..=5400).contains(&lifetime.num_seconds()),
            "{lifetime}"
        );
        assert_token_works(&h, &tokens).await;
    }
    let counters = h.control.counters().await.unwrap();
    assert_eq!(counters.token_requests["authorization_code"], 2);
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_stays_usable() {
    let h = Harness::start().await;
    let oauth = h.oauth();
    let first = connect(&h).await;
    let old = first.refresh_token.clone().unwrap();

    let second = oauth.refresh(&h.tenant(), &old, None).await.unwrap();
    let new = second.refresh_token.clone().unwrap();
    assert_ne!(new.expose_secret(), old.expose_secret());
    assert_ne!(
        second.access_token.expose_secret(),
        first.access_token.expose_secret()
    );
    assert_token_works(&h, &second).await;

    // Microsoft does not revoke the previous refresh token.
    let third = oauth.refresh(&h.tenant(), &old, None).await.unwrap();
    assert_token_works(&h, &third).await;
    oauth.refresh(&h.tenant(), &new, None).await.unwrap();
}

#[tokio::test]
async fn admin_consent_grants_the_organisation_wide_scope() {
    let h = Harness::start().await;
    let mut config = h.config(ClientAuthentication::Form);
    config.scopes.push("People.Read.All".into());
    let oauth = h.oauth_with(config);
    let url = oauth
        .admin_consent_url(&h.tenant(), "consent-state")
        .unwrap();
    let query = url::Url::parse(&url).unwrap();
    let scope = query.query_pairs().find(|(k, _)| k == "scope").unwrap().1;
    assert_eq!(
        scope,
        "openid offline_access User.Read People.Read People.Read.All"
    );
    let consent = parse_admin_consent_callback(&redirect_query(&h, &url).await).unwrap();
    assert_eq!(consent.tenant, h.demo.tenant_id);
    assert_eq!(consent.state, "consent-state");

    // A user's grant now includes People.Read.All, which the user alone could not grant.
    let tokens = connect_auto_consent(&h.http, &oauth, &h.tenant(), &[])
        .await
        .unwrap();
    assert!(
        tokens.scopes.contains(&"People.Read.All".to_owned()),
        "{:?}",
        tokens.scopes
    );
    let all = ["People.Read.All".to_owned()];
    let refreshed = oauth
        .refresh(
            &h.tenant(),
            tokens.refresh_token.as_ref().unwrap(),
            Some(&all),
        )
        .await
        .unwrap();
    assert_eq!(refreshed.scopes, all);
}

/// Every failure, as a table row of how it was classified and the line a person reads.
struct Report(String);

impl Report {
    fn row(&mut self, case: &str, err: &OAuthError, kind: OAuthErrorKind) {
        assert_eq!(err.kind(), kind, "{case}: {err}");
        for secret in ["eyJ", "client_secret="] {
            assert!(!format!("{err:?}").contains(secret), "{case}: {err:?}");
        }
        writeln!(
            self.0,
            "{case}\n  kind={:?} stage={:?} error={} aadsts={} suberror={} status={}\n  {err}",
            err.kind(),
            err.stage(),
            err.error().unwrap_or("-"),
            err.aadsts().map_or("-".to_owned(), |c| c.to_string()),
            err.suberror().unwrap_or("-"),
            err.status().map_or("-".to_owned(), |s| s.to_string()),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn authorization_callback_errors_are_classified() {
    use AuthorizeErrorKind as Scheduled;
    use OAuthErrorKind::*;
    let h = Harness::start().await;
    let oauth = h.oauth();
    let mut report = Report(String::new());
    let rows = [
        (Scheduled::AccessDenied, UserDeclined),
        (Scheduled::ConsentRequired, InteractionRequired),
        (Scheduled::InteractionRequired, InteractionRequired),
        (Scheduled::LoginRequired, InteractionRequired),
        (Scheduled::ServerError, Transient),
        (Scheduled::TemporarilyUnavailable, Transient),
        (Scheduled::InvalidRequest, IntegrationMisconfigured),
        (Scheduled::UnauthorizedClient, IntegrationMisconfigured),
        (Scheduled::InvalidResource, IntegrationMisconfigured),
        (Scheduled::UnsupportedResponseType, IntegrationMisconfigured),
    ];
    for (scheduled, kind) in rows {
        let outcome = NextOutcome {
            error: scheduled,
            error_description: None,
        };
        h.control
            .schedule_outcome(&h.demo.client_id, &outcome)
            .await
            .unwrap();
        let (request, callback) = authorize(&h, &oauth).await;
        let err = callback.unwrap_err();
        assert_eq!(
            err.state(),
            Some(request.state.as_str()),
            "state comes back"
        );
        assert_eq!(err.stage(), Stage::Authorize);
        report.row(&format!("authorize: {}", scheduled.as_str()), &err, kind);
    }

    // Admin consent declined: the same error shape, without a tenant.
    let outcome = NextOutcome {
        error: Scheduled::AccessDenied,
        error_description: None,
    };
    h.control
        .schedule_outcome(&h.demo.client_id, &outcome)
        .await
        .unwrap();
    let url = oauth.admin_consent_url(&h.tenant(), "s").unwrap();
    let err = parse_admin_consent_callback(&redirect_query(&h, &url).await).unwrap_err();
    assert_eq!(err.state(), Some("s"));
    report.row("admin consent: access_denied", &err, UserDeclined);

    // Failures Microsoft shows on its own page; the test kit reads the code off it.
    let wrong_redirect = h.oauth_with(OAuthClientConfig {
        redirect_uri: "http://127.0.0.1:5555/elsewhere".into(),
        ..h.config(ClientAuthentication::Form)
    });
    let err = connect_auto_consent(&h.http, &wrong_redirect, &h.tenant(), &[])
        .await
        .unwrap_err();
    report.row(
        "authorize: unregistered redirect URI",
        &err,
        IntegrationMisconfigured,
    );
    let err = connect_auto_consent(&h.http, &oauth, &tenant("nosuch.onmicrosoft.com"), &[])
        .await
        .unwrap_err();
    report.row("authorize: unknown tenant", &err, IntegrationMisconfigured);

    insta::assert_snapshot!(report.0);
}

#[tokio::test]
async fn code_redemption_errors_are_classified() {
    use OAuthErrorKind::*;
    let h = Harness::start().await;
    let oauth = h.oauth();
    let connection = h.tenant();
    let mut report = Report(String::new());

    // A code redeemed twice.
    let (request, callback) = authorize(&h, &oauth).await;
    let code = callback.unwrap();
    let verifier = request.pkce_verifier.as_ref();
    oauth
        .exchange_code(&connection, &code.code, verifier)
        .await
        .unwrap();
    let err = oauth
        .exchange_code(&connection, &code.code, verifier)
        .await
        .unwrap_err();
    report.row("exchange: code reused", &err, CodeAlreadyUsed);

    // A verifier that does not match the challenge.
    let (_, callback) = authorize(&h, &oauth).await;
    let other = SecretString::from("x".repeat(43));
    let err = oauth
        .exchange_code(&connection, &callback.unwrap().code, Some(&other))
        .await
        .unwrap_err();
    report.row("exchange: PKCE mismatch", &err, CallbackRejected);

    // A code past its ten minutes.
    let (request, callback) = authorize(&h, &oauth).await;
    h.control.advance_clock(11 * 60).await.unwrap();
    let err = oauth
        .exchange_code(
            &connection,
            &callback.unwrap().code,
            request.pkce_verifier.as_ref(),
        )
        .await
        .unwrap_err();
    report.row("exchange: code expired", &err, CallbackRejected);

    // A code the provider never issued.
    let err = oauth
        .exchange_code(&connection, &SecretString::from("forged"), None)
        .await
        .unwrap_err();
    report.row("exchange: unknown code", &err, CallbackRejected);

    // The secret's ID pasted instead of its value.
    let (request, callback) = authorize(&h, &oauth).await;
    let wrong_secret = h.oauth_with(OAuthClientConfig {
        client_secret: SecretString::from("7d2c1f3e-secret-id"),
        ..h.config(ClientAuthentication::Basic)
    });
    let err = wrong_secret
        .exchange_code(
            &connection,
            &callback.unwrap().code,
            request.pkce_verifier.as_ref(),
        )
        .await
        .unwrap_err();
    report.row(
        "exchange: wrong client secret (basic)",
        &err,
        IntegrationMisconfigured,
    );
    assert_eq!(err.status(), Some(401));

    // A single-tenant app addressed through `common`.
    let single = h
        .control
        .create_app(&CreateApp {
            home_tenant: h.demo.tenant_id.clone(),
            redirect_uris: vec![REDIRECT_URI.into()],
            audience: Audience::SingleTenant,
            ..CreateApp::default()
        })
        .await
        .unwrap();
    let single_tenant = h.oauth_with(OAuthClientConfig {
        client_id: single.client_id.clone(),
        client_secret: SecretString::from(single.client_secret.clone()),
        ..h.config(ClientAuthentication::Form)
    });
    let err = connect_auto_consent(&h.http, &single_tenant, &tenant("common"), &[])
        .await
        .unwrap_err();
    report.row(
        "authorize: single-tenant app on common",
        &err,
        IntegrationMisconfigured,
    );
    let err = single_tenant
        .exchange_code(&tenant("common"), &SecretString::from("any"), None)
        .await
        .unwrap_err();
    report.row(
        "exchange: single-tenant app on common",
        &err,
        IntegrationMisconfigured,
    );

    insta::assert_snapshot!(report.0);
}

#[tokio::test]
async fn refresh_errors_are_classified() {
    use OAuthErrorKind::*;
    let h = Harness::start().await;
    let oauth = h.oauth();
    let connection = h.tenant();
    let user = h.demo.user_id.clone();
    let mut report = Report(String::new());
    let refresh_token = |tokens: &TokenSet| tokens.refresh_token.clone().unwrap();

    // Scopes the grant does not cover, and a scope that does not exist.
    let rt = refresh_token(&connect(&h).await);
    let err = oauth
        .refresh(&connection, &rt, Some(&["People.Read.All".to_owned()]))
        .await
        .unwrap_err();
    report.row("refresh: scope not granted", &err, ReconnectNeeded);
    let err = oauth
        .refresh(&connection, &rt, Some(&["Nope.Read".to_owned()]))
        .await
        .unwrap_err();
    report.row("refresh: invalid scope", &err, IntegrationMisconfigured);

    // An expired refresh token.
    h.control
        .expire_tokens(&ExpireTokens {
            refresh_token: Some(rt.expose_secret().to_owned()),
            ..ExpireTokens::default()
        })
        .await
        .unwrap();
    let err = oauth.refresh(&connection, &rt, None).await.unwrap_err();
    report.row("refresh: refresh token expired", &err, ReconnectNeeded);

    // Revoked (password change), consent withdrawn, MFA now required.
    let rt = refresh_token(&connect(&h).await);
    h.control.revoke_refresh_tokens(&user).await.unwrap();
    let err = oauth.refresh(&connection, &rt, None).await.unwrap_err();
    report.row("refresh: grant revoked", &err, ReconnectNeeded);

    let rt = refresh_token(&connect(&h).await);
    h.control.revoke_consent(&user).await.unwrap();
    let err = oauth.refresh(&connection, &rt, None).await.unwrap_err();
    report.row("refresh: consent revoked", &err, ReconnectNeeded);
    assert_eq!(err.suberror(), Some("consent_required"));

    let rt = refresh_token(&connect(&h).await);
    h.control.require_mfa(&user).await.unwrap();
    let err = oauth.refresh(&connection, &rt, None).await.unwrap_err();
    report.row("refresh: MFA required", &err, ReconnectNeeded);
    assert_eq!(err.suberror(), Some("basic_action"));

    // Unused for more than 90 days.
    let rt = refresh_token(&connect(&h).await);
    h.control.advance_clock(91 * 86_400).await.unwrap();
    let err = oauth.refresh(&connection, &rt, None).await.unwrap_err();
    report.row("refresh: inactive for 90 days", &err, ReconnectNeeded);

    // The integration's secret expired.
    let rt = refresh_token(&connect(&h).await);
    h.control.expire_secret(&h.demo.client_id).await.unwrap();
    let err = oauth.refresh(&connection, &rt, None).await.unwrap_err();
    report.row(
        "refresh: client secret expired",
        &err,
        IntegrationMisconfigured,
    );
    assert_eq!(err.status(), Some(401));

    insta::assert_snapshot!(report.0);
}

#[tokio::test]
async fn transient_token_endpoint_failures_are_retryable() {
    use OAuthErrorKind::*;
    let h = Harness::start().await;
    let oauth = h.oauth();
    let connection = h.tenant();
    let rt = connect(&h).await.refresh_token.unwrap();
    let token_path = format!("/{}/oauth2/v2.0/token", h.demo.tenant_id);
    let mut report = Report(String::new());

    for (name, kind) in [
        (
            "503",
            FaultKind::Status {
                status: 503,
                retry_after_secs: None,
            },
        ),
        (
            "429",
            FaultKind::Status {
                status: 429,
                retry_after_secs: Some(1),
            },
        ),
        ("truncated body", FaultKind::MalformedBody),
        ("dropped connection", FaultKind::DropConnection),
    ] {
        h.control
            .add_fault(&FaultRule {
                method: Some("POST".into()),
                path_prefix: token_path.clone(),
                count: 1,
                kind,
            })
            .await
            .unwrap();
        let err = oauth.refresh(&connection, &rt, None).await.unwrap_err();
        assert!(err.kind().is_retryable());
        report.row(&format!("refresh: {name}"), &err, Transient);
    }
    // Once the provider recovers, the same refresh token works.
    oauth.refresh(&connection, &rt, None).await.unwrap();

    // Nothing listens on the token URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = h.oauth_with(OAuthClientConfig {
        token_url: Some(format!("http://127.0.0.1:{port}/{{tenant}}/token")),
        ..h.config(ClientAuthentication::Form)
    });
    let err = unreachable
        .refresh(&connection, &rt, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Transient);
    // Not in the snapshot: the operating system words the refusal.
    assert!(err.to_string().contains("could not connect"), "{err}");

    insta::assert_snapshot!(report.0);
}

#[tokio::test]
async fn local_misconfiguration_is_reported_before_anything_is_sent() {
    let h = Harness::start().await;
    let oauth = h.oauth();
    let err = oauth
        .authorization_request(&tenant("evil.example/x?"), &[])
        .unwrap_err();
    assert_eq!(err.kind(), OAuthErrorKind::IntegrationMisconfigured);
    assert_eq!(err.stage(), Stage::Local);

    let err = oauth
        .authorization_request(&h.tenant(), &[("state".into(), "mine".into())])
        .unwrap_err();
    assert!(err.to_string().contains("`state`"), "{err}");

    let clear_text = h.oauth_with(OAuthClientConfig {
        token_url: Some("http://login.example/{tenant}/token".into()),
        ..h.config(ClientAuthentication::Form)
    });
    let err = clear_text
        .refresh(&tenant("contoso"), &SecretString::from("rt"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must use https"), "{err}");
    insta::assert_snapshot!(err.to_string(), @"token_url `http://login.example/contoso/token` must use https (http only on a loopback address)");
}

/// Certificate credentials: the code flow and refresh carry a signed client assertion and no
/// secret; a spec declaring `private_key_jwt` without a certificate fails before anything is
/// sent.
mod certificates {
    use std::sync::Arc;

    use crate::common::Harness;
    use plugboard_core::oauth::{
        AssertionAlgorithm, CertificateInfo, ClientAssertion, ClientCertificate, OAuthClient,
        OAuthErrorKind, PrivateKey, Stage,
    };
    use plugboard_core::spec::ClientAuthentication;
    use plugboard_core::testkit::connect_auto_consent;
    use plugboard_emulator::AddCertificate;
    use secrecy::SecretString;

    const APP_CRT: &str = include_str!("../../../testdata/certificates/app.crt");
    const APP_KEY: &str = include_str!("../../../testdata/certificates/app.key");

    fn certificate(algorithm: AssertionAlgorithm) -> Arc<ClientCertificate> {
        let info = CertificateInfo::from_pem(APP_CRT.as_bytes()).unwrap();
        let key = PrivateKey::from_pem(APP_KEY.as_bytes()).unwrap();
        Arc::new(ClientCertificate::new(info, key, algorithm).unwrap())
    }

    /// The demo app's engine with a certificate and a wrong secret, which must never be sent.
    fn with_certificate(h: &Harness, algorithm: AssertionAlgorithm) -> OAuthClient {
        let mut config = h.config(ClientAuthentication::PrivateKeyJwt);
        config.client_secret = SecretString::from("not-the-secret".to_owned());
        h.oauth_with(config).with_client_assertion(ClientAssertion {
            certificate: certificate(algorithm),
            audience: None,
        })
    }

    #[tokio::test]
    async fn connects_and_refreshes_with_either_algorithm() {
        let h = Harness::start().await;
        h.control
            .add_certificate(
                &h.demo.client_id,
                &AddCertificate {
                    certificate: APP_CRT.to_owned(),
                },
            )
            .await
            .unwrap();
        for algorithm in [AssertionAlgorithm::Ps256, AssertionAlgorithm::Rs256] {
            let oauth = with_certificate(&h, algorithm);
            let tokens = connect_auto_consent(&h.http, &oauth, &h.tenant(), &[])
                .await
                .unwrap();
            let refresh_token = tokens.refresh_token.unwrap();
            oauth
                .refresh(&h.tenant(), &refresh_token, None)
                .await
                .unwrap();
        }
        let counters = h.control.counters().await.unwrap();
        assert_eq!(counters.token_requests["authorization_code"], 2);
        assert_eq!(counters.token_requests["refresh_token"], 2);
    }

    #[tokio::test]
    async fn an_unregistered_certificate_is_the_integrations_fault() {
        let h = Harness::start().await;
        let oauth = with_certificate(&h, AssertionAlgorithm::Ps256);
        let error = connect_auto_consent(&h.http, &oauth, &h.tenant(), &[])
            .await
            .unwrap_err();
        assert_eq!(error.kind(), OAuthErrorKind::IntegrationMisconfigured);
        assert_eq!(error.aadsts(), Some(700027));
        assert!(error.fix().contains("Certificates & secrets"), "{error}");
    }

    #[tokio::test]
    async fn private_key_jwt_without_a_certificate_sends_nothing() {
        let h = Harness::start().await;
        let oauth = h.oauth_with(h.config(ClientAuthentication::PrivateKeyJwt));
        let refresh_token = SecretString::from("any".to_owned());
        let error = oauth
            .refresh(&h.tenant(), &refresh_token, None)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), OAuthErrorKind::IntegrationMisconfigured);
        assert_eq!(error.stage(), Stage::Local);
        assert!(error.fix().contains("client_certificate"), "{error}");
        let counters = h.control.counters().await.unwrap();
        assert!(counters.token_requests.is_empty(), "{counters:?}");
    }
}

/// Two credentials at once: the preferred one refused by the provider, the other tried once and
/// preferred from then on; refusals of anything but the credential are not retried.
mod rollover {
    use std::sync::Arc;

    use chrono::NaiveDate;
    use plugboard_core::oauth::{
        AssertionAlgorithm, CertificateInfo, ClientCertificate, ClientCredential, Credentials,
        NamedCredential, OAuthClient, OAuthErrorKind, PrivateKey,
    };
    use plugboard_core::spec::ClientAuthentication;
    use plugboard_core::testkit::connect_auto_consent;
    use plugboard_emulator::{AddCertificate, AddSecret};
    use secrecy::SecretString;

    use crate::common::Harness;

    const APP_CRT: &str = include_str!("../../../testdata/certificates/app.crt");
    const APP_KEY: &str = include_str!("../../../testdata/certificates/app.key");

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn named(credential: ClientCredential, index: usize, expires: &str) -> NamedCredential {
        NamedCredential {
            credential,
            name: format!("integrations.ms.credentials[{index}]"),
            expires: Some(date(expires)),
        }
    }

    fn secret(value: &str) -> ClientCredential {
        ClientCredential::Secret(SecretString::from(value.to_owned()))
    }

    fn certificate() -> ClientCredential {
        let info = CertificateInfo::from_pem(APP_CRT.as_bytes()).unwrap();
        let key = PrivateKey::from_pem(APP_KEY.as_bytes()).unwrap();
        let pair = ClientCertificate::new(info, key, AssertionAlgorithm::Ps256).unwrap();
        ClientCredential::Certificate(Arc::new(pair))
    }

    fn engine(h: &Harness, credentials: Vec<NamedCredential>) -> OAuthClient {
        h.oauth_with(h.config(ClientAuthentication::Form))
            .with_credentials(Credentials::new(credentials, date("2026-01-01")), None)
    }

    async fn refresh_token(h: &Harness, oauth: &OAuthClient) -> SecretString {
        let tokens = connect_auto_consent(&h.http, oauth, &h.tenant(), &[])
            .await
            .unwrap();
        tokens.refresh_token.unwrap()
    }

    #[tokio::test]
    async fn an_expired_secret_falls_back_once_to_the_other_and_stays_there() {
        let h = Harness::start().await;
        let client_id = &h.demo.client_id;
        let second = h
            .control
            .add_secret(client_id, &AddSecret::default())
            .await
            .unwrap();
        // The demo's secret is configured to expire last, so it is preferred.
        let oauth = engine(
            &h,
            vec![
                named(secret(&second.value), 0, "2027-05-01"),
                named(secret(&h.demo.client_secret), 1, "2027-06-01"),
            ],
        );
        let preferred = oauth.credentials().preferred().unwrap().name.clone();
        assert_eq!(preferred, "integrations.ms.credentials[1]");
        let token = refresh_token(&h, &oauth).await;

        h.control.expire_secret(client_id).await.unwrap();
        h.control.reset_counters().await.unwrap();
        let tokens = oauth.refresh(&h.tenant(), &token, None).await.unwrap();
        let counters = h.control.counters().await.unwrap();
        assert_eq!(counters.token_requests["refresh_token"], 2);
        assert_eq!(counters.token_errors["7000222"], 1);
        assert_eq!(counters.client_credentials[&second.id], 1);
        let preferred = oauth.credentials().preferred().unwrap().label();
        assert_eq!(
            preferred,
            "integrations.ms.credentials[0], expires 2027-05-01"
        );

        // From now on the working secret goes first: one request per refresh.
        let token = tokens.refresh_token.unwrap();
        oauth.refresh(&h.tenant(), &token, None).await.unwrap();
        let counters = h.control.counters().await.unwrap();
        assert_eq!(counters.token_requests["refresh_token"], 3);
        assert_eq!(counters.client_credentials[&second.id], 2);
    }

    #[tokio::test]
    async fn a_code_is_redeemed_with_the_other_credential_when_the_first_is_refused() {
        let h = Harness::start().await;
        h.control
            .add_certificate(
                &h.demo.client_id,
                &AddCertificate {
                    certificate: APP_CRT.to_owned(),
                },
            )
            .await
            .unwrap();
        // A wrong secret preferred, the registered certificate behind it.
        let oauth = engine(
            &h,
            vec![
                named(certificate(), 0, "2027-05-01"),
                named(secret("the-secret-id-not-its-value"), 1, "2028-01-01"),
            ],
        );
        connect_auto_consent(&h.http, &oauth, &h.tenant(), &[])
            .await
            .unwrap();
        let counters = h.control.counters().await.unwrap();
        assert_eq!(counters.token_requests["authorization_code"], 2);
        assert_eq!(counters.token_errors["7000215"], 1);
        assert_eq!(counters.client_credentials.len(), 1, "{counters:?}");
        assert!(
            counters
                .client_credentials
                .keys()
                .all(|k| k.starts_with("certificate:")),
            "{counters:?}"
        );
    }

    #[tokio::test]
    async fn every_credential_refused_answers_the_preferred_ones_error() {
        let h = Harness::start().await;
        let oauth = engine(
            &h,
            vec![
                named(secret(&h.demo.client_secret), 0, "2028-01-01"),
                named(secret("wrong"), 1, "2027-01-01"),
            ],
        );
        let token = refresh_token(&h, &oauth).await;
        h.control.expire_secret(&h.demo.client_id).await.unwrap();
        h.control.reset_counters().await.unwrap();
        let error = oauth.refresh(&h.tenant(), &token, None).await.unwrap_err();
        assert_eq!(error.kind(), OAuthErrorKind::IntegrationMisconfigured);
        assert_eq!(error.aadsts(), Some(7000222), "{error}");
        let counters = h.control.counters().await.unwrap();
        assert_eq!(counters.token_requests["refresh_token"], 2);
        let preferred = oauth.credentials().preferred().unwrap().name.clone();
        assert_eq!(preferred, "integrations.ms.credentials[0]", "unchanged");
    }

    #[tokio::test]
    async fn a_refused_grant_is_not_tried_with_another_credential() {
        let h = Harness::start().await;
        let second = h
            .control
            .add_secret(&h.demo.client_id, &AddSecret::default())
            .await
            .unwrap();
        let oauth = engine(
            &h,
            vec![
                named(secret(&h.demo.client_secret), 0, "2028-01-01"),
                named(secret(&second.value), 1, "2027-01-01"),
            ],
        );
        refresh_token(&h, &oauth).await;
        h.control.reset_counters().await.unwrap();
        let unknown = SecretString::from("not-a-refresh-token".to_owned());
        let error = oauth
            .refresh(&h.tenant(), &unknown, None)
            .await
            .unwrap_err();
        assert_ne!(
            error.kind(),
            OAuthErrorKind::IntegrationMisconfigured,
            "{error}"
        );
        let counters = h.control.counters().await.unwrap();
        assert_eq!(counters.token_requests["refresh_token"], 1);
    }
}
