//! The provider conformance harness: the checks every provider passes, so a new provider gets
//! the same guarantees as the first one without writing them again.
//!
//! - [`check_spec`]: a spec file is valid, spec-only specs ask for no code, and no blank the
//!   scaffold (`cargo xtask new-provider`) left is still there.
//! - [`Conformance`]: a Rust provider runs every sync and action it declares against a
//!   [`Script`] of canned HTTP responses, through a context that records what it is asked. A
//!   declared name without code, a failed run, a record without an id or of an undeclared model,
//!   a request the script does not answer and a crawl begun but never ended are problems.
//!
//! A provider's `tests/conformance.rs` builds a [`Script`]: [`Script::respond`] answers one
//! request (several calls to the same request answer in turn), [`Script::pages`] answers a list
//! in pages shaped as a pagination preset of the spec says, and [`Script::action_input`] gives
//! an action its input. [`Report::calls`] then shows what each sync and action asked of its
//! context ([`Call`]), for assertions of its own.
//!
//! Every problem names the provider and the key, and all are reported at once. No network and
//! no runtime: the scripted context answers at once, so a tiny executor ([`block_on`]) is
//! enough, and provider crates can use this harness in their tests without tokio.

mod context;
mod page;
mod spec;

pub use context::{Call, ScriptedContext};
pub use page::page_body;
pub use spec::{BLANK, PLACEHOLDER_HOST, TOKEN_BLANK, check_spec};

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use plugboard_core::spec::PaginationSpec;
use plugboard_core::{ErrorKind, HttpRequest, Provider, ProviderSpec, Record};
use serde_json::Value;

/// Canned answers for a provider's requests, and the input each action runs with.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// `(method, path)` → the answers, served in order; the last one repeats.
    responses: BTreeMap<(String, String), Vec<(u16, Value)>>,
    inputs: BTreeMap<String, Value>,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `method path` with `status` and the JSON `body`. `path` is below the API base
    /// URL, without the query; an absolute URL below the base URL (a next link) matches its
    /// path. Several answers to one request are served in order, so a script can page.
    pub fn respond(mut self, method: &str, path: &str, status: u16, body: Value) -> Self {
        self.responses
            .entry((method.to_ascii_uppercase(), path.to_owned()))
            .or_default()
            .push((status, body));
        self
    }

    /// Answers `GET path` with `pages` in turn, each body shaped as the spec's pagination
    /// preset `preset` says: the entries where its `records` pointer points, and a cursor
    /// (`page-2`, …) or a next link below the API base URL pointing at the next page; the last
    /// page has none. A sync that follows the preset reads every page and ends its crawl.
    ///
    /// # Panics
    /// If the spec has no such preset: the test names one the provider does not declare.
    pub fn pages(
        mut self,
        spec: &ProviderSpec,
        preset: &str,
        path: &str,
        pages: Vec<Vec<Value>>,
    ) -> Self {
        let preset = spec.pagination(preset).unwrap_or_else(|| {
            panic!(
                "the spec of `{}` declares no api.pagination.{preset}",
                spec.id
            )
        });
        let count = pages.len();
        for (i, entries) in pages.into_iter().enumerate() {
            let next = (i + 1 < count).then(|| match preset {
                PaginationSpec::Cursor { .. } => format!("page-{}", i + 2),
                PaginationSpec::NextLink { .. } => {
                    format!("{}{path}?page={}", spec.api.base_url, i + 2)
                }
            });
            self = self.respond("GET", path, 200, page_body(preset, entries, next));
        }
        self
    }

    /// The input the action runs with; `{}` when not set.
    pub fn action_input(mut self, action: &str, input: Value) -> Self {
        self.inputs.insert(action.to_owned(), input);
        self
    }
}

/// The checks for one Rust provider.
pub struct Conformance<'a> {
    provider: &'a dyn Provider,
    script: Script,
}

/// What a run of the checks found.
#[derive(Debug, Default)]
pub struct Report {
    /// Every problem, each naming the provider and the sync, action or key.
    pub problems: Vec<String>,
    /// Per sync or action (``sync `people` ``, ``action `search-people` ``, the name in
    /// backticks): the context calls it made.
    pub calls: BTreeMap<String, Vec<Call>>,
}

