//! `cargo xtask new-provider <id> [options]`: a new provider, ready to build and test.
//!
//! A Rust provider is a crate `providers/<id>/` (package `plugboard-<id>`) with its spec, one
//! example sync written against the context, fixture-driven snapshot tests and the conformance
//! test, registered as a built-in of the host by `cargo xtask codegen`. With `--spec-only` it is
//! the spec file `providers/specs/<id>.toml` alone. Facts the options did not give are written
//! as marked blanks (`TODO(provider-author)`, URLs on `todo.invalid`): the spec still parses and
//! the new crate's tests pass untouched, while `cargo xtask check-providers` lists every blank
//! left. Nothing is ever overwritten.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The blank marker; the conformance harness (`plugboard_conformance::BLANK`) flags it.
const BLANK: &str = "TODO(provider-author)";
/// The host of placeholder URLs (`plugboard_conformance::PLACEHOLDER_HOST`).
const PLACEHOLDER: &str = "https://todo.invalid";

pub const USAGE: &str = "cargo xtask new-provider <id> [--display-name NAME] [--auth oauth2|api_key] \
[--authorization-url URL] [--token-url URL] [--api-base-url URL] [--scopes a,b,c] [--spec-only]";

/// What the command line asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    pub id: String,
    pub display_name: Option<String>,
    pub api_key: bool,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub api_base_url: Option<String>,
    pub scopes: Vec<String>,
    pub spec_only: bool,
}

impl Options {
    /// Reads the arguments after `new-provider`, refusing anything unknown or malformed.
    pub fn parse(args: &[&str]) -> Result<Options, String> {
        let mut options = Options::default();
        let mut id = None;
        let mut args = args.iter();
        while let Some(&arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .map(|v| v.to_string())
                    .ok_or_else(|| format!("{name} needs a value\nusage: {USAGE}"))
            };
            match arg {
                "--display-name" => options.display_name = Some(value(arg)?),
                "--auth" => match value(arg)?.as_str() {
                    "oauth2" => options.api_key = false,
                    "api_key" => options.api_key = true,
                    other => return Err(format!("--auth {other}: expected oauth2 or api_key")),
                },
                "--authorization-url" => options.authorization_url = Some(https(arg, value(arg)?)?),
                "--token-url" => options.token_url = Some(https(arg, value(arg)?)?),
                "--api-base-url" => {
                    let url = https(arg, value(arg)?)?;
                    options.api_base_url = Some(url.trim_end_matches('/').to_owned());
                }
                "--scopes" => {
                    options.scopes = value(arg)?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "--spec-only" => options.spec_only = true,
                flag if flag.starts_with('-') => {
                    return Err(format!("unknown option {flag}\nusage: {USAGE}"));
                }
                positional if id.is_none() => id = Some(positional.to_owned()),
                extra => return Err(format!("unexpected argument `{extra}`\nusage: {USAGE}")),
            }
        }
        options.id = id.ok_or_else(|| format!("the provider's id is missing\nusage: {USAGE}"))?;
        if !is_kebab_case(&options.id) || options.id == "specs" {
            return Err(format!(
                "`{}` is not a provider id: ids are kebab-case, such as `acme-crm`",
                options.id
            ));
        }
        if options.api_key
            && (options.authorization_url.is_some()
                || options.token_url.is_some()
                || !options.scopes.is_empty())
        {
            return Err("--authorization-url, --token-url and --scopes are OAuth facts; drop them or use --auth oauth2".to_owned());
        }
        if options
            .display_name
            .as_ref()
            .is_some_and(|name| name.trim().is_empty() || name.contains(['"', '\\', '\n']))
        {
            return Err("--display-name must be a non-empty name without quotes, backslashes or line breaks".to_owned());
        }
        if let Some(scope) = options
            .scopes
            .iter()
            .find(|s| s.contains(char::is_whitespace) || s.contains('"'))
        {
            return Err(format!("scope `{scope}` must be one word"));
        }
        Ok(options)
    }
}

