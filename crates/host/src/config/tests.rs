//! Configuration loading: what is accepted, and every error message, as snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use secrecy::ExposeSecret;

use super::*;
use crate::registry::Source;
use plugboard_core::Provider;

mod certificates;
mod credentials;

const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

const VALID: &str = r#"
[server]
bind = "127.0.0.1:3003"
public_url = "http://127.0.0.1:3003/"
allowed_return_origins = ["http://localhost:3000", "https://app.example.com"]

[store]
url = "sqlite://data/plugboard.db"

[security]
secret_key = "${PLUGBOARD_SECRET_KEY}"
encryption_keys = { k1 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=" }
active_key = "k1"

[[providers]]
builtin = "microsoft-people"

[integrations.microsoft]
provider = "microsoft-people"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "${MS_CLIENT_SECRET:?set it to the app's client secret value}"
client_secret_expires_at = "2028-05-01"
scopes = ["People.Read", "User.Read", "offline_access"]

[integrations.microsoft.overrides]
authorization_url = "http://127.0.0.1:4010/{tenant}/oauth2/v2.0/authorize"
token_url = "http://127.0.0.1:4010/{tenant}/oauth2/v2.0/token"
api_base_url = "http://127.0.0.1:4010/"
"#;

fn options(env: &[(&str, &str)]) -> LoadOptions {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("PLUGBOARD_SECRET_KEY".to_owned(), "x".repeat(40)),
        (
            "MS_CLIENT_SECRET".to_owned(),
            "client-secret-value".to_owned(),
        ),
    ]);
    for (name, value) in env {
        vars.insert(name.to_string(), value.to_string());
    }
    LoadOptions {
        env: vars,
        today: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
    }
}

/// The value of the integration's one credential, a secret.
fn only_secret(integration: &IntegrationConfig) -> &str {
    match integration.credentials.as_slice() {
        [only] => match &only.credential {
            plugboard_core::oauth::ClientCredential::Secret(secret) => secret.expose_secret(),
            other => panic!("not a secret: {other:?}"),
        },
        other => panic!("not one credential: {other:?}"),
    }
}

/// The integration's one credential, a certificate.
fn only_certificate(integration: &IntegrationConfig) -> &plugboard_core::oauth::ClientCertificate {
    match integration.credentials.as_slice() {
        [only] => match &only.credential {
            plugboard_core::oauth::ClientCredential::Certificate(certificate) => certificate,
            other => panic!("not a certificate: {other:?}"),
        },
        other => panic!("not one credential: {other:?}"),
    }
}

fn registry() -> Registry {
    Registry::builtin().unwrap()
}

fn load_with(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    load_str("plugboard.toml", text, &registry(), &options(env))
}

fn errors(text: &str, env: &[(&str, &str)]) -> String {
    load_with(text, env)
        .expect_err("the config should be refused")
        .to_string()
}

