//! Fuzz target `config_file`: `plugboard.toml` as an operator (or a broken deployment
//! template) writes it.
//!
//! The example configuration and a fuller one, mutated, and raw bytes: loading never panics;
//! a refusal has at least one problem, each one line naming what is wrong; and no secret the
//! file references (`${VAR}` in a secret's key) shows in a problem, a warning or a loaded
//! configuration's `Debug`.

use std::collections::HashMap;

use chrono::NaiveDate;
use plugboard_fuzz::{Target, inputs};

use super::{LoadOptions, load_str};
use crate::registry::Registry;

/// The secrets the seeds reference, each with the one key it belongs to.
const SECRETS: &[(&str, &str, &str)] = &[
    (
        "PLUGBOARD_SECRET_KEY",
        "secret_key = \"",
        "api-key-3fa9c1d27e8b4f60a5d2c9e1b7f3a8d4",
    ),
    (
        "PLUGBOARD_ENCRYPTION_KEY",
        "k1 = \"",
        "ZW5jcnlwdGlvbi1rZXktb2YtMzItYnl0ZXMtLS0tLS0=",
    ),
    (
        "MICROSOFT_CLIENT_SECRET",
        "client_secret = \"",
        "client-secret-5e7a91c3d2b8f4a6",
    ),
    (
        "WEBHOOK_SECRET",
        "secret = \"",
        "webhook-secret-8c2f6d1a9e4b7c30",
    ),
];

const FULL: &str = r#"
[server]
bind = "127.0.0.1:3003"
public_url = "http://127.0.0.1:3003/"
allowed_return_origins = ["http://localhost:3000", "https://app.example.com"]
max_body_size = "1MiB"

[store]
url = "sqlite://data/plugboard.db"

[security]
secret_key = "${PLUGBOARD_SECRET_KEY}"
encryption_keys = { k1 = "${PLUGBOARD_ENCRYPTION_KEY}" }
active_key = "k1"

[[providers]]
builtin = "microsoft-people"

[integrations.microsoft]
provider = "microsoft-people"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "${MICROSOFT_CLIENT_SECRET:?set it}"
client_secret_expires_at = "2026-12-20"
scopes = ["People.Read", "User.Read", "offline_access"]

[integrations.microsoft.syncs.people]
frequency = "5m"
page_size = 50

[integrations.microsoft.overrides]
authorization_url = "http://127.0.0.1:4010/{tenant}/oauth2/v2.0/authorize"
token_url = "http://127.0.0.1:4010/{tenant}/oauth2/v2.0/token"
api_base_url = "http://127.0.0.1:4010/"

[webhooks]
url = "https://hooks.example.com/plugboard"
secret = "${WEBHOOK_SECRET}"
"#;

const DICTIONARY: &[&str] = &[
    "[server]",
    "[store]",
    "[security]",
    "[webhooks]",
    "[log]",
    "[ui]",
    "[[providers]]",
    "[integrations.x]",
    "[[integrations.microsoft.credentials]]",
    "bind",
    "public_url",
    "url",
    "secret",
    "secret_key",
    "encryption_keys",
    "active_key",
    "provider",
    "client_id",
    "client_secret",
    "scopes",
    "frequency",
    "page_size",
    "enabled",
    "${",
    "${UNSET}",
    ":?",
    ":-",
    "postgres://",
    "sqlite://",
    "127.0.0.1:0",
    "[::1]:80",
    "https://",
    "1KiB",
    "99999999999GiB",
];

#[test]
fn fuzz_config_file() {
    let example = include_str!("../../../../config/plugboard.toml").replace(
        "spec_dir = \"../providers/specs\"",
        &format!(
            "spec_dir = \"{}/../../providers/specs\"",
            env!("CARGO_MANIFEST_DIR")
        ),
    );
    let registry = Registry::builtin().expect("the built-in providers");
    let mut env: HashMap<String, String> = SECRETS
        .iter()
        .map(|(var, _, value)| ((*var).to_owned(), (*value).to_owned()))
        .collect();
    env.insert(
        "MICROSOFT_CLIENT_ID".into(),
        "11111111-2222-3333-4444-555555555555".into(),
    );
    let options = LoadOptions {
        env,
        today: NaiveDate::from_ymd_opt(2026, 12, 7).expect("a date"),
    };
    Target::new(env!("CARGO_MANIFEST_DIR"), "config_file").run(
        inputs::text(inputs::mixed(&[example.as_str(), FULL], DICTIONARY)),
        |text: &String| check(text, &registry, &options),
    );
}

fn check(text: &str, registry: &Registry, options: &LoadOptions) -> Result<(), String> {
    let (shown, lines) = match load_str("plugboard.toml", text, registry, options) {
        Ok(loaded) => (
            format!("{:?} {:?}", loaded.config, loaded.warnings),
            loaded.warnings,
        ),
        Err(error) => {
            if error.problems.is_empty() {
                return Err(format!("refused without a problem: {error}"));
            }
            (error.to_string(), [error.problems, error.warnings].concat())
        }
    };
    if let Some(line) = lines
        .iter()
        .find(|l| l.trim().is_empty() || l.contains(char::is_control))
    {
        return Err(format!(
            "a problem or warning that is not one line: {line:?}"
        ));
    }
    for (var, key, secret) in SECRETS {
        // A mutation that moved the reference under another key made it that key's value,
        // which may be shown: only a secret referenced where it belongs must never show.
        let reference = format!("${{{var}");
        let in_place = text
            .match_indices(&reference)
            .all(|(at, _)| text[..at].ends_with(key));
        if in_place && shown.contains(secret) {
            return Err(format!("{var}'s value shows: {shown}"));
        }
    }
    Ok(())
}
