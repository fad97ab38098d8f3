//! The spec format: what parses, and how problems are reported.

use std::collections::BTreeMap;

use plugboard_core::ProviderSpec;

const VALID: &str = r#"
id = "acme-crm"
display_name = "Acme CRM"
docs_url = "https://docs.acme.example/api"

[connection_config.region]
description = "Data centre region"
default = "eu"

[auth]
mode = "oauth2"
authorization_url = "https://{region}.acme.example/oauth/authorize"
token_url = "https://{region}.acme.example/oauth/token"
client_authentication = "basic"

[[auth.scopes]]
name = "contacts.read"
description = "Read contacts"
default = true

[api]
base_url = "https://{region}.api.acme.example"

[api.pagination.cursor]
type = "cursor"
cursor = "/meta/next"
cursor_param = "after"
records = "/data"

[models.Contact]
description = "A contact"

[[syncs]]
name = "contacts"
model = "Contact"
frequency = "15m"
scopes = ["contacts.read"]
"#;

#[test]
fn a_valid_spec_parses_with_defaults_applied() {
    let spec = ProviderSpec::parse("acme.toml", VALID).expect("valid spec");
    let oauth = spec.auth.as_oauth2().expect("oauth2");
    assert!(oauth.pkce, "PKCE is on unless a spec turns it off");
    assert_eq!(oauth.scope_separator, " ");
    assert_eq!(oauth.default_scopes(), vec!["contacts.read"]);
    assert_eq!(spec.api.retry.statuses, vec![429, 502, 503, 504]);
    assert_eq!(spec.sync("contacts").unwrap().frequency.to_string(), "15m");
}

#[test]
fn every_problem_is_reported_at_once_naming_its_key() {
    let broken = VALID
        .replace("id = \"acme-crm\"", "id = \"Acme CRM\"\ncolour = \"blue\"")
        .replace(
            "https://{region}.acme.example/oauth/token",
            "http://{regoin}.acme.example/token",
        )
        .replace(
            "base_url = \"https://{region}.api.acme.example\"",
            "base_url = \"https://api.acme.example/\"\ntimeout = 3",
        )
        .replace("model = \"Contact\"", "model = \"Deal\"")
        .replace("frequency = \"15m\"", "frequency = \"5s\"")
        .replace("scopes = [\"contacts.read\"]", "scopes = [\"deals.read\"]")
        .replace("records = \"/data\"", "records = \"data\"");
    let err = ProviderSpec::parse("providers/acme/provider.toml", &broken).unwrap_err();
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn a_type_error_names_the_file_and_the_key() {
    let broken = VALID.replace("frequency = \"15m\"", "frequency = \"often\"");
    let err = ProviderSpec::parse("providers/acme/provider.toml", &broken).unwrap_err();
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn connection_config_gets_defaults_and_refuses_unsafe_values() {
    let spec = ProviderSpec::parse("acme.toml", VALID).unwrap();
    let resolved = spec.resolve_connection_config(&BTreeMap::new()).unwrap();
    assert_eq!(resolved.get("region").map(String::as_str), Some("eu"));

    let given = BTreeMap::from([
        ("region".to_owned(), "eu/../../evil".to_owned()),
        ("colour".to_owned(), "blue".to_owned()),
    ]);
    let problems = spec.resolve_connection_config(&given).unwrap_err();
    insta::assert_debug_snapshot!(problems);
}
