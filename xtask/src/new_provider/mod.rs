//! `cargo xtask new-provider <id> [options]`: a new provider, ready to build and test.
//!
//! A Rust provider is a crate `providers/<id>/` (package `plugboard-<id>`) with its spec, one
//! sync written against the context (resumable: a checkpoint per page), fixture-driven snapshot
//! tests, the conformance test and a test against a small fake of the API, registered as a
//! built-in of the host by `cargo xtask codegen`. With `--spec-only` it is the spec file
//! `providers/specs/<id>.toml` alone. Every fact the options did not give is written as a marked
//! blank (`TODO(provider-author)`, `TODO-provider-author` where a header name must be a token,
//! URLs on `todo.invalid`): the spec still parses and the new crate's tests pass untouched,
//! while `cargo xtask check-providers` lists every blank left. Nothing is ever overwritten.

mod spec;
mod templates;

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;

use crate::help::{Opt, Task};

/// The blank marker; the conformance harness (`plugboard_conformance::BLANK`) flags it.
const BLANK: &str = "TODO(provider-author)";
/// The blank where the value must be an HTTP token, such as a header name
/// (`plugboard_conformance::TOKEN_BLANK`).
const TOKEN_BLANK: &str = "TODO-provider-author";
/// The host of placeholder URLs (`plugboard_conformance::PLACEHOLDER_HOST`).
const PLACEHOLDER: &str = "https://todo.invalid";

pub const TASK: Task = Task {
    name: "new-provider",
    summary: "scaffolds a provider crate or spec file",
    about: "Scaffolds a provider: a Rust crate under providers/<id>/ with its spec, a resumable\n\
            sync and tests, registered with the host; or, with --spec-only, a spec file under\n\
            providers/specs/. Every fact not given as an option is a marked blank that\n\
            `cargo xtask check-providers` lists. Nothing is overwritten.",
    args: "<id>",
    options: &[
        Opt {
            flag: "<id>",
            help: "the provider's id, kebab-case (`acme-crm`)",
        },
        Opt {
            flag: "--display-name NAME",
            help: "the name people know the provider by",
        },
        Opt {
            flag: "--docs-url URL",
            help: "the provider's API documentation (https)",
        },
        Opt {
            flag: "--auth oauth2|api_key",
            help: "how accounts connect (default oauth2)",
        },
        Opt {
            flag: "--authorization-url URL",
            help: "oauth2: where the user signs in and consents (https)",
        },
        Opt {
            flag: "--token-url URL",
            help: "oauth2: where codes and refresh tokens become tokens (https)",
        },
        Opt {
            flag: "--scopes a,b,c",
            help: "oauth2: the scopes asked for by default",
        },
        Opt {
            flag: "--header NAME",
            help: "api_key: the header the API reads the key from",
        },
        Opt {
            flag: "--header-format FORMAT",
            help: "api_key: the header's value around the key, with `{api_key}`\n(`Bearer {api_key}`); without it the header is the key alone",
        },
        Opt {
            flag: "--query-param NAME",
            help: "api_key: the query parameter the API reads the key from",
        },
        Opt {
            flag: "--api-base-url URL",
            help: "the API's base URL (https), with any version in the paths",
        },
        Opt {
            flag: "--sync NAME",
            help: "the sync's name, kebab-case (default `items`)",
        },
        Opt {
            flag: "--model NAME",
            help: "the model the sync writes, PascalCase (default: the sync's name\nin PascalCase without a final s: `contacts` gives `Contact`)",
        },
        Opt {
            flag: "--list-path PATH",
            help: "the path of the list the sync pages through (`/v1/contacts`)",
        },
        Opt {
            flag: "--spec-only",
            help: "only a spec file: auth and the proxy, no syncs or actions",
        },
    ],
    examples: &[
        "cargo xtask new-provider acme-crm --display-name \"Acme CRM\" --auth oauth2 \\\n    \
         --authorization-url https://app.acme.example/oauth/authorize \\\n    \
         --token-url https://app.acme.example/oauth/token --scopes contacts.read \\\n    \
         --api-base-url https://api.acme.example --sync contacts --list-path /v1/contacts",
        "cargo xtask new-provider acme-keys --auth api_key --header X-Api-Key \\\n    \
         --api-base-url https://api.acme-keys.example --sync contacts",
        "cargo xtask new-provider acme-mail --spec-only --display-name \"Acme Mail\"",
    ],
};

