//! Certificates registered on an app: what Entra keeps of an uploaded certificate to check
//! client assertions — its thumbprints, public key and end date.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::oid::ObjectIdentifier;

use crate::control::types::CertificateInfo;

/// `rsaEncryption`: Entra's certificate credentials are RSA keys.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

pub struct RegisteredCertificate {
    pub thumbprint_sha256: String,
    pub thumbprint_sha1: String,
    /// The PKCS#1 `RSAPublicKey` DER, as `ring` verifies with it.
    pub public_key: Vec<u8>,
    pub not_after: DateTime<Utc>,
}

impl RegisteredCertificate {
    /// Reads a PEM certificate with an RSA public key; the error says what is wrong with it.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("not a PEM certificate: {e:?}"))?;
        let certificate =
            Certificate::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let tbs = certificate.tbs_certificate;
        let spki = tbs.subject_public_key_info;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err("the certificate's key is not an RSA key".to_owned());
        }
        let public_key = spki
            .subject_public_key
            .as_bytes()
            .ok_or("the certificate's public key is not a whole number of bytes")?
            .to_vec();
        let not_after = DateTime::from_timestamp(
            tbs.validity.not_after.to_unix_duration().as_secs() as i64,
            0,
        )
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // SHA-1 only names the certificate (`x5t`), as Entra still accepts it for RS256.
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        Ok(RegisteredCertificate {
            thumbprint_sha256: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
            thumbprint_sha1: URL_SAFE_NO_PAD.encode(sha1),
            public_key,
            not_after,
        })
    }

    pub fn info(&self) -> CertificateInfo {
        CertificateInfo {
            thumbprint_sha256: self.thumbprint_sha256.clone(),
            thumbprint_sha1: self.thumbprint_sha1.clone(),
            not_after: self.not_after,
        }
    }
}
