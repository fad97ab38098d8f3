//! `[[integrations.<name>.credentials]]`: two credentials at once for a rollover, each entry's
//! problems and expiry named by its index, and the list refused next to the short form.

use chrono::NaiveDate;
use plugboard_core::oauth::ClientCredential;
use secrecy::ExposeSecret;

use super::VALID;
use super::certificates::{SECRET_LINE, certificate_errors, load_certificates, with_credential};

/// `VALID` with the Microsoft integration's credentials given as `entries`, a list's text.
fn with_list(entries: &str) -> String {
    with_credential("").replace("client_secret_expires_at = \"2028-05-01\"\n", "") + entries
}

fn entry(keys: &str) -> String {
    format!("\n[[integrations.microsoft.credentials]]\n{keys}")
}

#[test]
fn a_secret_and_a_certificate_are_held_at_once_each_with_its_expiry() {
    assert!(VALID.contains(SECRET_LINE));
    let text = with_list(
        &(entry("client_secret = \"old-secret-value\"\nexpires_at = \"2026-01-20\"\n")
            + &entry("client_certificate = \"app.crt\"\nclient_private_key = \"app.key\"\n")
            + &entry("client_secret = \"${MS_CLIENT_SECRET}\"\nexpires_at = \"2027-05-01\"\n")),
    );
    let loaded = load_certificates(&text, &[]).unwrap();
    let ms = &loaded.config.integrations["microsoft"];
    let described: Vec<(String, Option<NaiveDate>, String)> = ms
        .credentials
        .iter()
        .map(|c| {
            let what = match &c.credential {
                ClientCredential::Secret(secret) => secret.expose_secret().to_owned(),
                ClientCredential::Certificate(certificate) => {
                    certificate.info().thumbprint_sha256.clone()
                }
            };
            (c.name.clone(), c.expires, what)
        })
        .collect();
    let date = |text: &str| Some(text.parse::<NaiveDate>().unwrap());
    assert_eq!(
        described,
        [
            (
                "integrations.microsoft.credentials[0]".to_owned(),
                date("2026-01-20"),
                "old-secret-value".to_owned()
            ),
            (
                "integrations.microsoft.credentials[1]".to_owned(),
                date("2036-01-01"),
                "PVsuA8XaQsXPTTGU50PP-PYH2iB7mRNJuBT-w1Oe2l0".to_owned()
            ),
            (
                "integrations.microsoft.credentials[2]".to_owned(),
                date("2027-05-01"),
                "client-secret-value".to_owned()
            ),
        ]
    );
    // The entry expiring within 30 days is named by its index; the others are not.
    insta::assert_snapshot!(loaded.warnings.join("\n"));
    let printed = format!("{:?}", loaded.config);
    assert!(!printed.contains("old-secret-value"), "{printed}");
}

#[test]
fn expired_entries_and_entries_without_a_date_are_warned_about() {
    let text = with_list(
        &(entry("client_secret = \"gone\"\nexpires_at = \"2025-12-31\"\n")
            + &entry("client_certificate = \"expiring.crt\"\nclient_private_key = \"app.key\"\n")
            + &entry(
                "client_certificate = \"app.crt\"\nclient_private_key = \"app.key\"\nexpires_at = \"2026-01-15\"\n",
            )
            + &entry("client_secret = \"undated\"\n")),
    );
    let loaded = load_certificates(&text, &[]).unwrap();
    insta::assert_snapshot!(loaded.warnings.join("\n"));
}

/// Every way the list can be wrong, each named on its key and entry, in one report.
#[test]
fn credential_list_problems_are_each_named_with_their_index() {
    let integration = |name: &str, rest: &str| {
        format!(
            "\n[integrations.{name}]\nprovider = \"microsoft-people\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\n{rest}"
        )
    };
    let entries = |name: &str, keys: &[&str]| {
        keys.iter()
            .map(|k| format!("\n[[integrations.{name}.credentials]]\n{k}"))
            .collect::<String>()
    };
    let ok_secret = "client_secret = \"s-value\"\nexpires_at = \"2027-01-01\"\n";
    let mut text = VALID.to_owned();
    // Both forms at once: each single-credential key is named.
    text.push_str(&integration(
        "both_forms",
        "client_secret = \"short-secret\"\nclient_secret_expires_at = \"2027-01-01\"\n",
    ));
    text.push_str(&entries("both_forms", &[ok_secret]));
    text.push_str(&integration("empty", "credentials = []\n"));
    text.push_str(&integration("not_a_list", "credentials = \"s-value\"\n"));
    text.push_str(&integration("too_many", ""));
    text.push_str(&entries("too_many", &[ok_secret; 5]));
    text.push_str(&integration("entries", ""));
    text.push_str(&entries(
        "entries",
        &[
            "client_secret = \"s-value\"\nclient_certificate = \"app.crt\"\nclient_private_key = \"app.key\"\n",
            "expires_at = \"2027-01-01\"\n",
            "client_secret = \"\"\nexpires_at = \"soon\"\nclient_secret_expires_at = \"2027-01-01\"\n",
            "client_certificate = \"app.crt\"\nclient_private_key = \"other.key\"\n",
        ],
    ));
    text.push_str(&integration("more_entries", ""));
    text.push_str(&entries(
        "more_entries",
        &[
            "client_certificate = \"app.crt\"\nclient_private_key = \"app.key\"\nexpires_at = \"2040-01-01\"\n",
            "client_certificate = \"app.crt\"\n",
            "client_assertion_algorithm = \"ES256\"\nclient_secret = \"s-value\"\n",
        ],
    ));
    let report = certificate_errors(&text, &[]);
    assert!(
        !report.contains("s-value") && !report.contains("short-secret"),
        "{report}"
    );
    insta::assert_snapshot!(report);
}

/// The short form's key set by a variable conflicts with a list in the file: the variable is
/// named.
#[test]
fn a_variable_setting_the_short_form_next_to_a_list_is_named() {
    let text = with_list(&entry(
        "client_secret = \"s-value\"\nexpires_at = \"2027-01-01\"\n",
    ));
    let report = certificate_errors(
        &text,
        &[(
            "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET",
            "from-env",
        )],
    );
    assert!(!report.contains("from-env"), "{report}");
    insta::assert_snapshot!(report);
}

/// A provider declaring `private_key_jwt` takes certificates only, in a list too.
#[test]
fn a_private_key_jwt_providers_list_holds_certificates_only() {
    let text = format!(
        "{VALID}\n[[providers]]\nspec_dir = \"specs\"\n\n\
         [integrations.acme]\nprovider = \"acme-jwt\"\nclient_id = \"acme-client\"\n\n\
         [[integrations.acme.credentials]]\nclient_secret = \"s-value\"\nexpires_at = \"2027-01-01\"\n\n\
         [[integrations.acme.credentials]]\nclient_certificate = \"app.crt\"\nclient_private_key = \"app.key\"\n\n\
         [[integrations.acme.credentials]]\nexpires_at = \"2027-01-01\"\n"
    );
    insta::assert_snapshot!(certificate_errors(&text, &[]));
}
