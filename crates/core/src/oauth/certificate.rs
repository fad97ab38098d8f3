//! Certificate credentials (`private_key_jwt`): an RSA key and the certificate registered for it
//! at the provider, and the signed client assertion sent instead of a client secret.
//!
//! Microsoft recommends certificates over client secrets for production apps: the private key
//! never leaves this server, and each token request carries a short-lived JWT signed with it.
//! The signing is `ring`'s and the PEM reading `rustls-pki-types`' (both already built for TLS);
//! `x509-cert` reads the certificate's public key (to check the key belongs to it) and its end
//! date (to warn before it expires).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::SecretString;
use serde_json::json;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::oid::ObjectIdentifier;

/// `client_assertion_type` for a JWT client assertion (RFC 7523).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: Microsoft advises 5 to 10 minutes at most.
pub const ASSERTION_LIFETIME: TimeDelta = TimeDelta::minutes(5);

/// The `rsaEncryption` algorithm of a certificate's public key.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// How the assertion is signed, and so which thumbprint its header names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AssertionAlgorithm {
    /// RSA-PSS with SHA-256 and the SHA-256 thumbprint (`x5t#S256`): Microsoft's current advice.
    #[default]
    Ps256,
    /// RSA PKCS#1 v1.5 with SHA-256 and the SHA-1 thumbprint (`x5t`), for tenants and
    /// providers that still need it.
    Rs256,
}

impl AssertionAlgorithm {
    /// The JWS name, as written in `client_assertion_algorithm` and the JWT header.
    pub fn name(self) -> &'static str {
        match self {
            AssertionAlgorithm::Ps256 => "PS256",
            AssertionAlgorithm::Rs256 => "RS256",
        }
    }
}

impl FromStr for AssertionAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "PS256" => Ok(AssertionAlgorithm::Ps256),
            "RS256" => Ok(AssertionAlgorithm::Rs256),
            other => Err(format!("`{other}` is not \"PS256\" or \"RS256\"")),
        }
    }
}

/// Why a certificate, a key, or the pair cannot be used. Never includes key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error(
        "not a PEM certificate (expected a `-----BEGIN CERTIFICATE-----` block{})",
        detail(.0)
    )]
    NotACertificate(String),
    #[error(
        "not an RSA private key in PEM (expected a `-----BEGIN PRIVATE KEY-----` (PKCS#8) or \
         `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1) block{})",
        detail(.0)
    )]
    NotAnRsaKey(String),
    #[error("the certificate's public key is not an RSA key: certificate credentials need RSA")]
    NotAnRsaCertificate,
    #[error(
        "the private key does not belong to the certificate (their public keys differ): use the \
         key the certificate was issued for"
    )]
    KeyMismatch,
}

fn detail(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!("; {why}")
    }
}

/// A certificate as a provider identifies it: its DER, thumbprints, public key and end date.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// base64url SHA-256 of the DER: the header's `x5t#S256`.
    pub thumbprint_sha256: String,
    /// base64url SHA-1 of the DER: the header's `x5t`.
    pub thumbprint_sha1: String,
    /// The end of the certificate's validity.
    pub not_after: DateTime<Utc>,
    /// The PKCS#1 `RSAPublicKey` DER, as `ring` gives a key pair's public key.
    public_key: Vec<u8>,
}

impl fmt::Debug for CertificateInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateInfo")
            .field("thumbprint_sha256", &self.thumbprint_sha256)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateInfo {
    /// Reads the first certificate of a PEM text (a chain's leaf comes first).
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertificateError> {
        let der = CertificateDer::from_pem_slice(pem)
            .map_err(|e| CertificateError::NotACertificate(pem_problem(&e)))?;
        Self::from_der(der.as_ref())
    }

    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let certificate = Certificate::from_der(der)
            .map_err(|e| CertificateError::NotACertificate(format!("invalid DER: {e}")))?;
        let tbs = &certificate.tbs_certificate;
        let spki = &tbs.subject_public_key_info;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(CertificateError::NotAnRsaCertificate);
        }
        let public_key = spki
            .subject_public_key
            .as_bytes()
            .ok_or(CertificateError::NotAnRsaCertificate)?
            .to_vec();
        let since_epoch = tbs.validity.not_after.to_unix_duration();
        let not_after = DateTime::from_timestamp(since_epoch.as_secs() as i64, 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Ok(CertificateInfo {
            thumbprint_sha256: URL_SAFE_NO_PAD.encode(digest(&SHA256, der)),
            thumbprint_sha1: URL_SAFE_NO_PAD.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, der)),
            not_after,
            public_key,
        })
    }

    /// The `RSAPublicKey` DER, to verify signatures made with the certificate's key.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }
}

