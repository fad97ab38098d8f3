//! Fuzz target `provider_spec`: spec files as their authors (or a careless edit) write them.
//!
//! Every spec of the workspace, mutated, and raw bytes: parsing never panics; a refusal names
//! the file and lists its problems one line each (a control character of the input written as
//! an escape); and a spec that parses writes out (TOML) and parses back to itself — what was
//! accepted is what the host will use.

use std::path::Path;

use plugboard_fuzz::{Target, inputs};

use crate::spec::ProviderSpec;

/// Keys and values of the spec format, so mutations make near-valid specs.
const DICTIONARY: &[&str] = &[
    "[auth]",
    "[api]",
    "[account]",
    "[[syncs]]",
    "[[actions]]",
    "[[auth.scopes]]",
    "[api.pagination.odata]",
    "[connection_config.tenant]",
    "type = \"oauth2\"",
    "type = \"api_key\"",
    "type = \"next_link\"",
    "type = \"cursor\"",
    "authorization_url",
    "token_url",
    "base_url",
    "{tenant}",
    "{",
    "}",
    "frequency",
    "\"5 minutes\"",
    "\"0s\"",
    "page_size",
    "max_page_size",
    "retry",
    "rate_limit",
    "requests",
    "per",
    "statuses",
    "pkce",
    "client_authentication",
    "/value",
    "~1",
    "..",
    "%2e",
];

#[test]
fn fuzz_provider_spec() {
    let seeds = workspace_specs();
    Target::new(env!("CARGO_MANIFEST_DIR"), "provider_spec").run(
        inputs::text(inputs::mixed(&seeds, DICTIONARY)),
        |text: &String| check(text),
    );
}

fn check(text: &str) -> Result<(), String> {
    let spec = match ProviderSpec::parse("fuzz.toml", text) {
        Ok(spec) => spec,
        Err(error) => {
            let shown = error.to_string();
            if !shown.starts_with("invalid provider spec `fuzz.toml`:") {
                return Err(format!("the error does not name the file: {shown}"));
            }
            if error.problems.is_empty() {
                return Err("a refusal without a problem".to_owned());
            }
            if let Some(problem) = error
                .problems
                .iter()
                .find(|p| p.trim().is_empty() || p.contains(char::is_control))
            {
                return Err(format!("a problem that is not one line: {problem:?}"));
            }
            return Ok(());
        }
    };
    let written = toml::to_string(&spec)
        .map_err(|e| format!("an accepted spec cannot be written out: {e}"))?;
    match ProviderSpec::parse("written.toml", &written) {
        Ok(again) if again == spec => Ok(()),
        Ok(again) => Err(format!(
            "the spec written out reads back differently:\n{written}\n{again:?}\n{spec:?}"
        )),
        Err(e) => Err(format!("the spec written out is refused: {e}\n{written}")),
    }
}

/// The workspace's spec files: the built-in provider's and the spec-only ones.
fn workspace_specs() -> Vec<String> {
    let providers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../providers");
    let mut files = vec![providers.join("microsoft-people/provider.toml")];
    let specs = std::fs::read_dir(providers.join("specs")).expect("providers/specs");
    files.extend(specs.map(|e| e.expect("an entry of providers/specs").path()));
    files.sort();
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "toml"))
        .map(|f| std::fs::read_to_string(f).expect("a spec file"))
        .collect()
}
