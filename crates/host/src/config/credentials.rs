//! An OAuth integration's client credentials: the short form (`client_secret` with
//! `client_secret_expires_at`, or `client_certificate` and `client_private_key`) or a list of
//! `[[integrations.<name>.credentials]]` entries, each a secret or a certificate with its
//! expiry.
//!
//! The list exists for rollovers: a new secret or certificate is added to the app and to the
//! list before the old one expires, so the integration never goes without a credential that
//! works (`plugboard_core::oauth::Credentials` picks among them and falls back). Each entry's
//! problems and expiry warnings name it by index, so `check-config` says which one to fix.

use std::path::Path;

use chrono::NaiveDate;
use plugboard_core::oauth::{ClientCredential, NamedCredential};
use secrecy::{ExposeSecret, SecretString};

use super::certificates::{CertificateKeys, EndDate};
use super::read::{Ctx, Field, Table};
use super::secret_expiring;

/// The most credentials an integration holds at once: the one in use and its successor during
/// a rollover, with room for a second rollover begun before the first ends.
pub const MAX_CREDENTIALS: usize = 4;

/// The short form's keys, each of which conflicts with a list.
const SHORT_FORM: &str = "client_secret, client_secret_expires_at, client_certificate, \
                          client_private_key, client_assertion_algorithm";

/// What the integration's provider demands of its credentials.
pub(super) struct Demand<'a> {
    /// An OAuth provider: a credential is required.
    pub client: bool,
    /// `client_authentication = "private_key_jwt"`: only certificates will do.
    pub certificate: bool,
    /// The provider's id, for messages.
    pub provider: &'a str,
}

/// Reads the integration's credentials in either form, reporting every problem; `None` when one
/// was reported. No credential at all is `Some(vec![])` when the provider demands none.
pub(super) fn read_credentials(
    ctx: &mut Ctx<'_>,
    t: &mut Table,
    demand: &Demand<'_>,
    today: NaiveDate,
) -> Option<Vec<NamedCredential>> {
    let table_key = t.key().to_owned();
    let dir = ctx.dir.clone();
    let certificate = CertificateKeys::take(t);
    let secret = t.take("client_secret");
    let expires = t.take("client_secret_expires_at");
    let Some(list) = t.take("credentials") else {
        let short = ShortForm {
            certificate,
            secret,
            expires,
        };
        return short.read(ctx, &table_key, demand, &dir, today);
    };
    let mut both = false;
    for f in certificate.fields().chain(&secret).chain(&expires) {
        ctx.error(
            f,
            format!(
                "{table_key}.credentials is set too: use either the list or the single-credential \
                 keys ({SHORT_FORM}), not both; move this into a [[{table_key}.credentials]] entry"
            ),
        );
        both = true;
    }
    let entries = read_list(ctx, list, &table_key, demand, &dir, today);
    if both {
        return None;
    }
    entries
}

/// The single-credential keys of an integration's table.
struct ShortForm {
    certificate: CertificateKeys,
    secret: Option<Field>,
    expires: Option<Field>,
}