#[test]
fn a_valid_config_loads_with_interpolation_and_normalisation() {
    let loaded = load_with(VALID, &[]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    assert_eq!(
        config.server.redirect_uri(),
        "http://127.0.0.1:3003/oauth/callback"
    );
    assert_eq!(
        config.server.allowed_return_origins,
        ["http://localhost:3000", "https://app.example.com"]
    );
    assert_eq!(
        config.store,
        StoreConfig::Sqlite {
            path: "data/plugboard.db".into()
        }
    );
    assert_eq!(config.security.secret_key.expose_secret(), &"x".repeat(40));
    let ms = &config.integrations["microsoft"];
    assert_eq!(only_secret(ms), "client-secret-value");
    assert_eq!(
        ms.overrides.api_base_url.as_deref(),
        Some("http://127.0.0.1:4010")
    );
    assert_eq!(
        ms.credentials[0].name,
        "integrations.microsoft.client_secret"
    );
    assert_eq!(
        ms.credentials[0].expires,
        NaiveDate::from_ymd_opt(2028, 5, 1)
    );
}

#[test]
fn environment_variables_override_any_key() {
    let loaded = load_with(
        VALID,
        &[
            ("PLUGBOARD__SERVER__BIND", "0.0.0.0:8080"),
            (
                "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET",
                "from-env",
            ),
            (
                "PLUGBOARD__INTEGRATIONS__MICROSOFT__SCOPES",
                "People.Read,User.Read offline_access",
            ),
            ("PLUGBOARD__SECURITY__ENCRYPTION_KEYS__K2", KEY_2),
            ("PLUGBOARD__SECURITY__ACTIVE_KEY", "k2"),
        ],
    )
    .unwrap();
    let config = loaded.config;
    assert_eq!(config.server.bind.to_string(), "0.0.0.0:8080");
    let ms = &config.integrations["microsoft"];
    assert_eq!(only_secret(ms), "from-env");
    assert_eq!(ms.scopes, ["People.Read", "User.Read", "offline_access"]);
    assert_eq!(config.security.active_key, "k2");
    assert_eq!(config.security.encryption_keys.len(), 2);
}

#[test]
fn scopes_default_to_the_providers_and_warnings_are_collected() {
    let text = VALID
        .replace(
            "scopes = [\"People.Read\", \"User.Read\", \"offline_access\"]",
            "",
        )
        .replace("2028-05-01", "2026-01-20");
    let loaded = load_with(&text, &[]).unwrap();
    assert_eq!(
        loaded.config.integrations["microsoft"].scopes,
        ["People.Read", "User.Read", "offline_access"]
    );
    insta::assert_debug_snapshot!(loaded.warnings);

    let without_offline = VALID.replace(", \"offline_access\"]", ", \"Mail.Read\"]");
    insta::assert_debug_snapshot!(load_with(&without_offline, &[]).unwrap().warnings);
}

#[test]
fn every_problem_is_reported_at_once() {
    let broken = VALID
        .replace(
            "bind = \"127.0.0.1:3003\"",
            "bind = \"localhost\"\nport = 3003",
        )
        .replace(
            "public_url = \"http://127.0.0.1:3003/\"",
            "public_url = \"http://plugboard.example.com\"",
        )
        .replace(
            "\"https://app.example.com\"]",
            "\"https://app.example.com/callback\"]",
        )
        .replace("sqlite://data/plugboard.db", "mongodb://db/plugboard")
        .replace("active_key = \"k1\"", "active_key = \"k9\"")
        .replace(
            "client_id = \"11111111-2222-3333-4444-555555555555\"",
            "client_id = 42",
        )
        .replace("2028-05-01", "May 2028")
        .replace(
            "token_url = \"http://127.0.0.1:4010/{tenant}/oauth2/v2.0/token\"",
            "token_url = \"http://127.0.0.1:4010/{region}/token\"\nuser_info_url = \"x\"",
        )
        + "\n[integrations.other]\nprovider = \"salesforce\"\n";
    insta::assert_snapshot!(errors(
        &broken,
        &[("PLUGBOARD__SECURITY__SECRET_KEY", "short")]
    ));
}

#[test]
fn missing_sections_and_keys_name_the_variable_that_could_set_them() {
    insta::assert_snapshot!(errors("[server]\nbind = \"127.0.0.1:3003\"\n", &[]));
}

#[test]
fn secrets_never_appear_in_messages() {
    let text = VALID
        .replace(KEY_1, "c2VjcmV0LWtleS1tYXRlcmlhbA==")
        .replace(
            "secret_key = \"${PLUGBOARD_SECRET_KEY}\"",
            "secret_key = \"tiny-secret\"",
        );
    let message = errors(
        &text,
        &[("PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET", "")],
    );
    for secret in ["tiny-secret", "c2VjcmV0LWtleS1tYXRlcmlhbA=="] {
        assert!(!message.contains(secret), "{message}");
    }
    insta::assert_snapshot!(message);
}

#[test]
fn unset_variables_and_syntax_errors_are_explained() {
    let unset = load_str(
        "plugboard.toml",
        VALID,
        &registry(),
        &LoadOptions {
            env: HashMap::new(),
            today: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        },
    )
    .unwrap_err();
    insta::assert_snapshot!(unset.to_string());
    insta::assert_snapshot!(errors("[server]\nbind = \n", &[]));
}

/// Plugins that load are tested end to end, with the `plugboard` binary.
#[test]
fn a_provider_entry_that_cannot_be_used_names_its_key() {
    let text = VALID.replace(
        "[[providers]]\nbuiltin = \"microsoft-people\"",
        "[[providers]]\npath = \"target/no-such/libacme.so\"\n\n\
         [[providers]]\nbuiltin = \"microsoft-people\"\npath = \"libacme.so\"\n\n\
         [[providers]]\npath = \"\"\n\n[[providers]]\nsource = \"acme\"",
    );
    insta::assert_snapshot!(errors(&text, &[]));
}

#[test]
fn the_example_config_in_the_repository_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/plugboard.toml");
    let env = [
        (
            "PLUGBOARD_SECRET_KEY",
            "an-example-api-key-of-at-least-32-chars",
        ),
        ("PLUGBOARD_ENCRYPTION_KEY", KEY_1),
        (
            "MICROSOFT_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
        ("MICROSOFT_CLIENT_SECRET", "example-secret"),
    ];
    let loaded = load(&path, &registry(), &options(&env)).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.config.integrations.contains_key("microsoft"));
    assert_eq!(
        loaded.config.integrations["apim"].provider,
        "azure-api-management"
    );
}

