//! Certificate credentials: client assertions accepted as Entra accepts them, and each way
//! one is refused answered with Entra's AADSTS code (`invalid_client`, 401).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plugboard_emulator::AddCertificate;
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::harness::{Harness, REDIRECT_URI, SCOPES, start};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/certificates/",
            $name
        ))
    };
}

const APP_CRT: &str = fixture!("app.crt");
const APP_KEY: &str = fixture!("app.key");
const OTHER_CRT: &str = fixture!("other.crt");
const OTHER_KEY: &str = fixture!("other.key");
const EXPIRED_CRT: &str = fixture!("expired.crt");
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a test puts in an assertion; [`Assertion::valid`] is what a correct client sends.
struct Assertion {
    header: Value,
    claims: Value,
    key: &'static str,
    pss: bool,
}

impl Assertion {
    async fn valid(h: &Harness, tenant: &str) -> Assertion {
        let thumbprint = registered(h, APP_CRT).await;
        let now = h.control.clock().await.unwrap().now.timestamp();
        Assertion {
            header: json!({"alg": "PS256", "typ": "JWT", "x5t#S256": thumbprint}),
            claims: json!({
                "aud": format!("{}/{tenant}/oauth2/v2.0/token", h.url),
                "iss": h.demo.client_id,
                "sub": h.demo.client_id,
                "jti": uuid::Uuid::new_v4().to_string(),
                "nbf": now,
                "exp": now + 300,
            }),
            key: APP_KEY,
            pss: true,
        }
    }

    fn sign(&self) -> String {
        let der = PrivateKeyDer::from_pem_slice(self.key.as_bytes()).unwrap();
        let PrivateKeyDer::Pkcs8(der) = der else {
            panic!("fixtures are PKCS#8")
        };
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(self.header.to_string()),
            URL_SAFE_NO_PAD.encode(self.claims.to_string())
        );
        let padding: &'static dyn RsaEncoding = if self.pss {
            &RSA_PSS_SHA256
        } else {
            &RSA_PKCS1_SHA256
        };
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            padding,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Registers `pem` on the demo app (once) and returns its SHA-256 thumbprint.
async fn registered(h: &Harness, pem: &str) -> String {
    let request = AddCertificate {
        certificate: pem.to_owned(),
    };
    match h.control.add_certificate(&h.demo.client_id, &request).await {
        Ok(info) => info.thumbprint_sha256,
        Err(e) if e.to_string().contains("409") => sha256_thumbprint(pem),
        Err(e) => panic!("{e}"),
    }
}

/// The thumbprint of a certificate already registered: registering again answers 409, so
/// compute it the way the emulator does.
fn sha256_thumbprint(pem: &str) -> String {
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &der))
}