fn pem_problem(error: &rustls_pki_types::pem::Error) -> String {
    match error {
        rustls_pki_types::pem::Error::NoItemsFound => "no such block found".to_owned(),
        other => format!("{other:?}"),
    }
}

/// An RSA private key. Its `Debug` shows nothing of it, and nothing here ever prints it.
pub struct PrivateKey(RsaKeyPair);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

impl PrivateKey {
    /// Reads a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) RSA key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertificateError> {
        let key = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| CertificateError::NotAnRsaKey(pem_problem(&e)))?;
        let pair = match &key {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => {
                return Err(CertificateError::NotAnRsaKey(
                    "found an EC (SEC1) key".to_owned(),
                ));
            }
        };
        // `KeyRejected` names only the reason (e.g. `WrongAlgorithm`), never key material.
        pair.map(PrivateKey)
            .map_err(|e| CertificateError::NotAnRsaKey(format!("rejected: {e}")))
    }
}

/// A certificate credential: the certificate registered at the provider and its private key.
pub struct ClientCertificate {
    info: CertificateInfo,
    key: PrivateKey,
    algorithm: AssertionAlgorithm,
    rng: SystemRandom,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("certificate", &self.info)
            .field("algorithm", &self.algorithm)
            .field("key", &self.key)
            .finish()
    }
}

impl ClientCertificate {
    /// Pairs a certificate with its key, refusing a key that is not the certificate's.
    pub fn new(
        info: CertificateInfo,
        key: PrivateKey,
        algorithm: AssertionAlgorithm,
    ) -> Result<Self, CertificateError> {
        if key.0.public_key().as_ref() != info.public_key.as_slice() {
            return Err(CertificateError::KeyMismatch);
        }
        Ok(ClientCertificate {
            info,
            key,
            algorithm,
            rng: SystemRandom::new(),
        })
    }

    pub fn info(&self) -> &CertificateInfo {
        &self.info
    }

    pub fn algorithm(&self) -> AssertionAlgorithm {
        self.algorithm
    }

    /// A fresh client assertion for one token request to `audience` (the token endpoint's URL):
    /// `iss` = `sub` = the client id, a random GUID `jti`, valid from `now` for
    /// [`ASSERTION_LIFETIME`].
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<SecretString, String> {
        let mut header = json!({ "alg": self.algorithm.name(), "typ": "JWT" });
        match self.algorithm {
            AssertionAlgorithm::Ps256 => {
                header["x5t#S256"] = self.info.thumbprint_sha256.clone().into()
            }
            AssertionAlgorithm::Rs256 => header["x5t"] = self.info.thumbprint_sha1.clone().into(),
        }
        let nbf = now.timestamp();
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": nbf,
            "iat": nbf,
            "exp": (now + ASSERTION_LIFETIME).timestamp(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let padding: &'static dyn ring::signature::RsaEncoding = match self.algorithm {
            AssertionAlgorithm::Ps256 => &RSA_PSS_SHA256,
            AssertionAlgorithm::Rs256 => &RSA_PKCS1_SHA256,
        };
        let mut signature = vec![0; self.key.0.public().modulus_len()];
        self.key
            .0
            .sign(padding, &self.rng, signing_input.as_bytes(), &mut signature)
            .map_err(|_| "the client assertion could not be signed".to_owned())?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

#[cfg(test)]
mod tests;
