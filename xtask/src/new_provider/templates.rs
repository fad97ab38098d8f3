//! The files of a scaffolded Rust provider crate, filled from the options.

use std::path::PathBuf;

use super::{BLANK, Options, snake_case, spec, type_name};

/// The files of a Rust provider crate, by path below its directory.
pub fn crate_files(options: &Options) -> Vec<(PathBuf, String)> {
    let id = &options.id;
    let name = options.display_name.clone().unwrap_or_else(|| id.clone());
    let model = options.model_name();
    let model_snake = snake_case(&model);
    let list_path = options
        .list_path
        .clone()
        .unwrap_or_else(|| format!("/{BLANK}"));
    let fill = |template: &str| {
        template
            .replace("{{id}}", id)
            .replace("{{name}}", &name)
            .replace("{{crate}}", &format!("plugboard_{}", id.replace('-', "_")))
            .replace("{{Type}}", &type_name(id))
            .replace("{{sync}}", options.sync_name())
            .replace("{{sync_fn}}", &snake_case(options.sync_name()))
            .replace("{{Model}}", &model)
            .replace("{{model}}", &model_snake)
            .replace("{{list_path}}", &list_path)
    };
    let files = [
        ("Cargo.toml", CARGO_TOML),
        ("src/lib.rs", LIB_RS),
        ("tests/fixtures/{{model}}.json", ENTRY_JSON),
        ("tests/mapping.rs", MAPPING_RS),
        (
            "tests/snapshots/mapping__an_entry_becomes_a_record_with_its_id.snap",
            MAPPING_SNAP,
        ),
        ("tests/conformance.rs", CONFORMANCE_RS),
        ("tests/fake_api.rs", FAKE_API_RS),
        ("README.md", README_MD),
    ];
    let mut out: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(path, template)| (PathBuf::from(fill(path)), fill(template)))
        .collect();
    out.push((PathBuf::from("provider.toml"), spec::spec(options)));
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
# The test kit: a context doing real HTTP, and a small fake API to run it against.
plugboard-core = { workspace = true, features = ["testkit"] }

[lints]
workspace = true
"#;

const LIB_RS: &str = r#"//! Plugboard provider for {{name}}.
//!
//! The facts (auth, API base URL, pagination) are data in `provider.toml`; this crate adds the
//! logic the spec cannot express: the `{{sync}}` sync, a crawl of the API's list into `{{Model}}`
//! records that resumes where an interrupted run stopped. Like every provider it is pure logic:
//! all I/O goes through the host's [`Context`], which adds credentials, retries and limits.
//! Built with the `plugin` feature, its cdylib is a Plugboard plugin exporting this provider.

use async_trait::async_trait;
use plugboard_core::provider::unknown;
use plugboard_core::spec::{PaginationSpec, SpecError};
use plugboard_core::{
    Context, HttpRequest, Pager, Provider, ProviderError, ProviderSpec, Record, SyncMode,
};
use serde_json::{Value, json};

/// Where the spec lives in the repository; error messages name it.
pub const SPEC_PATH: &str = "providers/{{id}}/provider.toml";

const SPEC_TEXT: &str = include_str!("../provider.toml");

/// The pagination preset the sync reads lists with.
pub const PAGINATION: &str = "default";
/// The list the `{{sync}}` sync pages through, below the API base URL.
pub const LIST_PATH: &str = "{{list_path}}";
/// The model the `{{sync}}` sync writes.
pub const MODEL: &str = "{{Model}}";

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
            "{{sync}}" => sync_{{sync_fn}}(ctx, &self.pagination).await,
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

/// The `{{sync}}` sync: a crawl of the whole list, page by page. The host's crawl bookkeeping
/// turns "no longer listed" into deletes once the crawl has read the last page. After every
/// page the request for the next one is saved as the checkpoint, so a run that stops half-way
/// (a crash, a deploy, an outage) is continued by the next run instead of starting over, and
/// nothing is deleted until a crawl has really seen the last page.
async fn sync_{{sync_fn}}(ctx: &dyn Context, preset: &PaginationSpec) -> Result<(), ProviderError> {
    let mut pager = match resume_from(ctx).await? {
        Some(next) => {
            ctx.info("resuming the crawl where the last run stopped");
            Pager::resume(ctx, preset, next)
        }
        None => {
            ctx.begin_crawl(MODEL).await?;
            Pager::new(ctx, preset, HttpRequest::get(LIST_PATH))
        }
    };
    let mut saved = 0;
    while let Some(page) = pager.next_page().await? {
        let records: Vec<Record> = page.records.iter().filter_map({{model}}_record).collect();
        saved += records.len();
        if !records.is_empty() {
            ctx.save_records(MODEL, records).await?;
        }
        // On the last page the crawl ends before the checkpoint says so: if the run stops in
        // between, the next run reads the last page again and ends the crawl itself.
        if page.next.is_none() {
            let deleted = ctx.end_crawl(MODEL).await?;
            ctx.info(&format!("crawl complete: {saved} saved by this run, {deleted} deleted"));
        }
        ctx.set_checkpoint(json!({ "next": page.next })).await?;
    }
    Ok(())
}