/// What the command line asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    pub id: String,
    pub display_name: Option<String>,
    pub docs_url: Option<String>,
    pub api_key: bool,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub scopes: Vec<String>,
    pub header: Option<String>,
    pub header_format: Option<String>,
    pub query_param: Option<String>,
    pub api_base_url: Option<String>,
    pub sync: Option<String>,
    pub model: Option<String>,
    pub list_path: Option<String>,
    pub spec_only: bool,
}

impl Options {
    /// Reads the arguments after `new-provider`, refusing anything unknown or malformed.
    pub fn parse(args: &[&str]) -> Result<Options, String> {
        let usage = TASK.usage();
        let mut options = Options::default();
        let mut id = None;
        let mut args = args.iter();
        while let Some(&arg) = args.next() {
            let mut value = |name: &str| {
                args.next().map(|v| v.to_string()).ok_or_else(|| {
                    format!("{name} needs a value\nusage: {usage} (--help explains the options)")
                })
            };
            match arg {
                "--display-name" => options.display_name = Some(value(arg)?),
                "--docs-url" => options.docs_url = Some(https(arg, value(arg)?)?),
                "--auth" => match value(arg)?.as_str() {
                    "oauth2" => options.api_key = false,
                    "api_key" => options.api_key = true,
                    other => return Err(format!("--auth {other}: expected oauth2 or api_key")),
                },
                "--authorization-url" => options.authorization_url = Some(https(arg, value(arg)?)?),
                "--token-url" => options.token_url = Some(https(arg, value(arg)?)?),
                "--scopes" => {
                    options.scopes = value(arg)?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "--header" => options.header = Some(value(arg)?),
                "--header-format" => options.header_format = Some(value(arg)?),
                "--query-param" => options.query_param = Some(value(arg)?),
                "--api-base-url" => {
                    let url = https(arg, value(arg)?)?;
                    options.api_base_url = Some(url.trim_end_matches('/').to_owned());
                }
                "--sync" => options.sync = Some(value(arg)?),
                "--model" => options.model = Some(value(arg)?),
                "--list-path" => options.list_path = Some(value(arg)?),
                "--spec-only" => options.spec_only = true,
                flag if flag.starts_with('-') => {
                    return Err(format!(
                        "unknown option {flag}\nusage: {usage} (--help explains the options)"
                    ));
                }
                positional if id.is_none() => id = Some(positional.to_owned()),
                extra => return Err(format!("unexpected argument `{extra}`\nusage: {usage}")),
            }
        }
        options.id = id.ok_or_else(|| format!("the provider's id is missing\nusage: {usage}"))?;
        options.check()?;
        Ok(options)
    }

    /// Every problem of the options, so nothing is written from a half-valid command line.
    fn check(&self) -> Result<(), String> {
        if !is_kebab_case(&self.id) || self.id == "specs" {
            return Err(format!(
                "`{}` is not a provider id: ids are kebab-case, such as `acme-crm`",
                self.id
            ));
        }
        let oauth =
            self.authorization_url.is_some() || self.token_url.is_some() || !self.scopes.is_empty();
        if self.api_key && oauth {
            return Err("--authorization-url, --token-url and --scopes are OAuth facts; drop them or use --auth api_key's --header/--query-param".to_owned());
        }
        let key =
            self.header.is_some() || self.header_format.is_some() || self.query_param.is_some();
        if !self.api_key && key {
            return Err("--header, --header-format and --query-param say where an API key goes; add --auth api_key".to_owned());
        }
        if self.header_format.is_some() && self.header.is_none() {
            return Err("--header-format formats the --header; give --header too".to_owned());
        }
        if let Some(format) = &self.header_format
            && (!format.contains("{api_key}") || !one_line(format))
        {
            return Err(format!(
                "--header-format `{format}` must contain `{{api_key}}`, on one line without quotes"
            ));
        }
        for (option, value) in [
            ("--header", &self.header),
            ("--query-param", &self.query_param),
        ] {
            if let Some(value) = value
                && !is_token(value)
            {
                return Err(format!(
                    "{option} `{value}` must be a header or parameter name: letters, digits and `-`, `_`, `.`"
                ));
            }
        }
        if self.spec_only
            && (self.sync.is_some() || self.model.is_some() || self.list_path.is_some())
        {
            return Err("--sync, --model and --list-path describe a sync, which needs code; drop --spec-only".to_owned());
        }
        if let Some(sync) = &self.sync
            && !is_kebab_case(sync)
        {
            return Err(format!(
                "--sync `{sync}` must be kebab-case, such as `contacts`"
            ));
        }
        if let Some(model) = &self.model
            && !is_pascal_case(model)
        {
            return Err(format!(
                "--model `{model}` must be PascalCase, such as `Contact`"
            ));
        }
        if let Some(path) = &self.list_path
            && (!path.starts_with('/') || !one_line(path) || path.contains([' ', '?', '#']))
        {
            return Err(format!(
                "--list-path `{path}` must be a path below the API base URL, such as `/v1/contacts` (no query)"
            ));
        }
        if self
            .display_name
            .as_ref()
            .is_some_and(|name| name.trim().is_empty() || !one_line(name))
        {
            return Err("--display-name must be a non-empty name without quotes, backslashes or line breaks".to_owned());
        }
        if let Some(scope) = self
            .scopes
            .iter()
            .find(|s| s.contains(char::is_whitespace) || s.contains('"'))
        {
            return Err(format!("scope `{scope}` must be one word"));
        }
        Ok(())
    }

    /// The sync's name: `--sync`, or `items`.
    fn sync_name(&self) -> &str {
        self.sync.as_deref().unwrap_or("items")
    }

    /// The model's name: `--model`, or the sync's name in PascalCase without a final `s`.
    fn model_name(&self) -> String {
        self.model.clone().unwrap_or_else(|| {
            let name = type_name(self.sync_name());
            match name.strip_suffix('s') {
                Some(singular) if !singular.is_empty() => singular.to_owned(),
                _ => name,
            }
        })
    }
}

/// Text that fits between TOML's or Rust's double quotes as it is.
fn one_line(text: &str) -> bool {
    !text.contains(['"', '\\', '\n', '\r'])
}

/// A header or query parameter name as APIs write them.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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

/// The spec's rule for model names.
fn is_pascal_case(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
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
        create(&spec_file, &spec::spec(options))?;
        println!(
            "created {}\n\nnext steps (docs/adding-a-provider.md explains each):\n  \
             1. cargo xtask check-providers     # lists every blank left; fill each from the provider's docs\n  \
             2. enable it: [[providers]] spec_dir = \"<path to providers/specs>\" in the config, then add an integration",
            spec_file.display()
        );
        return Ok(());
    }
    // `create_dir` (not `_all`) fails if another run created it in the meantime.
    std::fs::create_dir(&crate_dir)
        .map_err(|e| format!("cannot create {}: {e}", crate_dir.display()))?;
    let mut rust = Vec::new();
    for (path, contents) in templates::crate_files(options) {
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
    let model = options.model_name();
    println!(
        "\nnext steps (docs/adding-a-provider.md explains each):\n  \
         1. cargo xtask check-providers       # lists every blank left; fill each from the provider's docs\n  \
         2. put a real entry of the list in tests/fixtures/{fixture}.json and map it in src/lib.rs\n  \
         3. cargo test -p plugboard-{id}        # mapping snapshots, conformance, the fake API\n  \
         4. enable it: [[providers]] builtin = \"{id}\" in the config, then add an integration\n  \
         5. cargo xtask plugins               # optional: build it as a plugin into target/plugins/",
        fixture = snake_case(&model),
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

/// `ContactGroup` → `contact_group`; `contact-groups` → `contact_groups`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(if c == '-' {
            '_'
        } else {
            c.to_ascii_lowercase()
        });
    }
    out
}