impl ShortForm {
    fn read(
        self,
        ctx: &mut Ctx<'_>,
        table_key: &str,
        demand: &Demand<'_>,
        dir: &Path,
        today: NaiveDate,
    ) -> Option<Vec<NamedCredential>> {
        check_choice(
            ctx,
            table_key,
            &self.certificate,
            self.secret.as_ref(),
            demand,
        );
        let certificate_key = format!("{table_key}.client_certificate");
        let certificate = self
            .certificate
            .read(ctx, table_key, dir, today, EndDate::Checked);
        let secret = match &self.secret {
            None => Some(None),
            Some(f) => read_secret(ctx, f).map(Some),
        };
        let expires = match &self.expires {
            None => Some(None),
            Some(f) => read_date(ctx, f).map(|date| {
                match secret_expiring(date, today) {
                    Some(days) if days < 0 => ctx.warn(f, format!("the client secret expired on {date}: token requests fail until it is replaced")),
                    Some(days) => ctx.warn(f, format!("the client secret expires on {date}, in {days} days: create a new one and update the config")),
                    None => {}
                }
                Some(date)
            }),
        };
        let (certificate, secret, expires) = (certificate?, secret?, expires?);
        let mut credentials = Vec::new();
        if let Some(certificate) = certificate {
            credentials.push(NamedCredential {
                expires: Some(certificate.info().not_after.date_naive()),
                credential: ClientCredential::Certificate(certificate),
                name: certificate_key,
            });
        } else if let Some(secret) = secret {
            credentials.push(NamedCredential {
                credential: ClientCredential::Secret(secret),
                name: format!("{table_key}.client_secret"),
                expires,
            });
        }
        Some(credentials)
    }
}

/// The short form holds a client secret or a certificate: exactly one, and the certificate
/// when the provider's spec declares `private_key_jwt`. Reports every breach of that on the
/// key concerned.
fn check_choice(
    ctx: &mut Ctx<'_>,
    table_key: &str,
    certificate: &CertificateKeys,
    secret: Option<&Field>,
    demand: &Demand<'_>,
) {
    let provider = demand.provider;
    let has_certificate = certificate.certificate.is_some() || certificate.private_key.is_some();
    match (secret, has_certificate) {
        (Some(f), true) => ctx.error(
            f,
            "set either client_secret or client_certificate and client_private_key, not both",
        ),
        (Some(f), false) if demand.certificate => ctx.error(
            f,
            format!(
                "provider `{provider}` authenticates clients with private_key_jwt: set \
                 client_certificate and client_private_key instead of client_secret"
            ),
        ),
        (None, false) if demand.certificate => ctx.missing(
            &format!("{table_key}.client_certificate"),
            &format!(
                "a certificate (with client_private_key): provider `{provider}` authenticates clients with private_key_jwt"
            ),
        ),
        (None, false) if demand.client => {
            ctx.missing(&format!("{table_key}.client_secret"), "the OAuth client secret")
        }
        _ => {}
    }
}

/// `[[<table>.credentials]]`: one to [`MAX_CREDENTIALS`] entries, each read in full.
fn read_list(
    ctx: &mut Ctx<'_>,
    list: Field,
    table_key: &str,
    demand: &Demand<'_>,
    dir: &Path,
    today: NaiveDate,
) -> Option<Vec<NamedCredential>> {
    let key = list.key.clone();
    let entries = ctx.secret_array(list)?;
    let mut ok = true;
    if entries.is_empty() {
        ctx.error_at(
            &key,
            format!(
                "is empty: add a [[{key}]] entry with client_secret (or client_certificate and \
                 client_private_key) and expires_at, or use client_secret instead of a list"
            ),
        );
        ok = false;
    }
    if entries.len() > MAX_CREDENTIALS {
        ctx.error_at(
            &key,
            format!(
                "has {} entries: an integration holds at most {MAX_CREDENTIALS} credentials at \
                 once (the one in use and its successor); remove the expired ones",
                entries.len()
            ),
        );
        ok = false;
    }
    let mut credentials = Vec::new();
    for entry in entries {
        match read_entry(ctx, entry, table_key, demand, dir, today) {
            Some(credential) => credentials.push(credential),
            None => ok = false,
        }
    }
    ok.then_some(credentials)
}