/// The next page of an unfinished crawl, from the checkpoint. A full run (a resync), a crawl
/// that ended, and a checkpoint this version cannot read all start a new crawl, which is always
/// correct.
async fn resume_from(ctx: &dyn Context) -> Result<Option<HttpRequest>, ProviderError> {
    if ctx.run_info().mode == SyncMode::Full {
        return Ok(None);
    }
    let Some(checkpoint) = ctx.checkpoint().await? else {
        return Ok(None);
    };
    Ok(serde_json::from_value(checkpoint["next"].clone()).unwrap_or_else(|e| {
        ctx.warn(&format!("ignoring a checkpoint this version cannot read ({e})"));
        None
    }))
}

/// One entry of the list as a record: the provider's id, byte for byte, and the entry as the
/// API sent it. An entry without an id cannot be tracked, so it is skipped.
pub fn {{model}}_record(entry: &Value) -> Option<Record> {
    let id = match &entry["id"] {
        Value::String(id) if !id.is_empty() => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    Some(Record::new(id, entry.clone()))
}
"#;

const ENTRY_JSON: &str = r#"{
  "id": "{{model}}-1",
  "name": "An example {{model}}"
}
"#;

const MAPPING_RS: &str = r#"//! List entries to records, one fixture per shape the API sends. The snapshots are the records'
//! JSON: a change in them is a change in the data contract and needs a deliberate review.

use plugboard_core::Record;
use {{crate}}::{{model}}_record;
use serde_json::Value;