/// Spec URLs are https; loopback http belongs in an integration's overrides.
fn https(option: &str, url: String) -> Result<String, String> {
    let host = url
        .strip_prefix("https://")
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() && !url.contains(['"', '\\', ' ']) => Ok(url),
        _ => Err(format!(
            "{option} {url}: a spec's URLs are https:// URLs (a local test server goes in an integration's overrides)"
        )),
    }
}

/// The same rule as the spec's: lowercase words of letters and digits joined by single dashes.
fn is_kebab_case(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Creates the provider in the workspace at `root` and prints the next steps.
pub fn run(root: &Path, options: &Options) -> Result<(), String> {
    let id = &options.id;
    let crate_dir = root.join("providers").join(id);
    let spec_file = root.join("providers/specs").join(format!("{id}.toml"));
    for taken in [&crate_dir, &spec_file] {
        if taken.exists() {
            return Err(format!(
                "provider `{id}` exists already: {}; nothing was changed",
                taken.display()
            ));
        }
    }
    if options.spec_only {
        std::fs::create_dir_all(root.join("providers/specs")).map_err(|e| e.to_string())?;
        create(&spec_file, &spec(options))?;
        println!(
            "created {}\n\nnext steps:\n  1. fill in every `{BLANK}` and every `{PLACEHOLDER}` URL (the provider's docs have them)\n  \
             2. cargo xtask check-providers     # lists what is still blank or invalid\n  \
             3. enable it: [[providers]] spec_dir = \"<path to providers/specs>\" in the config, then add an integration",
            spec_file.display()
        );
        return Ok(());
    }
    // `create_dir` (not `_all`) fails if another run created it in the meantime.
    std::fs::create_dir(&crate_dir)
        .map_err(|e| format!("cannot create {}: {e}", crate_dir.display()))?;
    let mut rust = Vec::new();
    for (path, contents) in crate_files(options) {
        let path = crate_dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        create(&path, &contents)?;
        println!("created {}", path.display());
        if path.extension().is_some_and(|e| e == "rs") {
            rust.push(path);
        }
    }
    // Imports sort by the crate's name, which only the id decides: let rustfmt settle them.
    let formatted = std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(&rust)
        .status();
    if !formatted.is_ok_and(|status| status.success()) {
        eprintln!("warning: rustfmt could not format the new files; run `cargo fmt`");
    }
    crate::codegen::run(root, false)?;
    println!(
        "\nnext steps:\n  1. fill in every `{BLANK}` and every `{PLACEHOLDER}` URL in providers/{id}/provider.toml\n  \
         2. point ITEMS_PATH, the `default` pagination preset and the fixtures at the real API\n  \
         3. cargo test -p plugboard-{id}        # snapshot and conformance tests\n  \
         4. cargo xtask check-providers       # lists what is still blank or invalid\n  \
         5. cargo xtask plugins               # optional: build it as a plugin into target/plugins/"
    );
    Ok(())
}

/// Writes a new file; an existing one is an error, never overwritten.
fn create(path: &Path, contents: &str) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `acme-crm` → `AcmeCrm`.
fn type_name(id: &str) -> String {
    id.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect::<String>()
        })
        .collect()
}

fn toml_string(text: &str) -> String {
    format!("{text:?}")
}