/// Redeems a fresh refresh token with `assertion` at `tenant`.
async fn refresh_with(h: &Harness, tenant: &str, assertion: &str) -> (StatusCode, Value) {
    let refresh_token = h.tokens(SCOPES).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    h.token_at(
        tenant,
        &[
            ("client_id", &h.demo.client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    )
    .await
}

fn refused(code: u32, (status, body): (StatusCode, Value)) -> String {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    description.to_owned()
}

#[tokio::test]
async fn a_ps256_assertion_redeems_a_code_and_refreshes() {
    let h = start(0).await;
    let assertion = Assertion::valid(&h, "common").await;
    let (code, pkce) = h.code(SCOPES).await;
    let (status, body) = h
        .token(&[
            ("client_id", &h.demo.client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion.sign()),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string());

    let again = Assertion::valid(&h, "common").await;
    let (status, body) = refresh_with(&h, "common", &again.sign()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_rs256_assertion_names_the_sha1_thumbprint() {
    let h = start(0).await;
    let info = h
        .control
        .add_certificate(
            &h.demo.client_id,
            &AddCertificate {
                certificate: APP_CRT.to_owned(),
            },
        )
        .await
        .unwrap();
    let mut assertion = Assertion::valid(&h, &h.demo.tenant_domain).await;
    assertion.header = json!({"alg": "RS256", "typ": "JWT", "x5t": info.thumbprint_sha1});
    assertion.pss = false;
    let (status, body) = refresh_with(&h, &h.demo.tenant_domain, &assertion.sign()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn aadsts_700027_for_a_certificate_not_registered() {
    let h = start(0).await;
    let mut assertion = Assertion::valid(&h, "common").await;
    assertion.header["x5t#S256"] = sha256_thumbprint(OTHER_CRT).into();
    assertion.key = OTHER_KEY;
    let description = refused(700027, refresh_with(&h, "common", &assertion.sign()).await);
    assert!(
        description.contains("The key was not found."),
        "{description}"
    );
}

#[tokio::test]
async fn aadsts_700027_for_a_key_that_is_not_the_certificates() {
    let h = start(0).await;
    let mut assertion = Assertion::valid(&h, "common").await;
    assertion.key = OTHER_KEY;
    let description = refused(700027, refresh_with(&h, "common", &assertion.sign()).await);
    assert!(description.contains("signature"), "{description}");
}

#[tokio::test]
async fn aadsts_700027_for_a_certificate_past_its_end_date() {
    let h = start(0).await;
    let mut assertion = Assertion::valid(&h, "common").await;
    assertion.header["x5t#S256"] = registered(&h, EXPIRED_CRT).await.into();
    let description = refused(700027, refresh_with(&h, "common", &assertion.sign()).await);
    assert!(description.contains("expired"), "{description}");
}

#[tokio::test]
async fn aadsts_700023_for_another_audience() {
    let h = start(0).await;
    let mut assertion = Assertion::valid(&h, "common").await;
    // Signed for one tenant's endpoint, sent to another's.
    assertion.claims["aud"] = format!("{}/organizations/oauth2/v2.0/token", h.url).into();
    refused(700023, refresh_with(&h, "common", &assertion.sign()).await);
}

#[tokio::test]
async fn aadsts_700021_when_the_issuer_is_not_the_client() {
    let h = start(0).await;
    let mut assertion = Assertion::valid(&h, "common").await;
    assertion.claims["iss"] = "someone-else".into();
    refused(700021, refresh_with(&h, "common", &assertion.sign()).await);
}

#[tokio::test]
async fn aadsts_700024_outside_the_assertions_lifetime() {
    let h = start(0).await;
    let assertion = Assertion::valid(&h, "common").await.sign();
    h.control.advance_clock(301).await.unwrap();
    let description = refused(700024, refresh_with(&h, "common", &assertion).await);
    assert!(description.contains("valid time range"), "{description}");

    let mut early = Assertion::valid(&h, "common").await;
    early.claims["nbf"] = (early.claims["nbf"].as_i64().unwrap() + 120).into();
    refused(700024, refresh_with(&h, "common", &early.sign()).await);
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let h = start(0).await;
    let assertion = Assertion::valid(&h, "common").await.sign();
    let (status, body) = refresh_with(&h, "common", &assertion).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let description = refused(7000274, refresh_with(&h, "common", &assertion).await);
    assert!(description.contains("already used"), "{description}");
}

#[tokio::test]
async fn malformed_assertions_and_wrong_types_are_refused() {
    let h = start(0).await;
    refused(50027, refresh_with(&h, "common", "not.a.jwt").await);
    let assertion = Assertion::valid(&h, "common").await.sign();
    let (code, pkce) = h.code(SCOPES).await;
    let answer = h
        .token(&[
            ("client_id", &h.demo.client_id),
            ("client_assertion_type", "urn:something-else"),
            ("client_assertion", &assertion),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ])
        .await;
    refused(700026, answer);
}

#[tokio::test]
async fn registering_something_else_than_an_rsa_certificate_is_refused() {
    let h = start(0).await;
    let register = |pem: &str| {
        let request = AddCertificate {
            certificate: pem.to_owned(),
        };
        let control = h.control.clone();
        let client_id = h.demo.client_id.clone();
        async move { control.add_certificate(&client_id, &request).await }
    };
    let error = register(APP_KEY).await.unwrap_err().to_string();
    assert!(
        error.contains("400") && error.contains("not a PEM certificate"),
        "{error}"
    );
    register(APP_CRT).await.unwrap();
    let error = register(APP_CRT).await.unwrap_err().to_string();
    assert!(error.contains("409"), "{error}");
}