fn record(fixture: &str) -> Record {
    let path = format!(
        "{}/tests/fixtures/{fixture}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let entry: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    {{model}}_record(&entry).unwrap_or_else(|| panic!("{fixture} has an id"))
}

#[test]
fn an_entry_becomes_a_record_with_its_id() {
    insta::assert_json_snapshot!(record("{{model}}"));
}

#[test]
fn an_entry_without_an_id_is_skipped() {
    assert_eq!({{model}}_record(&serde_json::json!({"name": "no id"})), None);
}
"#;

const MAPPING_SNAP: &str = r#"---
source: providers/{{id}}/tests/mapping.rs
expression: "record(\"{{model}}\")"
---
{
  "id": "{{model}}-1",
  "data": {
    "id": "{{model}}-1",
    "name": "An example {{model}}"
  }
}
"#;

const CONFORMANCE_RS: &str = r#"//! The conformance harness: every declared sync and action runs against canned answers (the
//! fixtures, in two pages shaped as the spec's pagination preset says), saves records with ids
//! of the declared model, asks only for what is scripted and ends the crawls it begins.

use plugboard_conformance::{Call, Conformance, Script};
use {{crate}}::{LIST_PATH, PAGINATION, {{Type}}};
use plugboard_core::Provider;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_sync_and_action_conforms() {
    let provider = {{Type}}::new().unwrap();
    let mut second = fixture("{{model}}");
    second["id"] = json!("{{model}}-2");
    let script = Script::new().pages(
        provider.spec(),
        PAGINATION,
        LIST_PATH,
        vec![vec![fixture("{{model}}")], vec![second]],
    );
    let report = Conformance::new(&provider, script).run();
    report.assert_ok();

    // Both pages read, each followed by its checkpoint.
    let calls = &report.calls["sync `{{sync}}`"];
    let requests = calls.iter().filter(|c| matches!(c, Call::Http(_))).count();
    let checkpoints = calls.iter().filter(|c| matches!(c, Call::SetCheckpoint(_))).count();
    assert_eq!((requests, checkpoints), (2, 2), "{calls:#?}");
}
"#;

const FAKE_API_RS: &str = r#"//! The sync against a small fake of the API over real HTTP, through the test kit's context, which
//! keeps records, crawls and checkpoints as the host does: the whole list over several pages, a
//! run interrupted half-way and resumed, and an entry removed from the API becoming a delete.
//!
//! The fake pages the list as the spec's pagination preset says. Once the preset holds the real
//! API's pointers, make `page` answer literally what the API's documentation shows, so this test
//! checks the preset against the API rather than against itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use plugboard_core::spec::PaginationSpec;
use plugboard_core::testkit::{FakeApi, FakeRequest, FakeResponse, TestContext, block_on};
use plugboard_core::{Provider, SyncMode};
use {{crate}}::{LIST_PATH, MODEL, PAGINATION, {{Type}}};
use serde_json::{Value, json};

/// Entries per page.
const PAGE_SIZE: usize = 2;

type Entries = Arc<Mutex<BTreeMap<String, Value>>>;

/// One page of the list: `PAGE_SIZE` entries from the one the cursor names, in id order.
fn page(preset: &PaginationSpec, entries: &Entries, request: &FakeRequest) -> FakeResponse {
    let PaginationSpec::Cursor { cursor_param, .. } = preset else {
        panic!("this fake pages with a cursor; make it answer as the API does");
    };
    if request.path != LIST_PATH {
        return FakeResponse::json(404, json!({"error": "not found"}));
    }
    let entries: Vec<Value> = entries.lock().unwrap().values().cloned().collect();
    let start = request.query(cursor_param).map_or(0, |c| c.parse().unwrap());
    let end = (start + PAGE_SIZE).min(entries.len());
    let next = (end < entries.len()).then(|| end.to_string());
    let body = plugboard_conformance::page_body(preset, entries[start..end].to_vec(), next);
    FakeResponse::json(200, body)
}

fn entry(n: u32) -> (String, Value) {
    let id = format!("{{model}}-{n}");
    (id.clone(), json!({"id": id, "name": format!("{{Model}} {n}")}))
}

#[test]
fn the_sync_reads_every_page_resumes_and_deletes() {
    let provider = {{Type}}::new().unwrap();
    let preset = provider.spec().pagination(PAGINATION).unwrap().clone();
    let entries: Entries = Arc::new(Mutex::new((1..=5).map(entry).collect()));
    let served = entries.clone();
    let api = FakeApi::start(move |request| page(&preset, &served, request));
    let ctx = TestContext::against(provider.spec(), api.url());
    block_on(async {
        // The first run stops while saving its second page, as a crash would.
        ctx.fail_saves_after(1);
        provider.run_sync("{{sync}}", &ctx).await.unwrap_err();
        assert!(ctx.crawl_in_progress(MODEL));
        assert_eq!(ctx.records(MODEL).len(), PAGE_SIZE);

        // The next run resumes at the second page: three pages read in all, one of them twice.
        ctx.start_run(SyncMode::Incremental, None);
        provider.run_sync("{{sync}}", &ctx).await.unwrap();
        assert_eq!(ctx.records(MODEL).len(), 5);
        assert!(!ctx.crawl_in_progress(MODEL));
        assert_eq!(api.requests(), 4);

        // An entry gone from the API is deleted by the next crawl.
        entries.lock().unwrap().remove("{{model}}-3");
        ctx.start_run(SyncMode::Incremental, None);
        provider.run_sync("{{sync}}", &ctx).await.unwrap();
        assert_eq!(ctx.deleted_ids(MODEL), ["{{model}}-3"]);
        assert_eq!(ctx.records(MODEL).len(), 4);
    });
}
"#;

const README_MD: &str = r#"# {{name}}

The Plugboard provider `{{id}}`, written by `cargo xtask new-provider`.

- `provider.toml`: the facts (auth, scopes, API base URL, account, pagination, models, syncs).
  Fill in every `TODO(provider-author)` and every `todo.invalid` URL; `cargo xtask
  check-providers` lists those left. `docs/provider-spec.md` explains every key.
- `src/lib.rs`: the `{{sync}}` sync, written against the `Context`, resumable page by page.
- `tests/`: fixture-driven snapshot tests (`mapping.rs`), the conformance harness
  (`conformance.rs`) and the sync against a small fake of the API (`fake_api.rs`):
  `cargo test -p plugboard-{{id}}`.

The guide is `docs/adding-a-provider.md`.
"#;
