//! `client_certificate`, `client_private_key` and `client_assertion_algorithm`: an integration's
//! certificate credential, read and checked at load so that a wrong file, a key that is not the
//! certificate's or an expired certificate stops `check-config`, not the first token request.
//!
//! Each value is a PEM file's path (relative to the config file's directory) or the PEM text
//! itself, usually from a variable. The private key's text is held as a secret and never put in
//! a message; its path is.

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use plugboard_core::oauth::{AssertionAlgorithm, CertificateInfo, ClientCertificate, PrivateKey};
use secrecy::{ExposeSecret, SecretString};

use super::read::{Ctx, Field, Table};
use super::secret_expiring;

/// What reading a certificate says about its end date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EndDate {
    /// The short form's only credential: an expired certificate is an error, one ending within
    /// 30 days a warning.
    Checked,
    /// A `[[credentials]]` entry, whose expiry (`expires_at`, else the certificate's end) is
    /// checked with the entry's by `credentials.rs`: an expired one is the old credential of
    /// a rollover, awaiting removal while the other works.
    ByEntry,
}

/// The credential's keys as found in an integration's table, before they are read.
pub(super) struct CertificateKeys {
    pub certificate: Option<Field>,
    pub private_key: Option<Field>,
    pub algorithm: Option<Field>,
}

impl CertificateKeys {
    pub fn take(t: &mut Table) -> Self {
        CertificateKeys {
            certificate: t.take("client_certificate"),
            private_key: t.take("client_private_key"),
            algorithm: t.take("client_assertion_algorithm"),
        }
    }

    /// The fields that are set, to name them in a message.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        [&self.certificate, &self.private_key, &self.algorithm]
            .into_iter()
            .flatten()
    }

    /// Reads and checks the credential: `Some(None)` when none is configured, `None` when a
    /// problem was reported. `dir` is the config file's directory.
    pub fn read(
        self,
        ctx: &mut Ctx<'_>,
        table_key: &str,
        dir: &Path,
        today: NaiveDate,
        end_date: EndDate,
    ) -> Option<Option<Arc<ClientCertificate>>> {
        let algorithm = match &self.algorithm {
            None => Some(AssertionAlgorithm::default()),
            Some(f) => ctx
                .string(f, "\"PS256\" or \"RS256\"")
                .and_then(|text| text.parse().map_err(|e: String| ctx.error(f, e)).ok()),
        };
        let (certificate, private_key) = match (self.certificate, self.private_key) {
            (None, None) => {
                if let Some(f) = &self.algorithm {
                    ctx.error(f, "only used with client_certificate and client_private_key; set them or remove it");
                    return None;
                }
                return Some(None);
            }
            (Some(f), None) => {
                ctx.error(&f, format!("client_private_key is not set: a certificate needs its private key ({table_key}.client_private_key)"));
                return None;
            }
            (None, Some(f)) => {
                ctx.error(&f, format!("client_certificate is not set: a private key needs the certificate registered for it ({table_key}.client_certificate)"));
                return None;
            }
            (Some(c), Some(k)) => (c, k),
        };
        let info = read_certificate(ctx, &certificate, dir, today, end_date);
        let key = read_private_key(ctx, &private_key, dir);
        let (info, key, algorithm) = (info?, key?, algorithm?);
        match ClientCertificate::new(info, key, algorithm) {
            Ok(credential) => Some(Some(Arc::new(credential))),
            Err(e) => {
                ctx.error(&private_key, e.to_string());
                None
            }
        }
    }
}

fn read_certificate(
    ctx: &mut Ctx<'_>,
    f: &Field,
    dir: &Path,
    today: NaiveDate,
    end_date: EndDate,
) -> Option<CertificateInfo> {
    let text = ctx.string(f, "a PEM file's path or PEM text")?;
    let (pem, from) = pem_or_file(ctx, f, SecretString::from(text), dir)?;
    let info = CertificateInfo::from_pem(pem.expose_secret().as_bytes())
        .map_err(|e| ctx.error(f, format!("{from}: {e}")))
        .ok()?;
    let ends = info.not_after.date_naive();
    if end_date == EndDate::ByEntry {
        return Some(info);
    }
    match secret_expiring(ends, today) {
        Some(days) if days < 0 => {
            ctx.error(f, format!("{from}: the certificate expired on {ends}: token requests fail with it; upload a new certificate to the app and configure it"));
            return None;
        }
        Some(days) => ctx.warn(f, format!("the certificate expires on {ends}, in {days} days: upload a new one to the app and update client_certificate and client_private_key")),
        None => {}
    }
    Some(info)
}

fn read_private_key(ctx: &mut Ctx<'_>, f: &Field, dir: &Path) -> Option<PrivateKey> {
    let text = ctx.secret(f, "a PEM file's path or PEM text")?;
    let (pem, from) = pem_or_file(ctx, f, text, dir)?;
    PrivateKey::from_pem(pem.expose_secret().as_bytes())
        .map_err(|e| ctx.error(f, format!("{from}: {e}")))
        .ok()
}

/// The PEM text of a value that is the text itself or a file's path, and how to name where it
/// came from in a message: the path, or "the value" (whose text is never repeated).
fn pem_or_file(
    ctx: &mut Ctx<'_>,
    f: &Field,
    value: SecretString,
    dir: &Path,
) -> Option<(SecretString, String)> {
    let text = value.expose_secret().trim();
    if text.starts_with("-----BEGIN") {
        return Some((value, "the value".to_owned()));
    }
    if text.is_empty() {
        ctx.error(
            f,
            "must not be empty: set a PEM file's path or the PEM text",
        );
        return None;
    }
    let path = dir.join(text);
    match std::fs::read_to_string(&path) {
        Ok(pem) => Some((SecretString::from(pem), format!("`{}`", path.display()))),
        Err(e) => {
            ctx.error(f, format!("cannot read `{}`: {e}", path.display()));
            None
        }
    }
}