/// One entry: a secret or a certificate, and its expiry.
fn read_entry(
    ctx: &mut Ctx<'_>,
    entry: Field,
    table_key: &str,
    demand: &Demand<'_>,
    dir: &Path,
    today: NaiveDate,
) -> Option<NamedCredential> {
    let mut t = ctx.table(entry)?;
    let key = t.key().to_owned();
    let certificate = CertificateKeys::take(&mut t);
    let secret = t.take("client_secret");
    let expires_field = t.take("expires_at");
    let has_certificate = certificate.certificate.is_some() || certificate.private_key.is_some();
    let mut chosen = true;
    match (&secret, has_certificate) {
        (Some(f), true) => {
            ctx.error(
                f,
                "set either client_secret or client_certificate and client_private_key in an \
                 entry, not both: each credential is an entry of its own",
            );
            chosen = false;
        }
        (Some(f), false) if demand.certificate => {
            ctx.error(
                f,
                format!(
                    "provider `{}` authenticates clients with private_key_jwt: each entry needs \
                     client_certificate and client_private_key",
                    demand.provider
                ),
            );
            chosen = false;
        }
        (None, false) => {
            let needs = if demand.certificate {
                "client_certificate and client_private_key"
            } else {
                "client_secret, or client_certificate and client_private_key"
            };
            ctx.error_at(&key, format!("holds no credential: set {needs}"));
            chosen = false;
        }
        _ => {}
    }
    let certificate_key = format!("{key}.client_certificate");
    let certificate = certificate.read(ctx, &key, dir, today, EndDate::ByEntry);
    let secret = match &secret {
        None => Some(None),
        Some(f) => read_secret(ctx, f).map(Some),
    };
    let expires_at = match &expires_field {
        None => Some(None),
        Some(f) => read_date(ctx, f).map(Some),
    };
    t.finish(ctx);
    let (certificate, secret, expires_at) = (certificate?, secret?, expires_at?);
    if !chosen {
        return None;
    }
    let (credential, expires, what) = match (certificate, secret) {
        (Some(certificate), _) => {
            let ends = certificate.info().not_after.date_naive();
            if let (Some(f), Some(date)) = (&expires_field, expires_at)
                && date > ends
            {
                ctx.error(f, format!("{date} is after the certificate's own end date, {ends}: remove expires_at, or set the date Entra shows for the certificate"));
                return None;
            }
            let expires = expires_at.unwrap_or(ends);
            (
                ClientCredential::Certificate(certificate),
                Some(expires),
                "certificate",
            )
        }
        (None, Some(secret)) => {
            if expires_at.is_none() {
                ctx.warn_at(&key, "has no expires_at: Plugboard cannot tell when this secret expires, nor warn before it does; copy its expiry from Entra ID (Certificates & secrets) as expires_at = \"YYYY-MM-DD\"");
            }
            (
                ClientCredential::Secret(secret),
                expires_at,
                "client secret",
            )
        }
        (None, None) => return None,
    };
    if let Some(date) = expires {
        let warned = match &expires_field {
            Some(f) => f.key.clone(),
            None => certificate_key,
        };
        match secret_expiring(date, today) {
            Some(days) if days < 0 => ctx.warn_at(&warned, format!("the {what} expired on {date}: the provider refuses it and the integration's other credentials are used; remove this entry")),
            Some(days) => ctx.warn_at(&warned, format!("the {what} expires on {date}, in {days} days: add its successor to the app and as another [[{table_key}.credentials]] entry before then")),
            None => {}
        }
    }
    Some(NamedCredential {
        credential,
        name: key,
        expires,
    })
}

/// A client secret: any non-empty string, never repeated in a message.
fn read_secret(ctx: &mut Ctx<'_>, f: &Field) -> Option<SecretString> {
    let secret = ctx.secret(f, "a string")?;
    if secret.expose_secret().is_empty() {
        ctx.error(f, "must not be empty");
        return None;
    }
    Some(secret)
}

/// A `YYYY-MM-DD` date.
fn read_date(ctx: &mut Ctx<'_>, f: &Field) -> Option<NaiveDate> {
    let text = ctx.string(f, "a date")?;
    match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        Ok(date) => Some(date),
        Err(_) => {
            ctx.error(f, format!("`{text}` is not a date such as \"2028-05-01\""));
            None
        }
    }
}
