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

#[test]
fn page_size_bounds_are_checked() {
    let preset = |sizes: &str| {
        VALID.replace(
            "records = \"/data\"",
            &format!("records = \"/data\"\n{sizes}"),
        )
    };
    let bounded = preset("page_size_param = \"limit\"\npage_size = 50\nmax_page_size = 500");
    let spec = ProviderSpec::parse("acme.toml", &bounded).unwrap();
    assert_eq!(spec.max_page_size(), Some(500));
    assert_eq!(
        ProviderSpec::parse("acme.toml", VALID)
            .unwrap()
            .max_page_size(),
        None,
        "no preset declares a maximum"
    );

    let above = preset("page_size_param = \"limit\"\npage_size = 600\nmax_page_size = 500");
    let zero = preset("page_size_param = \"limit\"\nmax_page_size = 0");
    let no_param = preset("max_page_size = 500");
    let messages: Vec<String> = [above, zero, no_param]
        .iter()
        .map(|text| {
            ProviderSpec::parse("providers/acme/provider.toml", text)
                .unwrap_err()
                .to_string()
        })
        .collect();
    insta::assert_snapshot!(messages.join("\n\n"));
}

/// An API-key spec must say where the key goes, and a header format needs a header and the
/// key's placeholder.
#[test]
fn api_key_auth_says_where_the_key_goes() {
    let with_auth = |auth: &str| {
        let start = VALID.find("[auth]").unwrap();
        let end = VALID.find("[api]").unwrap();
        format!("{}{auth}\n{}", &VALID[..start], &VALID[end..])
            .replace("scopes = [\"contacts.read\"]\n", "")
    };
    let spec = ProviderSpec::parse(
        "acme.toml",
        &with_auth("[auth]\nmode = \"api_key\"\nheader = \"X-Api-Key\"\n"),
    )
    .unwrap();
    assert_eq!(
        spec.auth.as_api_key().unwrap().header.as_deref(),
        Some("X-Api-Key")
    );
    for (auth, problem) in [
        (
            "[auth]\nmode = \"api_key\"\n",
            "auth: an api_key provider needs `header` or `query_param`",
        ),
        (
            "[auth]\nmode = \"api_key\"\nquery_param = \"key\"\nheader_format = \"Key {api_key}\"\n",
            "auth.header_format: needs `header`, the header it formats",
        ),
        (
            "[auth]\nmode = \"api_key\"\nheader = \"Authorization\"\nheader_format = \"Key\"\n",
            "auth.header_format: must contain `{api_key}`",
        ),
        (
            "[auth]\nmode = \"api_key\"\nheader = \"X Api Key\"\n",
            "auth.header: `X Api Key` is not an HTTP header name",
        ),
    ] {
        let error = ProviderSpec::parse("acme.toml", &with_auth(auth)).unwrap_err();
        assert!(
            error.problems.iter().any(|p| p == problem),
            "{auth}: {:?}",
            error.problems
        );
    }
}
