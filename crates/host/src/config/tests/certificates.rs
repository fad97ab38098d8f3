//! Certificate credentials (`client_certificate`, `client_private_key`): read from a file or
//! the PEM text, checked against each other, their end date warned about, the key never shown.

use super::*;

/// Where the certificate fixtures are; configs in these tests live there, so their relative
/// paths name the fixtures.
pub(super) fn certificates_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/certificates")
}

pub(super) fn load_certificates(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let dir = certificates_dir();
    load_in("plugboard.toml", &dir, text, &registry(), &options(env))
}

/// The report with the fixtures' directory, which differs per checkout, written as `<dir>`.
pub(super) fn certificate_errors(text: &str, env: &[(&str, &str)]) -> String {
    let report = load_certificates(text, env)
        .expect_err("the config should be refused")
        .to_string();
    report.replace(&certificates_dir().display().to_string(), "<dir>")
}

pub(super) const SECRET_LINE: &str =
    "client_secret = \"${MS_CLIENT_SECRET:?set it to the app's client secret value}\"\n";

pub(super) fn with_credential(credential: &str) -> String {
    VALID.replace(SECRET_LINE, credential)
}

#[test]
fn a_certificate_credential_is_read_from_a_file_or_pem_text() {
    let key = std::fs::read_to_string(certificates_dir().join("app.key")).unwrap();
    let text = with_credential(
        "client_certificate = \"app.crt\"\nclient_private_key = \"${MS_PRIVATE_KEY}\"\n",
    );
    let loaded = load_certificates(&text, &[("MS_PRIVATE_KEY", &key)]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let ms = &loaded.config.integrations["microsoft"];
    let certificate = only_certificate(ms);
    assert_eq!(
        certificate.info().thumbprint_sha256,
        "PVsuA8XaQsXPTTGU50PP-PYH2iB7mRNJuBT-w1Oe2l0"
    );
    assert_eq!(
        certificate.algorithm(),
        plugboard_core::oauth::AssertionAlgorithm::Ps256
    );
    // The key's text is in no printed form of the configuration.
    let printed = format!("{:?}", loaded.config);
    let body = key.lines().nth(1).unwrap();
    assert!(!printed.contains(body), "the private key is printed");

    let text = with_credential(
        "client_certificate = \"app.crt\"\nclient_private_key = \"app.pkcs1.key\"\nclient_assertion_algorithm = \"RS256\"\n",
    ) + "client_assertion_audience = \"https://login.example.com/{tenant}/token\"\n";
    let loaded = load_certificates(&text, &[]).unwrap();
    let ms = &loaded.config.integrations["microsoft"];
    assert_eq!(
        only_certificate(ms).algorithm(),
        plugboard_core::oauth::AssertionAlgorithm::Rs256
    );
    assert_eq!(
        ms.overrides.client_assertion_audience.as_deref(),
        Some("https://login.example.com/{tenant}/token")
    );
}

#[test]
fn a_certificate_ending_within_30_days_is_warned_about() {
    let text = with_credential(
        "client_certificate = \"expiring.crt\"\nclient_private_key = \"app.key\"\n",
    );
    let loaded = load_certificates(&text, &[]).unwrap();
    insta::assert_snapshot!(loaded.warnings.join("\n"));
}

/// Every way a certificate credential can be wrong, each named on its key, in one report.
#[test]
fn certificate_credential_problems_are_each_named_at_once() {
    let integration = |name: &str, credential: &str| {
        format!(
            "\n[integrations.{name}]\nprovider = \"microsoft-people\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\n{credential}"
        )
    };
    let mut text = VALID.to_owned();
    for (name, credential) in [
        (
            "both",
            "client_secret = \"s\"\nclient_certificate = \"app.crt\"\nclient_private_key = \"app.key\"\n",
        ),
        ("no_key", "client_certificate = \"app.crt\"\n"),
        ("no_certificate", "client_private_key = \"app.key\"\n"),
        (
            "unreadable",
            "client_certificate = \"missing.crt\"\nclient_private_key = \"missing.key\"\n",
        ),
        (
            "swapped",
            "client_certificate = \"app.key\"\nclient_private_key = \"app.crt\"\n",
        ),
        (
            "not_rsa",
            "client_certificate = \"app.crt\"\nclient_private_key = \"ec.key\"\n",
        ),
        (
            "mismatch",
            "client_certificate = \"app.crt\"\nclient_private_key = \"other.key\"\n",
        ),
        (
            "expired",
            "client_certificate = \"expired.crt\"\nclient_private_key = \"app.key\"\n",
        ),
        (
            "algorithm",
            "client_certificate = \"app.crt\"\nclient_private_key = \"app.key\"\nclient_assertion_algorithm = \"ES256\"\n",
        ),
        (
            "algorithm_alone",
            "client_secret = \"s\"\nclient_assertion_algorithm = \"RS256\"\n",
        ),
    ] {
        text.push_str(&integration(name, credential));
    }
    insta::assert_snapshot!(certificate_errors(&text, &[]));
}

/// A provider whose spec declares `private_key_jwt` needs a certificate; a secret will not do.
#[test]
fn a_private_key_jwt_provider_needs_a_certificate() {
    let text = format!(
        "{VALID}\n[[providers]]\nspec_dir = \"specs\"\n\n\
         [integrations.acme]\nprovider = \"acme-jwt\"\nclient_id = \"acme-client\"\n\n\
         [integrations.acme_secret]\nprovider = \"acme-jwt\"\nclient_id = \"acme-client\"\nclient_secret = \"s\"\n\n\
         [integrations.acme_ok]\nprovider = \"acme-jwt\"\nclient_id = \"acme-client\"\n\
         client_certificate = \"app.crt\"\nclient_private_key = \"app.key\"\n"
    );
    insta::assert_snapshot!(certificate_errors(&text, &[]));
}

/// The private key's text, given as the value, is never repeated, even when it is wrong.
#[test]
fn a_private_keys_text_never_appears_in_messages() {
    let key = std::fs::read_to_string(certificates_dir().join("other.key")).unwrap();
    let text = with_credential(
        "client_certificate = \"app.crt\"\nclient_private_key = \"${MS_PRIVATE_KEY}\"\n",
    );
    let report = certificate_errors(&text, &[("MS_PRIVATE_KEY", &key)]);
    assert!(report.contains("client_private_key"), "{report}");
    for line in key.lines().skip(1).take(3) {
        assert!(!report.contains(line), "{report}");
    }
}
