//! The spec reference, `docs/provider-spec.md`, checked against the spec's types so that it
//! cannot go stale:
//!
//! - every table and key the types accept has its section and its row in the page, and a key
//!   limited to a few values (`mode`, `client_authentication`) names each of them in its row;
//! - every section and row of the page is a table or key the types accept;
//! - every ```` ```toml ```` example parses. One with a top-level `id` is a complete spec and is
//!   parsed as it is; any other is a fragment, merged into [`MINIMAL`] first (a fragment table
//!   that sets the tag, `mode` or `type`, replaces the table of that name, the others merge).
//!
//! The tables and keys come from serde itself ([`trace`]); nothing here lists them.
//!
//! What the page must look like for the check to read it:
//! - a heading whose first code span is a TOML table header starts that table's section:
//!   ``### `[api.retry]` ``, ``### `[[syncs]]` ``, ``### `[models.<Name>]` `` (any `<…>` stands
//!   for a name the spec author chooses). A table whose keys depend on its tag names the variant
//!   in a second code span: ``#### `[auth]` with `mode = "oauth2"` ``. The heading
//!   `Top-level keys` starts the section of the keys outside any table; any other heading ends
//!   a section;
//! - in a section, a table row whose first cell is a code span documents that key:
//!   ``| `pkce` | boolean | … |``.

use std::collections::BTreeSet;
use std::path::PathBuf;

use plugboard_core::ProviderSpec;

use page::Page;
use trace::TableId;

/// What a fragment example is merged into: the least a valid spec has.
const MINIMAL: &str = r#"
id = "example"
display_name = "Example"

[auth]
mode = "api_key"
header = "X-Api-Key"

[api]
base_url = "https://api.example.com"
"#;

const PAGE: &str = "docs/provider-spec.md";

fn page() -> Page {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(PAGE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{PAGE}, the spec reference, cannot be read: {e}"));
    Page::read(&text)
}

/// Fails with every problem at once, and says where the fix goes.
fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}; update {PAGE}:\n  - {}",
        problems.join("\n  - ")
    );
}

const DISAGREE: &str = "docs/provider-spec.md and the spec's types disagree";

#[test]
fn the_tracer_sees_into_tagged_tables() {
    let schema = trace::schema::<ProviderSpec>();
    let keys = |header: &str, variant: Option<&str>| {
        let id = TableId::new(header, variant);
        let keys = schema
            .tables
            .get(&id)
            .unwrap_or_else(|| panic!("no table {id}"));
        keys.keys().copied().collect::<Vec<_>>()
    };
    assert!(keys("", None).contains(&"display_name"));
    assert!(keys("[auth]", Some(r#"mode = "oauth2""#)).contains(&"pkce"));
    assert!(keys("[[auth.scopes]]", None).contains(&"admin_consent"));
    assert!(keys("[api.pagination.<name>]", Some(r#"type = "cursor""#)).contains(&"cursor_param"));
    let auth = &schema.tables[&TableId::new("[auth]", Some(r#"mode = "oauth2""#))];
    assert_eq!(
        auth["client_authentication"],
        ["form", "basic", "private_key_jwt"]
    );
    assert_eq!(schema.tags, BTreeSet::from(["mode", "type"]));
}

#[test]
fn the_page_documents_every_table_and_key_the_spec_accepts() {
    let schema = trace::schema::<ProviderSpec>();
    let page = page();
    let mut problems = Vec::new();
    for (table, keys) in &schema.tables {
        let Some(section) = page.sections.get(table) else {
            problems.push(format!("{table} has no section (a heading naming it)"));
            continue;
        };
        for (key, values) in keys {
            let Some(row) = section.rows.get(*key) else {
                problems.push(format!(
                    "{table}: key `{key}` has no row (section at line {})",
                    section.line
                ));
                continue;
            };
            for value in values {
                if !row.text.contains(&format!("\"{value}\"")) {
                    problems.push(format!(
                        "{table}: the row of `{key}` (line {}) does not name its value \"{value}\"",
                        row.line
                    ));
                }
            }
        }
    }
    assert_no_problems(DISAGREE, &problems);
}

#[test]
fn the_page_documents_no_table_or_key_the_spec_does_not_accept() {
    let schema = trace::schema::<ProviderSpec>();
    let page = page();
    let mut problems = Vec::new();
    problems.extend(page.problems.iter().cloned());
    for (table, section) in &page.sections {
        let Some(keys) = schema.tables.get(table) else {
            problems.push(format!(
                "line {}: {table} is not a table the spec accepts",
                section.line
            ));
            continue;
        };
        for (key, row) in &section.rows {
            if !keys.contains_key(key.as_str()) {
                problems.push(format!("line {}: {table} has no key `{key}`", row.line));
            }
        }
    }
    assert_no_problems(DISAGREE, &problems);
}

#[test]
fn every_toml_example_in_the_page_parses() {
    let tags = trace::schema::<ProviderSpec>().tags;
    let page = page();
    assert!(
        page.examples.iter().any(|e| e.is_complete()),
        "{PAGE} should show a complete spec"
    );
    let mut problems = Vec::new();
    for example in &page.examples {
        let (kind, text) = match example.is_complete() {
            true => ("the complete spec", example.text.clone()),
            false => match embed(&example.text, &tags) {
                Ok(text) => (
                    "the fragment, merged into MINIMAL (positions are in the merged text),",
                    text,
                ),
                Err(e) => {
                    let e = e.to_string().replace('\n', " ");
                    problems.push(format!(
                        "line {}: the example is not TOML: {e}",
                        example.line
                    ));
                    continue;
                }
            },
        };
        if let Err(e) = ProviderSpec::parse(PAGE, &text) {
            problems.push(format!(
                "line {}: {kind} does not parse: {}",
                example.line,
                e.problems.join("; ")
            ));
        }
    }
    assert_no_problems("examples in docs/provider-spec.md do not parse", &problems);
}

/// A fragment merged into [`MINIMAL`], as TOML text.
fn embed(fragment: &str, tags: &BTreeSet<&str>) -> Result<String, toml::de::Error> {
    let mut spec: toml::Table = MINIMAL.parse().expect("MINIMAL is TOML");
    merge(&mut spec, fragment.parse()?, tags);
    Ok(toml::to_string(&spec).expect("a table serialises"))
}

/// Tables merge key by key, except that one setting a tag replaces the table (the keys of
/// `mode = "api_key"` mean nothing to `mode = "oauth2"`); any other value replaces.
fn merge(into: &mut toml::Table, from: toml::Table, tags: &BTreeSet<&str>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(old)), toml::Value::Table(new))
                if !new.keys().any(|k| tags.contains(k.as_str())) =>
            {
                merge(old, new, tags);
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

mod page;

mod trace;
