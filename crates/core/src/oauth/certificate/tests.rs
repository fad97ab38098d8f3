//! Reading keys and certificates, and the assertion's header, claims and signature.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeZone;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/certificates/",
            $name
        ))
    };
}

const APP_CRT: &[u8] = fixture!("app.crt");
const APP_KEY: &[u8] = fixture!("app.key");
const APP_PKCS1_KEY: &[u8] = fixture!("app.pkcs1.key");
const OTHER_KEY: &[u8] = fixture!("other.key");
const EC_KEY: &[u8] = fixture!("ec.key");

fn credential(key: &[u8], algorithm: AssertionAlgorithm) -> ClientCertificate {
    let info = CertificateInfo::from_pem(APP_CRT).unwrap();
    ClientCertificate::new(info, PrivateKey::from_pem(key).unwrap(), algorithm).unwrap()
}

fn part(jwt: &str, index: usize) -> Value {
    let encoded = jwt.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

#[test]
fn reads_the_thumbprints_and_end_date_of_a_certificate() {
    let info = CertificateInfo::from_pem(APP_CRT).unwrap();
    // As `openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url` gives them.
    assert_eq!(
        info.thumbprint_sha256,
        "PVsuA8XaQsXPTTGU50PP-PYH2iB7mRNJuBT-w1Oe2l0"
    );
    assert_eq!(info.thumbprint_sha1, "rkvIQuw7VurKKGdQxsnwbht6woA");
    assert_eq!(
        info.not_after,
        Utc.with_ymd_and_hms(2036, 1, 1, 0, 0, 0).unwrap()
    );
}

#[test]
fn reads_pkcs8_and_pkcs1_keys_and_refuses_others() {
    PrivateKey::from_pem(APP_KEY).unwrap();
    PrivateKey::from_pem(APP_PKCS1_KEY).unwrap();
    assert!(matches!(
        PrivateKey::from_pem(EC_KEY),
        Err(CertificateError::NotAnRsaKey(_))
    ));
    assert!(matches!(
        PrivateKey::from_pem(APP_CRT),
        Err(CertificateError::NotAnRsaKey(_))
    ));
    assert!(matches!(
        CertificateInfo::from_pem(APP_KEY),
        Err(CertificateError::NotACertificate(_))
    ));
    assert!(matches!(
        CertificateInfo::from_pem(b"not pem at all"),
        Err(CertificateError::NotACertificate(_))
    ));
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let info = CertificateInfo::from_pem(APP_CRT).unwrap();
    let other = PrivateKey::from_pem(OTHER_KEY).unwrap();
    let refused = ClientCertificate::new(info, other, AssertionAlgorithm::Ps256).unwrap_err();
    assert_eq!(refused, CertificateError::KeyMismatch);
}

#[test]
fn nothing_of_the_key_is_printed() {
    let printed = format!("{:?}", credential(APP_KEY, AssertionAlgorithm::Ps256));
    assert!(printed.contains("[redacted]"), "{printed}");
    assert!(!printed.contains("public_key"), "{printed}");
}

#[test]
fn ps256_assertions_carry_the_sha256_thumbprint_and_verify() {
    let cert = credential(APP_KEY, AssertionAlgorithm::Ps256);
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let aud = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
    let jwt = cert.assertion("client-1", aud, now).unwrap();
    let jwt = jwt.expose_secret();
    let header = part(jwt, 0);
    assert_eq!(header["alg"], "PS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["x5t#S256"], cert.info().thumbprint_sha256);
    assert!(header.get("x5t").is_none());
    let claims = part(jwt, 1);
    assert_eq!(claims["aud"], aud);
    assert_eq!(claims["iss"], "client-1");
    assert_eq!(claims["sub"], "client-1");
    assert_eq!(claims["nbf"], now.timestamp());
    assert_eq!(claims["iat"], now.timestamp());
    assert_eq!(claims["exp"], now.timestamp() + 300);
    let jti = claims["jti"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(jti).is_ok(), "{jti}");
    verify(&RSA_PSS_2048_8192_SHA256, &cert, jwt);

    let again = cert.assertion("client-1", aud, now).unwrap();
    assert_ne!(part(again.expose_secret(), 1)["jti"], claims["jti"]);
}

#[test]
fn rs256_assertions_carry_the_sha1_thumbprint_and_verify() {
    let cert = credential(APP_PKCS1_KEY, AssertionAlgorithm::Rs256);
    let jwt = cert
        .assertion("client-1", "https://x/token", Utc::now())
        .unwrap();
    let jwt = jwt.expose_secret();
    let header = part(jwt, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5t"], "rkvIQuw7VurKKGdQxsnwbht6woA");
    assert!(header.get("x5t#S256").is_none());
    verify(&RSA_PKCS1_2048_8192_SHA256, &cert, jwt);
}

#[test]
fn algorithms_are_named_as_in_jws() {
    assert_eq!("PS256".parse(), Ok(AssertionAlgorithm::Ps256));
    assert_eq!("RS256".parse(), Ok(AssertionAlgorithm::Rs256));
    assert!("ps256".parse::<AssertionAlgorithm>().is_err());
    assert_eq!(AssertionAlgorithm::default().name(), "PS256");
}

fn verify(
    algorithm: &'static dyn ring::signature::VerificationAlgorithm,
    cert: &ClientCertificate,
    jwt: &str,
) {
    let (input, signature) = jwt.rsplit_once('.').unwrap();
    UnparsedPublicKey::new(algorithm, cert.info().public_key())
        .verify(
            input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .expect("the signature verifies with the certificate's public key");
}
