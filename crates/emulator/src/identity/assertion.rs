//! Client assertions (`private_key_jwt`) at the token endpoint, checked as Entra checks them:
//! the certificate named by `x5t#S256` or `x5t` must be registered on the app and not expired,
//! the signature (PS256 or RS256) must verify with its key, `iss` and `sub` must be the client,
//! `aud` the token endpoint of the tenant in the URL, `nbf`..`exp` must hold the emulator's
//! clock, and a `jti` is accepted once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
use serde::Deserialize;

use super::error::Aadsts;
use crate::directory::App;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Entra documents no code for a replayed `jti`; this is the emulator's choice, next to
/// AADSTS700027, and Plugboard's engine knows it.
pub const REPLAYED_ASSERTION: u32 = 7000274;

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
    x5t: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    aud: Option<String>,
    iss: Option<String>,
    sub: Option<String>,
    jti: Option<String>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

/// Checks `assertion` for `app`; `audiences` are the token endpoint URLs of this request
/// (the tenant as written in the URL). Records the `jti` when the assertion is accepted, and
/// answers the SHA-256 thumbprint of the certificate that signed it.
pub fn verify(
    app: &mut App,
    assertion_type: Option<&str>,
    assertion: &str,
    audiences: &[String],
    now: DateTime<Utc>,
) -> Result<String, Aadsts> {
    if assertion_type != Some(JWT_BEARER) {
        return Err(Aadsts {
            code: 700026,
            message: format!(
                "The client assertion type must be '{JWT_BEARER}'. Review the documentation at \
                 https://aka.ms/certCreds ."
            ),
        });
    }
    let (header, claims, signing_input, signature) = split(assertion).ok_or_else(malformed)?;
    let thumbprint = header.x5t_s256.as_deref().or(header.x5t.as_deref());
    let certificate = app.certificates.iter().find(|c| match &header {
        Header {
            x5t_s256: Some(t), ..
        } => *t == c.thumbprint_sha256,
        Header { x5t: Some(t), .. } => *t == c.thumbprint_sha1,
        _ => false,
    });
    let Some(certificate) = certificate else {
        return Err(invalid_signature(&format!(
            "The key was not found., Thumbprint of key used by client: '{}', Please visit the \
                 Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for \
                 app Id '{}'.",
            thumbprint.unwrap_or_default(),
            app.client_id
        )));
    };
    if now > certificate.not_after {
        return Err(invalid_signature("The key used is expired."));
    }
    let registered = certificate.thumbprint_sha256.clone();
    let algorithm: &'static dyn ring::signature::VerificationAlgorithm = match header.alg.as_str() {
        "PS256" => &RSA_PSS_2048_8192_SHA256,
        "RS256" => &RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(invalid_signature("The algorithm is not supported.")),
    };
    UnparsedPublicKey::new(algorithm, &certificate.public_key)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| invalid_signature("The signature does not verify with the key."))?;

    if claims.iss.as_deref() != Some(app.client_id.as_str())
        || claims.sub.as_deref() != Some(app.client_id.as_str())
    {
        return Err(Aadsts {
            code: 700021,
            message: "Client assertion application identifier doesn't match 'client_id' \
                      parameter. Review the documentation at https://aka.ms/certCreds ."
                .to_owned(),
        });
    }
    if !claims
        .aud
        .as_deref()
        .is_some_and(|aud| audiences.iter().any(|a| a.eq_ignore_ascii_case(aud)))
    {
        return Err(Aadsts {
            code: 700023,
            message: "Client assertion audience claim does not match Realm issuer. Review the \
                      documentation at https://aka.ms/certCreds ."
                .to_owned(),
        });
    }
    let (Some(nbf), Some(exp)) = (claims.nbf, claims.exp) else {
        return Err(malformed());
    };
    let timestamp = now.timestamp();
    if timestamp < nbf || timestamp >= exp {
        let at = |t: i64| DateTime::from_timestamp(t, 0).unwrap_or_default();
        return Err(Aadsts {
            code: 700024,
            message: format!(
                "Client assertion is not within its valid time range. Current time: {}, \
                 assertion valid from {}, expiry time of assertion {}. Review the documentation \
                 at https://aka.ms/certCreds .",
                now.to_rfc3339(),
                at(nbf).to_rfc3339(),
                at(exp).to_rfc3339()
            ),
        });
    }
    let jti = claims.jti.ok_or_else(malformed)?;
    app.used_assertions.retain(|_, expires| *expires > now);
    if app.used_assertions.contains_key(&jti) {
        return Err(Aadsts {
            code: REPLAYED_ASSERTION,
            message: format!(
                "The client assertion with identifier '{jti}' was already used. Sign a new \
                 assertion for each request."
            ),
        });
    }
    // Kept until the assertion expires: after that its lifetime check refuses it anyway.
    let expires = DateTime::from_timestamp(exp, 0).unwrap_or(now);
    app.used_assertions.insert(jti, expires);
    Ok(registered)
}

fn split(assertion: &str) -> Option<(Header, Claims, &str, Vec<u8>)> {
    let (signing_input, signature) = assertion.rsplit_once('.')?;
    let (header, claims) = signing_input.split_once('.')?;
    let json = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    Some((
        serde_json::from_slice(&json(header)?).ok()?,
        serde_json::from_slice(&json(claims)?).ok()?,
        signing_input,
        URL_SAFE_NO_PAD.decode(signature).ok()?,
    ))
}

fn malformed() -> Aadsts {
    Aadsts {
        code: 50027,
        message: "JWT token is invalid or malformed.".to_owned(),
    }
}

fn invalid_signature(reason: &str) -> Aadsts {
    Aadsts {
        code: 700027,
        message: format!("Client assertion contains an invalid signature. [Reason - {reason}]"),
    }
}