impl Report {
    /// Panics listing every problem, if there is any.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(
            self.problems.is_empty(),
            "the provider does not conform:\n  - {}",
            self.problems.join("\n  - ")
        );
    }
}

impl<'a> Conformance<'a> {
    pub fn new(provider: &'a dyn Provider, script: Script) -> Self {
        Conformance { provider, script }
    }

    /// Runs every declared sync and action once, each against a fresh scripted context.
    pub fn run(&self) -> Report {
        let spec = self.provider.spec();
        let mut report = Report::default();
        for sync in &spec.syncs {
            let label = format!("sync `{}`", sync.name);
            let ctx = ScriptedContext::new(spec, &self.script);
            let result = block_on(self.provider.run_sync(&sync.name, &ctx));
            let succeeded = result.is_ok();
            let mut problems = outcome_problems(result.err(), "syncs");
            let saved = ctx.saved();
            if saved.values().all(Vec::is_empty) {
                problems.push(
                    "saved no records; script a response with at least one record so the \
                     records can be checked"
                        .to_owned(),
                );
            }
            for (model, records) in &saved {
                problems.extend(record_problems(model, records, &sync.model));
            }
            problems.extend(ctx.unanswered());
            if succeeded {
                problems.extend(unended_crawls(&ctx.calls()));
            }
            report.add(&spec.id, &label, problems, ctx.calls());
        }
        for action in &spec.actions {
            let label = format!("action `{}`", action.name);
            let ctx = ScriptedContext::new(spec, &self.script);
            let input = self
                .script
                .inputs
                .get(&action.name)
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default()));
            let result = block_on(self.provider.run_action(&action.name, input, &ctx));
            let mut problems = outcome_problems(result.err(), "actions");
            problems.extend(ctx.unanswered());
            report.add(&spec.id, &label, problems, ctx.calls());
        }
        report
    }
}

impl Report {
    fn add(&mut self, provider: &str, label: &str, problems: Vec<String>, calls: Vec<Call>) {
        self.problems.extend(
            problems
                .into_iter()
                .map(|p| format!("provider `{provider}`, {label}: {p}")),
        );
        self.calls.insert(label.to_owned(), calls);
    }
}

fn outcome_problems(error: Option<plugboard_core::ProviderError>, kind: &str) -> Vec<String> {
    match error {
        None => Vec::new(),
        Some(e) if e.kind == ErrorKind::NotFound => vec![format!(
            "declared under [[{kind}]] but the provider has no code for it ({e})"
        )],
        Some(e) => vec![format!("failed against the scripted responses: {e}")],
    }
}

/// A crawl begun and not ended by a run that succeeded: the sync stopped before the last page
/// (it never follows the pages), so its deletions would never happen.
fn unended_crawls(calls: &[Call]) -> Vec<String> {
    let mut open: Vec<&str> = Vec::new();
    for call in calls {
        match call {
            Call::BeginCrawl(model) => open.push(model),
            Call::EndCrawl(model) => open.retain(|m| m != model),
            _ => {}
        }
    }
    open.into_iter()
        .map(|model| {
            format!(
                "began a crawl of `{model}` and never ended it: read every page the script \
                 answers (script the last page without a next cursor or link) and call end_crawl"
            )
        })
        .collect()
}

fn record_problems(model: &str, records: &[Record], declared: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if model != declared {
        problems.push(format!(
            "saved records of model `{model}`, but the sync declares model `{declared}`"
        ));
    }
    let blank = records.iter().filter(|r| r.id.trim().is_empty()).count();
    if blank > 0 {
        problems.push(format!(
            "{blank} of {} `{model}` records have an empty id; every record needs the provider's id",
            records.len()
        ));
    }
    problems
}

/// Runs a future that never waits on anything but the scripted context, which answers at once.
///
/// Provider code reaches the world only through the context, so its futures complete on the
/// first polls; one that keeps answering `Pending` waits on something else, which a provider
/// must not do, and fails the check rather than hanging it.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    for _ in 0..10_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("the provider waited on something other than its context");
}

/// The request's path below `base_url` (a path stays as it is), without its query.
fn path_of(request: &HttpRequest, base_url: &str) -> String {
    let url = request.url.strip_prefix(base_url).unwrap_or(&request.url);
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}