/// The spec, with a marked blank for every fact the options did not give.
fn spec(options: &Options) -> String {
    let id = &options.id;
    let display_name = options
        .display_name
        .clone()
        .unwrap_or_else(|| format!("{BLANK}: the name people know the provider by"));
    let mut out = format!(
        "# {name}: written by `cargo xtask new-provider`. Every `{BLANK}` and every URL on\n\
         # `todo.invalid` is a blank to fill in from the provider's documentation;\n\
         # `cargo xtask check-providers` lists those left.\n\n\
         id = \"{id}\"\ndisplay_name = {display}\n\n[auth]\n",
        name = options.display_name.as_deref().unwrap_or(id),
        display = toml_string(&display_name),
    );
    if options.api_key {
        out.push_str(
            "mode = \"api_key\"\n# Where the API expects the key; check its documentation.\n\
             header = \"Authorization\"\nheader_format = \"Bearer {api_key}\"\n",
        );
    } else {
        let url = |given: &Option<String>, path: &str| {
            toml_string(
                given
                    .as_deref()
                    .unwrap_or(&format!("{PLACEHOLDER}/oauth/{path}")),
            )
        };
        out.push_str(&format!(
            "mode = \"oauth2\"\nauthorization_url = {}\ntoken_url = {}\n\
             # Send a PKCE S256 challenge; turn off only for a provider that refuses it.\n\
             pkce = true\nclient_authentication = \"form\"\n",
            url(&options.authorization_url, "authorize"),
            url(&options.token_url, "token"),
        ));
        if options.scopes.is_empty() {
            out.push_str(&format!(
                "\n[[auth.scopes]]\nname = \"{BLANK}\"\ndescription = \"{BLANK}: what this scope grants\"\ndefault = true\n"
            ));
        }
        for scope in &options.scopes {
            out.push_str(&format!(
                "\n[[auth.scopes]]\nname = {}\ndescription = \"{BLANK}: what this scope grants\"\ndefault = true\n",
                toml_string(scope)
            ));
        }
    }
    let base_url = options
        .api_base_url
        .clone()
        .unwrap_or_else(|| PLACEHOLDER.to_owned());
    out.push_str(&format!(
        "\n[api]\n# Request paths below it carry any version: `/v1/items`.\nbase_url = {}\n",
        toml_string(&base_url)
    ));
    if !options.spec_only {
        out.push_str(&format!(
            "\n# How the API's lists page; the example sync reads them with this preset. Adjust the\n\
             # pointers (or use `type = \"next_link\"`) to what the API really answers.\n\
             [api.pagination.default]\ntype = \"cursor\"\ncursor = \"/next_cursor\"\n\
             cursor_param = \"cursor\"\nrecords = \"/items\"\n\n\
             [models.Item]\ndescription = \"{BLANK}: what one record is\"\n\n\
             [[syncs]]\nname = \"items\"\nmodel = \"Item\"\n\
             description = \"{BLANK}: what the sync keeps a copy of\"\nfrequency = \"1h\"\n"
        ));
    }
    out
}

/// The files of a Rust provider crate, by path below its directory.
fn crate_files(options: &Options) -> Vec<(PathBuf, String)> {
    let id = &options.id;
    let name = options.display_name.clone().unwrap_or_else(|| id.clone());
    let krate = format!("plugboard_{}", id.replace('-', "_"));
    let ty = type_name(id);
    let files = [
        ("Cargo.toml", CARGO_TOML),
        ("src/lib.rs", LIB_RS),
        ("tests/fixtures/item.json", ITEM_JSON),
        ("tests/mapping.rs", MAPPING_RS),
        (
            "tests/snapshots/mapping__an_item_becomes_a_record_with_its_id.snap",
            MAPPING_SNAP,
        ),
        ("tests/conformance.rs", CONFORMANCE_RS),
        ("README.md", README_MD),
    ];
    let fill = |template: &str| {
        template
            .replace("{{id}}", id)
            .replace("{{name}}", &name)
            .replace("{{crate}}", &krate)
            .replace("{{Type}}", &ty)
    };
    let mut out: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), fill(t)))
        .collect();
    out.push((PathBuf::from("provider.toml"), spec(options)));
    out
}

const CARGO_TOML: &str = r#"[package]
name = "plugboard-{{id}}"
description = "Plugboard provider for {{name}}."
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish.workspace = true

[lib]
# An rlib for hosts that link the provider in, a cdylib to load it as a plugin (with `plugin`).
crate-type = ["rlib", "cdylib"]

[features]
# Exports the provider from the cdylib for Plugboard's plugin loader. Off by default, so that a
# binary linking several providers statically never sees two plugin declarations.
plugin = ["dep:plugboard-plugin"]

[dependencies]
async-trait.workspace = true
plugboard-core.workspace = true
plugboard-plugin = { workspace = true, optional = true }
serde_json.workspace = true

[dev-dependencies]
insta.workspace = true
plugboard-conformance.workspace = true

[lints]
workspace = true
"#;