/// An integration whose provider no `[[providers]]` entry enables has one error, on its
/// `provider`, saying how to enable it; client settings, which an API-key provider does not
/// use and whose need cannot be told for a provider not loaded, are not demanded.
#[test]
fn an_integration_whose_provider_is_not_enabled_has_that_one_error() {
    // The repository's example without its spec-file providers: `apim` uses the API-key
    // provider `azure-api-management`, one of them.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/plugboard.toml");
    let example = std::fs::read_to_string(path).unwrap();
    let entry = "[[providers]]\nspec_dir = \"../providers/specs\"\n";
    assert!(example.contains(entry));
    let text = example.replace(entry, "");
    let env = [
        ("PLUGBOARD_ENCRYPTION_KEY", KEY_1),
        (
            "MICROSOFT_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
        ("MICROSOFT_CLIENT_SECRET", "example-secret"),
    ];
    let error = load_with(&text, &env).expect_err("the provider is not enabled");
    assert_eq!(error.problems.len(), 1, "{error}");
    assert!(!error.to_string().contains("client_"), "{error}");
    insta::assert_snapshot!(error.to_string());

    // A built-in provider not enabled is named with the entry that enables it; an OAuth one
    // still needs its client.
    let text = VALID
        .replace("[[providers]]\nbuiltin = \"microsoft-people\"\n", "")
        .replace("client_id = \"11111111-2222-3333-4444-555555555555\"\n", "");
    let error = load_with(&text, &[]).expect_err("the provider is not enabled");
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn sync_settings_and_webhooks_are_read_and_checked() {
    let text = format!(
        "{VALID}\n[integrations.microsoft.syncs.people]\nenabled = false\nfrequency = \"15m\"\n\n[webhooks]\nurl = \"https://app.example.com/hooks\"\nsecret = \"${{HOOK_SECRET}}\"\n"
    );
    let loaded = load_with(&text, &[("HOOK_SECRET", "a-webhook-secret-0123")]).unwrap();
    let people = &loaded.config.integrations["microsoft"].syncs["people"];
    assert_eq!(people.enabled, Some(false));
    assert_eq!(people.frequency, Some(std::time::Duration::from_secs(900)));
    let hooks = loaded.config.webhooks.unwrap();
    assert_eq!(hooks.url.as_str(), "https://app.example.com/hooks");
    assert_eq!(hooks.secret.expose_secret(), "a-webhook-secret-0123");
    assert!(loaded.config.encrypt_records);

    let bad = format!(
        "{VALID}\n[integrations.microsoft.syncs.nope]\n\n[integrations.microsoft.syncs.people]\nenabled = \"maybe\"\nfrequency = \"often\"\n\n[webhooks]\nurl = \"http://example.com\"\nsecret = \"s3cr3t\"\n"
    );
    let message = errors(&bad, &[]);
    for expected in [
        "integrations.microsoft.syncs.nope",
        "has no sync `nope`",
        "integrations.microsoft.syncs.people.enabled",
        "integrations.microsoft.syncs.people.frequency",
        "`often` is not a duration",
        "webhooks.url",
        "webhooks.secret",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert!(
        !message.contains("s3cr3t"),
        "secrets never appear: {message}"
    );
}

/// A provider whose spec has a sync but no `max_page_size`, which no bundled provider lacks.
/// Loading a config reads only its spec; its code never runs.
struct Unbounded(plugboard_core::ProviderSpec);

#[async_trait::async_trait]
impl Provider for Unbounded {
    fn spec(&self) -> &plugboard_core::ProviderSpec {
        &self.0
    }

    async fn run_sync(
        &self,
        name: &str,
        _: &dyn plugboard_core::Context,
    ) -> Result<(), plugboard_core::ProviderError> {
        Err(plugboard_core::provider::unknown("sync", name, &self.0))
    }

    async fn run_action(
        &self,
        name: &str,
        _: serde_json::Value,
        _: &dyn plugboard_core::Context,
    ) -> Result<serde_json::Value, plugboard_core::ProviderError> {
        Err(plugboard_core::provider::unknown("action", name, &self.0))
    }
}

#[test]
fn a_syncs_page_size_is_bounded_by_what_the_provider_serves() {
    let with_size = |size: &str| {
        format!("{VALID}\n[integrations.microsoft.syncs.people]\npage_size = {size}\n")
    };
    let loaded = load_with(&with_size("1000"), &[]).unwrap();
    let people = &loaded.config.integrations["microsoft"].syncs["people"];
    assert_eq!(people.page_size, Some(1000));
    let from_env = load_with(
        &with_size("1000"),
        &[(
            "PLUGBOARD__INTEGRATIONS__MICROSOFT__SYNCS__PEOPLE__PAGE_SIZE",
            "250",
        )],
    )
    .unwrap();
    assert_eq!(
        from_env.config.integrations["microsoft"].syncs["people"].page_size,
        Some(250)
    );

    let mut messages: Vec<String> = ["0", "1001", "-5", "2.5", "\"lots\""]
        .into_iter()
        .map(|size| errors(&with_size(size), &[]))
        .collect();
    messages.push(errors(
        &with_size("100"),
        &[(
            "PLUGBOARD__INTEGRATIONS__MICROSOFT__SYNCS__PEOPLE__PAGE_SIZE",
            "big",
        )],
    ));

    // A provider whose spec declares no maximum takes no page size at all.
    let text = plugboard_microsoft_people::spec_text()
        .replace("id = \"microsoft-people\"", "id = \"unbounded-people\"")
        .replace("max_page_size = 1000\n", "");
    let spec = plugboard_core::ProviderSpec::parse("unbounded.toml", &text).unwrap();
    assert_eq!(spec.max_page_size(), None);
    let mut registry = registry();
    registry.insert(Arc::new(Unbounded(spec)), Source::BuiltIn);
    let config = with_size("100")
        .replace(
            "builtin = \"microsoft-people\"",
            "builtin = \"unbounded-people\"",
        )
        .replace(
            "provider = \"microsoft-people\"",
            "provider = \"unbounded-people\"",
        );
    messages.push(
        load_str("plugboard.toml", &config, &registry, &options(&[]))
            .expect_err("no page size without a maximum")
            .to_string(),
    );
    insta::assert_snapshot!(messages.join("\n\n"));
}

#[test]
fn a_postgres_store_takes_its_url_as_given_and_a_pool_size() {
    let url = "postgres://app:pw@db.internal:5432/plugboard?sslmode=require&application_name=pb";
    let text = VALID.replace(
        "url = \"sqlite://data/plugboard.db\"",
        &format!("url = \"{url}\"\npool_size = 25"),
    );
    let loaded = load_with(&text, &[]).unwrap();
    assert_eq!(
        loaded.config.store,
        StoreConfig::Postgres {
            url: url.to_owned(),
            pool_size: 25
        }
    );
    let default = VALID.replace("sqlite://data/plugboard.db", "postgresql://db/plugboard");
    assert_eq!(
        load_with(&default, &[]).unwrap().config.store,
        StoreConfig::Postgres {
            url: "postgresql://db/plugboard".into(),
            pool_size: 10
        }
    );
}

#[test]
fn bad_store_urls_and_pool_sizes_are_named_without_their_password() {
    for (store, env) in [
        ("url = \"mysql://root:hunter2@db/plugboard\"", vec![]),
        ("url = \"postgres://app:hunter2@db:port/x\"", vec![]),
        ("url = \"postgres://db/plugboard\"\npool_size = 0", vec![]),
        (
            "url = \"${DATABASE_URL}\"",
            vec![("DATABASE_URL", "redis://:hunter2@cache")],
        ),
    ] {
        let text = VALID.replace("url = \"sqlite://data/plugboard.db\"", store);
        let message = errors(&text, &env);
        assert!(!message.contains("hunter2"), "{message}");
        insta::assert_snapshot!(message);
    }
}

#[test]
fn the_postgres_replicas_example_loads() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/examples/postgres-replicas.toml");
    let env = [
        (
            "PLUGBOARD_DATABASE_URL",
            "postgres://plugboard@db.internal/plugboard",
        ),
        (
            "PLUGBOARD_SECRET_KEY",
            "an-example-api-key-of-at-least-32-chars",
        ),
        ("PLUGBOARD_ENCRYPTION_KEY", KEY_1),
        (
            "MICROSOFT_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
        ("MICROSOFT_CLIENT_SECRET", "example-secret"),
        ("PLUGBOARD_WEBHOOK_SECRET", "a-webhook-secret-0123"),
    ];
    let loaded = load(&path, &registry(), &options(&env)).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        loaded.config.store,
        StoreConfig::Postgres { pool_size: 10, .. }
    ));
}

/// A sync's frequency is bounded by the same check as `POST /syncs/frequency`: an unbounded
/// one used to overflow the next run's date and panic the scheduler.
#[test]
fn a_syncs_frequency_is_bounded() {
    let with_frequency = |frequency: &str| {
        format!("{VALID}\n[integrations.microsoft.syncs.people]\nfrequency = \"{frequency}\"\n")
    };
    let loaded = load_with(&with_frequency("365d"), &[]).unwrap();
    assert_eq!(
        loaded.config.integrations["microsoft"].syncs["people"].frequency,
        Some(crate::sync::MAX_FREQUENCY)
    );
    let messages: Vec<String> = ["1000000000000d", "366d", "500ms"]
        .into_iter()
        .map(|frequency| errors(&with_frequency(frequency), &[]))
        .collect();
    insta::assert_snapshot!(messages.join("\n\n"));
}

#[test]
fn the_management_listener_and_the_log_format_are_read_and_checked() {
    let loaded = load_with(VALID, &[]).unwrap();
    assert_eq!(loaded.config.server.management_bind, None);
    assert_eq!(loaded.config.log.format, LogFormat::Text);

    let set = VALID.replace(
        "bind = \"127.0.0.1:3003\"",
        "bind = \"127.0.0.1:3003\"\nmanagement_bind = \"127.0.0.1:9464\"",
    ) + "\n[log]\nformat = \"json\"\n";
    let loaded = load_with(&set, &[]).unwrap();
    assert_eq!(
        loaded.config.server.management_bind,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(loaded.config.log.format, LogFormat::Json);

    let clash = VALID.replace(
        "bind = \"127.0.0.1:3003\"",
        "bind = \"0.0.0.0:3003\"\nmanagement_bind = \"127.0.0.1:3003\"",
    ) + "\n[log]\nformat = \"xml\"\nlevel = \"debug\"\n";
    insta::assert_snapshot!(errors(&clash, &[]));
}

#[test]
fn the_ui_section_is_optional_and_checked() {
    let ui = load_with(VALID, &[]).unwrap().config.ui;
    assert_eq!(ui.app_name, "the application");
    assert_eq!(ui.logo_url, None);
    assert_eq!(ui.accent_color, "#2563eb");

    let text = format!(
        "{VALID}\n[ui]\napp_name = \" Contoso CRM \"\nlogo_url = \"https://cdn.contoso.example/logo.svg\"\naccent_color = \"#0A7\"\n"
    );
    let ui = load_with(&text, &[("PLUGBOARD__UI__ACCENT_COLOR", "#FF6600")])
        .unwrap()
        .config
        .ui;
    assert_eq!(ui.app_name, "Contoso CRM");
    assert_eq!(
        ui.logo_url.map(String::from).as_deref(),
        Some("https://cdn.contoso.example/logo.svg")
    );
    assert_eq!(
        ui.accent_color, "#ff6600",
        "the variable overrides the file"
    );
    let loopback = format!("{VALID}\n[ui]\nlogo_url = \"http://127.0.0.1:3000/logo.png\"\n");
    assert!(
        load_with(&loopback, &[])
            .unwrap()
            .config
            .ui
            .logo_url
            .is_some()
    );

    let bad = format!(
        "{VALID}\n[ui]\napp_name = \"\"\nlogo_url = \"http://cdn.example.com/logo.png\"\naccent_color = \"red;}}body{{display:none\"\ntheme = \"dark\"\n"
    );
    let from_env = load_with(
        VALID,
        &[
            ("PLUGBOARD__UI__ACCENT_COLOR", "#12345"),
            ("PLUGBOARD__UI__LOGO_URL", "javascript:alert(1)"),
        ],
    )
    .expect_err("the config should be refused")
    .to_string();
    insta::assert_snapshot!(format!("{}\n\n{from_env}", errors(&bad, &[])));
}

#[test]
fn the_servers_read_timeouts_and_connection_cap_are_read_and_bounded() {
    let limits = load_with(VALID, &[]).unwrap().config.server.limits;
    assert_eq!(limits, crate::listener::Limits::default());

    let set = VALID.replace(
        "bind = \"127.0.0.1:3003\"",
        "bind = \"127.0.0.1:3003\"\nheader_read_timeout = \"5s\"\nbody_read_timeout = \"2m\"\nmax_connections = 500",
    );
    let limits = load_with(&set, &[]).unwrap().config.server.limits;
    assert_eq!(
        limits.header_read_timeout,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(
        limits.body_read_timeout,
        std::time::Duration::from_secs(120)
    );
    assert_eq!(limits.max_connections, 500);

    let bad = VALID.replace(
        "bind = \"127.0.0.1:3003\"",
        "bind = \"127.0.0.1:3003\"\nheader_read_timeout = \"0s\"\nbody_read_timeout = \"soon\"\nmax_connections = 0",
    );
    insta::assert_snapshot!(errors(&bad, &[]));
}

#[test]
fn the_request_body_limit_is_read_with_its_unit_and_bounded() {
    let size = |value: &str| {
        let text = VALID.replace(
            "bind = \"127.0.0.1:3003\"",
            &format!("bind = \"127.0.0.1:3003\"\nmax_body_size = {value}"),
        );
        load_with(&text, &[]).map(|loaded| loaded.config.server.max_body_size)
    };
    assert_eq!(
        load_with(VALID, &[]).unwrap().config.server.max_body_size,
        super::server_limits::DEFAULT_MAX_BODY_SIZE
    );
    assert_eq!(size("\"2MiB\"").unwrap(), 2 * 1024 * 1024);
    assert_eq!(size("\"64 KB\"").unwrap(), 64_000);
    assert_eq!(size("4096").unwrap(), 4096);
    let from_env = load_with(VALID, &[("PLUGBOARD__SERVER__MAX_BODY_SIZE", "512KiB")]).unwrap();
    assert_eq!(from_env.config.server.max_body_size, 512 * 1024);
    for bad in ["\"lots\"", "\"1TB\"", "100", "\"2GiB\"", "-1"] {
        let report = size(bad).expect_err(bad).to_string();
        assert!(report.contains("server.max_body_size"), "{bad}: {report}");
    }
    assert!(size("\"12 parsecs\"").unwrap_err().to_string().contains(
        "server.max_body_size (from plugboard.toml): expected a size such as \"1MiB\", \
             \"512KiB\" or a number of bytes, found `12 parsecs`"
    ));
    assert!(
        size("100")
            .unwrap_err()
            .to_string()
            .contains("server.max_body_size (from plugboard.toml): must be from 1KiB to 1GiB")
    );
}

#[test]
fn the_proxys_timeout_and_per_connection_cap_are_read_and_bounded() {
    let server = |extra: &str| {
        let text = VALID.replace(
            "bind = \"127.0.0.1:3003\"",
            &format!("bind = \"127.0.0.1:3003\"\n{extra}"),
        );
        load_with(&text, &[]).map(|loaded| loaded.config.server)
    };
    let defaults = server("").unwrap();
    assert_eq!(
        defaults.proxy_timeout,
        plugboard_core::http::DEFAULT_REQUEST_TIMEOUT
    );
    assert_eq!(
        defaults.max_proxy_requests_per_connection,
        super::server_limits::DEFAULT_MAX_PROXY_REQUESTS_PER_CONNECTION
    );
    let set = server("proxy_timeout = \"5m\"\nmax_proxy_requests_per_connection = 4").unwrap();
    assert_eq!(set.proxy_timeout, std::time::Duration::from_secs(300));
    assert_eq!(set.max_proxy_requests_per_connection, 4);
    let from_env = load_with(
        VALID,
        &[("PLUGBOARD__SERVER__MAX_PROXY_REQUESTS_PER_CONNECTION", "8")],
    )
    .unwrap();
    assert_eq!(from_env.config.server.max_proxy_requests_per_connection, 8);

    let report = server("proxy_timeout = \"0s\"\nmax_proxy_requests_per_connection = 0")
        .unwrap_err()
        .to_string();
    for expected in [
        "server.proxy_timeout (from plugboard.toml): must be from 1s to 1h",
        "server.max_proxy_requests_per_connection (from plugboard.toml): must be from 1 to 10000",
    ] {
        assert!(report.contains(expected), "{report}");
    }
    let report = server("proxy_timeout = 60\nmax_proxy_requests_per_connection = \"many\"")
        .unwrap_err()
        .to_string();
    assert!(
        report.contains(
            "server.proxy_timeout (from plugboard.toml): expected a duration such as \"10s\""
        ),
        "{report}"
    );
    assert!(report.contains("server.max_proxy_requests_per_connection (from plugboard.toml): expected a number of requests"), "{report}");
}