fn toml_string(text: &str) -> String {
    format!("{text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_options_are_checked_before_anything_is_written() {
        for id in ["Acme", "acme_crm", "acme-", "9acme", "acme--crm", "specs"] {
            let error = Options::parse(&[id]).unwrap_err();
            assert!(error.contains("is not a provider id"), "{id}: {error}");
        }
        for (args, expected) in [
            (
                &["acme", "--token-url", "http://127.0.0.1:4010/token"][..],
                "https://",
            ),
            (
                &["acme", "--auth", "api_key", "--scopes", "a"],
                "OAuth facts",
            ),
            (&["acme", "--header", "X-Key"], "add --auth api_key"),
            (
                &[
                    "acme",
                    "--auth",
                    "api_key",
                    "--header-format",
                    "Bearer {api_key}",
                ],
                "give --header too",
            ),
            (
                &[
                    "acme",
                    "--auth",
                    "api_key",
                    "--header",
                    "X-Key",
                    "--header-format",
                    "Bearer",
                ],
                "must contain `{api_key}`",
            ),
            (
                &["acme", "--auth", "api_key", "--header", "X Key"],
                "must be a header or parameter name",
            ),
            (
                &["acme", "--spec-only", "--sync", "contacts"],
                "drop --spec-only",
            ),
            (&["acme", "--sync", "Contacts"], "must be kebab-case"),
            (&["acme", "--model", "contact"], "must be PascalCase"),
            (
                &["acme", "--list-path", "contacts"],
                "must be a path below the API base URL",
            ),
            (
                &["acme", "--display-name", "Acme \"CRM\""],
                "without quotes",
            ),
            (&["acme", "--colour"], "unknown option --colour"),
        ] {
            let error = Options::parse(args).unwrap_err();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
        assert_eq!(type_name("acme-crm2"), "AcmeCrm2");
    }

    #[test]
    fn the_model_defaults_to_the_sync_in_the_singular() {
        let model = |args: &[&str]| Options::parse(args).unwrap().model_name();
        assert_eq!(model(&["acme"]), "Item");
        assert_eq!(model(&["acme", "--sync", "contact-groups"]), "ContactGroup");
        assert_eq!(model(&["acme", "--sync", "news"]), "New");
        assert_eq!(
            model(&["acme", "--sync", "news", "--model", "Story"]),
            "Story"
        );
        assert_eq!(snake_case("ContactGroup"), "contact_group");
    }

    /// Every option the help lists is one `parse` takes, and the other way round.
    #[test]
    fn the_help_lists_exactly_the_options_parse_takes() {
        for option in TASK.options.iter().filter(|o| o.flag.starts_with("--")) {
            let flag = option.flag.split(' ').next().unwrap();
            let mut args = vec!["acme", flag];
            if option.flag.contains(' ') {
                args.push(match flag {
                    "--auth" => "oauth2",
                    "--header-format" => continue,
                    flag if flag.ends_with("-url") => "https://acme.example",
                    "--list-path" => "/v1/x",
                    "--model" => "Thing",
                    "--sync" => "things",
                    _ => "x",
                });
            }
            if matches!(flag, "--header" | "--query-param") {
                args.extend(["--auth", "api_key"]);
            }
            let parsed = Options::parse(&args);
            assert!(parsed.is_ok(), "{args:?}: {parsed:?}");
        }
        let source = include_str!("mod.rs");
        let parse =
            &source[source.find("pub fn parse").unwrap()..source.find("fn check(").unwrap()];
        for taken in parse.split('"').filter(|s| {
            s.starts_with("--") && s[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-')
        }) {
            assert!(
                TASK.options
                    .iter()
                    .any(|o| o.flag.split(' ').next() == Some(taken)),
                "{taken} is parsed but not in the help"
            );
        }
    }

    /// The spec of an API-key provider takes where the key goes from the options, and leaves a
    /// blank the checks flag when none was given: the scaffold never guesses.
    #[test]
    fn where_the_key_goes_comes_from_options_or_is_a_blank() {
        let spec = |args: &[&str]| spec::spec(&Options::parse(args).unwrap());
        let blank = spec(&["acme", "--auth", "api_key"]);
        assert!(
            blank.contains(&format!("header = \"{TOKEN_BLANK}\"")),
            "{blank}"
        );
        assert!(!blank.contains("header_format ="), "{blank}");
        let given = spec(&[
            "acme",
            "--auth",
            "api_key",
            "--header",
            "Authorization",
            "--header-format",
            "Token {api_key}",
        ]);
        assert!(
            given.contains("header = \"Authorization\"\nheader_format = \"Token {api_key}\""),
            "{given}"
        );
        let query = spec(&["acme", "--auth", "api_key", "--query-param", "key"]);
        assert!(
            query.contains("query_param = \"key\"") && !query.contains("header ="),
            "{query}"
        );
    }
}