const LIB_RS: &str = r#"//! Plugboard provider for {{name}}.
//!
//! The facts (auth, API base URL, pagination) are data in `provider.toml`; this crate adds the
//! logic the spec cannot express: the `items` sync, a full crawl of the API's list into `Item`
//! records. Like every provider it is pure logic: all I/O goes through the host's
//! [`Context`], which adds credentials, retries and limits. Built with the `plugin` feature, its
//! cdylib is a Plugboard plugin exporting this provider.

use async_trait::async_trait;
use plugboard_core::provider::unknown;
use plugboard_core::spec::{PaginationSpec, SpecError};
use plugboard_core::{Context, HttpRequest, Pager, Provider, ProviderError, ProviderSpec, Record};
use serde_json::Value;

/// Where the spec lives in the repository; error messages name it.
pub const SPEC_PATH: &str = "providers/{{id}}/provider.toml";

const SPEC_TEXT: &str = include_str!("../provider.toml");

/// The pagination preset the sync reads lists with.
const PAGINATION: &str = "default";
/// The list the `items` sync crawls, below the API base URL.
const ITEMS_PATH: &str = "/items";
/// The model the `items` sync writes.
const MODEL: &str = "Item";

pub struct {{Type}} {
    spec: ProviderSpec,
    pagination: PaginationSpec,
}

impl {{Type}} {
    /// Parses the embedded spec and checks that it declares the pagination preset the code
    /// reads lists with, so a spec edit that drops it fails at start-up rather than on the first
    /// run.
    pub fn new() -> Result<Self, SpecError> {
        let spec = ProviderSpec::parse(SPEC_PATH, SPEC_TEXT)?;
        let Some(pagination) = spec.pagination(PAGINATION).cloned() else {
            return Err(SpecError {
                source: SPEC_PATH.to_owned(),
                problems: vec![format!(
                    "api.pagination.{PAGINATION}: the code reads lists with this preset; declare it"
                )],
            });
        };
        Ok(Self { spec, pagination })
    }
}

#[cfg(feature = "plugin")]
plugboard_plugin::export_provider!("{{id}}", {{Type}}::new);

#[async_trait]
impl Provider for {{Type}} {
    fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    async fn run_sync(&self, name: &str, ctx: &dyn Context) -> Result<(), ProviderError> {
        match name {
            "items" => sync_items(ctx, &self.pagination).await,
            _ => Err(unknown("sync", name, &self.spec)),
        }
    }

    async fn run_action(
        &self,
        name: &str,
        _input: Value,
        _ctx: &dyn Context,
    ) -> Result<Value, ProviderError> {
        Err(unknown("action", name, &self.spec))
    }
}

/// The `items` sync: a full crawl of the list, page by page. The host's crawl bookkeeping turns
/// "no longer listed" into deletes once the crawl has read the last page. For a long list, save
/// the next page's request as a checkpoint after every page so an interrupted run resumes
/// (see `providers/microsoft-people/src/people_sync.rs`).
async fn sync_items(ctx: &dyn Context, preset: &PaginationSpec) -> Result<(), ProviderError> {
    ctx.begin_crawl(MODEL).await?;
    let mut pager = Pager::new(ctx, preset, HttpRequest::get(ITEMS_PATH));
    let mut saved = 0;
    while let Some(page) = pager.next_page().await? {
        let records: Vec<Record> = page.records.iter().filter_map(item_record).collect();
        saved += records.len();
        if !records.is_empty() {
            ctx.save_records(MODEL, records).await?;
        }
    }
    let deleted = ctx.end_crawl(MODEL).await?;
    ctx.info(&format!(
        "crawl complete: {saved} items saved, {deleted} deleted"
    ));
    Ok(())
}

/// One entry of the list as a record: the provider's id, byte for byte, and the entry as the
/// API sent it. An entry without an id cannot be tracked, so it is skipped.
pub fn item_record(entry: &Value) -> Option<Record> {
    let id = match &entry["id"] {
        Value::String(id) if !id.is_empty() => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    Some(Record::new(id, entry.clone()))
}
"#;

const ITEM_JSON: &str = r#"{
  "id": "item-1",
  "name": "An example item"
}
"#;

const MAPPING_RS: &str = r#"//! List entries to records, one fixture per shape the API sends. The snapshots are the records'
//! JSON: a change in them is a change in the data contract and needs a deliberate review.

use plugboard_core::Record;
use {{crate}}::item_record;
use serde_json::Value;

fn record(fixture: &str) -> Record {
    let path = format!(
        "{}/tests/fixtures/{fixture}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let entry: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    item_record(&entry).unwrap_or_else(|| panic!("{fixture} has an id"))
}

#[test]
fn an_item_becomes_a_record_with_its_id() {
    insta::assert_json_snapshot!(record("item"));
}

#[test]
fn an_entry_without_an_id_is_skipped() {
    assert_eq!(item_record(&serde_json::json!({"name": "no id"})), None);
}
"#;

const MAPPING_SNAP: &str = r#"---
source: providers/{{id}}/tests/mapping.rs
expression: "record(\"item\")"
---
{
  "id": "item-1",
  "data": {
    "id": "item-1",
    "name": "An example item"
  }
}
"#;

const CONFORMANCE_RS: &str = r#"//! The conformance harness: every declared sync and action runs against canned answers (the
//! fixtures), saves records with ids of the declared model, and asks only for what is scripted.

use plugboard_conformance::{Conformance, Script};
use {{crate}}::{{Type}};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_sync_and_action_conforms() {
    let provider = {{Type}}::new().unwrap();
    let script = Script::new().respond("GET", "/items", 200, json!({"items": [fixture("item")]}));
    Conformance::new(&provider, script).run().assert_ok();
}
"#;

const README_MD: &str = r#"# {{name}}

The Plugboard provider `{{id}}`, written by `cargo xtask new-provider`.

- `provider.toml`: the facts (auth, scopes, API base URL, pagination, models, syncs). Fill in
  every `TODO(provider-author)` and every `todo.invalid` URL; `cargo xtask check-providers`
  lists those left.
- `src/lib.rs`: the `items` sync, written against the `Context`.
- `tests/`: fixture-driven snapshot tests (`mapping.rs`) and the conformance harness
  (`conformance.rs`): `cargo test -p plugboard-{{id}}`.

The guide is `docs/adding-a-provider.md`.
"#;

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const GUIDE: &str = "docs/adding-a-provider.md";

    /// Every command of the guide's ```sh blocks, and how the tests exercise it: run as written
    /// by `the_guide_works_in_a_copy_of_the_workspace`, or the test that runs what it runs.
    /// A command missing here fails `every_command_of_the_guide_is_exercised`.
    const EXERCISED: &[(&str, &str)] = &[
        (
            "cargo xtask new-provider acme-mail --spec-only",
            "run as written below",
        ),
        ("cargo xtask new-provider acme-crm", "run as written below"),
        (
            "cargo xtask new-provider acme-keys --spec-only --auth api_key",
            "run as written below",
        ),
        (
            "cargo test -p plugboard-acme-crm",
            "run as written below, in the copy",
        ),
        (
            "cargo xtask check-providers",
            "run as written below in the copy (failing on its blanks); tests/commands.rs: \
             check_providers_passes_on_the_real_workspace",
        ),
        (
            "cargo xtask plugins",
            "tests/commands.rs: plugins_builds_the_current_workspaces_providers",
        ),
        (
            "cargo xtask codegen --check",
            "codegen.rs: the_generated_files_are_up_to_date",
        ),
        (
            "cargo xtask ci",
            "tests/commands.rs: ci_runs_the_workspaces_ci_script (a fixture's .ci/run); \
             checks.rs: the_ci_script_is_read_step_by_step (the real one's steps)",
        ),
    ];

    fn guide_commands() -> Vec<String> {
        let text = std::fs::read_to_string(crate::workspace_root().join(GUIDE)).unwrap();
        let mut commands = Vec::new();
        let mut in_sh = false;
        for line in text.lines() {
            match line.trim() {
                "```sh" => in_sh = true,
                "```" => in_sh = false,
                command if in_sh && !command.is_empty() => commands.push(command.to_owned()),
                _ => {}
            }
        }
        commands
    }

    /// The words of a command line, with "double quoted" words kept whole.
    fn words(command: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in command.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        words
    }

    fn guide_command(prefix: &str) -> Vec<String> {
        let command = guide_commands()
            .into_iter()
            .find(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("{GUIDE} has no command starting with `{prefix}`"));
        words(&command)
    }

    #[test]
    fn every_command_of_the_guide_is_exercised() {
        for command in guide_commands() {
            assert!(
                EXERCISED
                    .iter()
                    .any(|(prefix, _)| command.starts_with(prefix)),
                "{GUIDE}: `{command}` is not exercised by any test; add it to EXERCISED with the test that runs it"
            );
        }
    }

    #[test]
    fn ids_and_options_are_checked_before_anything_is_written() {
        for id in ["Acme", "acme_crm", "acme-", "9acme", "acme--crm", "specs"] {
            let error = Options::parse(&[id]).unwrap_err();
            assert!(error.contains("is not a provider id"), "{id}: {error}");
        }
        let error =
            Options::parse(&["acme", "--token-url", "http://127.0.0.1:4010/token"]).unwrap_err();
        assert!(error.contains("https://"), "{error}");
        let error = Options::parse(&["acme", "--auth", "api_key", "--scopes", "a"]).unwrap_err();
        assert!(error.contains("OAuth facts"), "{error}");
        assert!(
            Options::parse(&["acme", "--colour"])
                .unwrap_err()
                .starts_with("unknown option --colour")
        );
        let error = Options::parse(&["acme", "--display-name", "Acme \"CRM\""]).unwrap_err();
        assert!(error.contains("without quotes"), "{error}");
        assert_eq!(type_name("acme-crm2"), "AcmeCrm2");
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                copy_tree(&entry.path(), &to.join(&name));
            } else if kind.is_file() {
                std::fs::copy(entry.path(), to.join(&name)).unwrap();
                // The original's time, so cargo sees unchanged crates as fresh next run.
                let modified = entry.metadata().unwrap().modified().unwrap();
                let file = std::fs::File::options()
                    .write(true)
                    .open(to.join(&name))
                    .unwrap();
                file.set_modified(modified).unwrap();
            }
        }
    }

    /// Runs cargo in the copy with its own target directory under the real one: compiled
    /// dependencies are reused from run to run, and the outer cargo's lock is never waited on.
    /// Offline through the environment, so cargo run by `cargo xtask` is offline too.
    fn cargo_in(copy: &Path, target: &Path, args: &[String]) -> std::process::Output {
        Command::new(crate::cargo())
            .current_dir(copy)
            .args(args)
            .env("CARGO_NET_OFFLINE", "true")
            .env("CARGO_TARGET_DIR", target)
            .env("CARGO_TERM_COLOR", "never")
            .env("INSTA_UPDATE", "no")
            .output()
            .unwrap()
    }

    /// The guide's scaffolding commands, run as written in a copy of the workspace: the new
    /// crate builds and its tests pass untouched, the host's generated list includes it,
    /// nothing is overwritten, and the workspace-wide conformance check lists every blank.
    #[test]
    fn the_guide_works_in_a_copy_of_the_workspace() {
        let real = crate::workspace_root();
        let scratch = crate::target_dir(&real).join("tmp/scaffold-test");
        let copy = scratch.join("workspace");
        let _ = std::fs::remove_dir_all(&copy);
        copy_tree(&real, &copy);

        for prefix in [
            "cargo xtask new-provider acme-crm",
            "cargo xtask new-provider acme-mail",
            "cargo xtask new-provider acme-keys",
        ] {
            let command = guide_command(prefix);
            let args: Vec<&str> = command[3..].iter().map(String::as_str).collect();
            run(&copy, &Options::parse(&args).unwrap()).unwrap();
        }
        let krate = copy.join("providers/acme-crm");
        let spec = std::fs::read_to_string(krate.join("provider.toml")).unwrap();
        assert!(
            spec.contains("token_url = \"https://app.acme.example/oauth/token\""),
            "{spec}"
        );
        assert!(spec.contains("name = \"contacts.write\""), "{spec}");
        let mail = std::fs::read_to_string(copy.join("providers/specs/acme-mail.toml")).unwrap();
        assert!(mail.contains("display_name = \"Acme Mail\""), "{mail}");
        assert!(!mail.contains("[[syncs]]"), "{mail}");
        assert!(!copy.join("providers/acme-mail").exists());
        let keys = std::fs::read_to_string(copy.join("providers/specs/acme-keys.toml")).unwrap();
        assert!(keys.contains("mode = \"api_key\""), "{keys}");
        assert!(
            keys.contains("base_url = \"https://api.acme-keys.example\""),
            "{keys}"
        );

        // Registered with the host, and the generated files are what codegen makes.
        crate::codegen::run(&copy, true).unwrap();
        let builtin =
            std::fs::read_to_string(copy.join("crates/host/src/builtin_providers.rs")).unwrap();
        assert!(
            builtin.contains("plugboard_acme_crm::AcmeCrm::new()?"),
            "{builtin}"
        );
        let manifest = std::fs::read_to_string(copy.join("crates/host/Cargo.toml")).unwrap();
        assert!(
            manifest.contains("plugboard-acme-crm = { path = \"../../providers/acme-crm\" }"),
            "{manifest}"
        );

        // A second run refuses and changes nothing.
        let before = std::fs::read_to_string(krate.join("src/lib.rs")).unwrap();
        let again = run(&copy, &Options::parse(&["acme-crm"]).unwrap()).unwrap_err();
        assert!(again.contains("exists already"), "{again}");
        let spec_only_again = run(
            &copy,
            &Options::parse(&["acme-mail", "--spec-only"]).unwrap(),
        )
        .unwrap_err();
        assert!(
            spec_only_again.contains("exists already"),
            "{spec_only_again}"
        );
        assert_eq!(
            std::fs::read_to_string(krate.join("src/lib.rs")).unwrap(),
            before
        );

        // The generated Rust is formatted as CI checks it.
        let rustfmt = Command::new("rustfmt")
            .args(["--check", "--edition", "2024"])
            .args(["src/lib.rs", "tests/mapping.rs", "tests/conformance.rs"].map(|f| krate.join(f)))
            .output()
            .unwrap();
        assert!(
            rustfmt.status.success(),
            "{}",
            String::from_utf8_lossy(&rustfmt.stdout)
        );

        let target = scratch.join("target");
        let test = cargo_in(
            &copy,
            &target,
            &guide_command("cargo test -p plugboard-acme-crm")[1..],
        );
        assert!(
            test.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&test.stdout),
            String::from_utf8_lossy(&test.stderr)
        );
        let stdout = String::from_utf8_lossy(&test.stdout);
        for passed in [
            "every_sync_and_action_conforms",
            "an_item_becomes_a_record_with_its_id",
        ] {
            assert!(
                stdout.contains(&format!("test {passed} ... ok")),
                "{stdout}"
            );
        }

        // What the options did not give is flagged by `cargo xtask check-providers`, run as
        // the guide says, each blank naming provider and key.
        let check = cargo_in(
            &copy,
            &target,
            &guide_command("cargo xtask check-providers")[1..],
        );
        assert!(!check.status.success(), "blanks must fail the check");
        let stdout = String::from_utf8_lossy(&check.stdout);
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert!(
            stderr.contains("the providers do not conform; see the test output above"),
            "{stderr}"
        );
        for blank in [
            "provider `acme-crm` (providers/acme-crm/provider.toml): auth.scopes[0].description: `TODO(provider-author): what this scope grants` is a blank",
            "provider `acme-crm` (providers/acme-crm/provider.toml): models.Item.description:",
            "provider `acme-mail` (providers/specs/acme-mail.toml): auth.authorization_url: `https://todo.invalid/oauth/authorize` is a blank",
            "provider `acme-mail` (providers/specs/acme-mail.toml): api.base_url: `https://todo.invalid` is a blank",
        ] {
            assert!(stdout.contains(blank), "{blank}\n{stdout}");
        }
    }
}
