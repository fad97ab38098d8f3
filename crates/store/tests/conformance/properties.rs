//! Properties of records over generated histories, against the real store (every backend):
//! the diff of saves, deletions and crawls against a model a few lines long, and paging by
//! cursor while records are written between pages.
//!
//! proptest generates and shrinks cases on a blocking thread while each case runs on the
//! test's runtime; every case works on a model of its own in one store, so no case sees
//! another's records. A failing case's seed is kept in `tests/proptest-regressions/` and
//! tried first from then on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Duration;
use futures::future::BoxFuture;
use plugboard_store::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

use crate::support::*;

/// Runs a property against the store: `sqlite_cases` cases on SQLite, a quarter as many on
/// PostgreSQL, whose every statement is a round trip.
async fn check<S, F>(b: &Backend, sqlite_cases: u32, strategy: S, test: F)
where
    S: Strategy + Send + 'static,
    F: Fn(
            Arc<dyn Store>,
            String,
            String,
            S::Value,
        ) -> BoxFuture<'static, Result<(), TestCaseError>>
        + Send
        + 'static,
{
    let cases = match b {
        Backend::Sqlite { .. } => sqlite_cases,
        Backend::Postgres { .. } => sqlite_cases / 4,
    };
    let (store, connection) = with_connection(b).await;
    let runtime = tokio::runtime::Handle::current();
    let models = AtomicU32::new(0);
    let run = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases,
            source_file: Some(file!()),
            failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
                "proptest-regressions",
            ))),
            ..Config::default()
        });
        let outcome = runner.run(&strategy, |value| {
            let model = format!("Model{}", models.fetch_add(1, Ordering::Relaxed));
            runtime.block_on(test(store.clone(), connection.clone(), model, value))
        });
        if let Err(failure) = outcome {
            panic!("{failure}\n{runner}");
        }
    });
    if let Err(failed) = run.await {
        std::panic::resume_unwind(failed.into_panic());
    }
}

fn store_error(e: StoreError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Provider ids, some of them awkward: NUL, quotes, escapes, other scripts, separators.
const IDS: [&str; 8] = ["a", "b", "c", "a\0b", "é\"\\", "AAMk+/=", "😀", "x:y "];

fn record(id: &str, n: u32) -> RecordJson<'static> {
    rec(id, i64::from(n))
}

/// Every record of the model as stored: id → (n, deleted, last action).
async fn stored(
    store: &Arc<dyn Store>,
    connection: &str,
    model: &str,
) -> Result<BTreeMap<String, (u32, bool, RecordAction)>, TestCaseError> {
    let page = store
        .records(&RecordQuery {
            model: model.to_owned(),
            limit: MAX_RECORDS_LIMIT,
            ..query(connection)
        })
        .await
        .map_err(store_error)?;
    Ok(page
        .records
        .into_iter()
        .map(|r| {
            let n = r.data["n"].as_u64().unwrap() as u32;
            (r.id, (n, r.deleted_at.is_some(), r.last_action))
        })
        .collect())
}

/// One step of a sync's history.
#[derive(Debug, Clone)]
enum Step {
    /// A batch of (id, value), duplicates and all.
    Save(Vec<(usize, u32)>),
    Delete(Vec<usize>),
    BeginCrawl,
    EndCrawl,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => prop::collection::vec((0..IDS.len(), 0u32..3), 0..7).prop_map(Step::Save),
        1 => prop::collection::vec(0..IDS.len(), 0..4).prop_map(Step::Delete),
        2 => Just(Step::BeginCrawl),
        2 => Just(Step::EndCrawl),
    ]
}

/// What the store must do, as simply as it can be said.
#[derive(Debug, Default)]
struct Model {
    /// id → (value, deleted, last action).
    records: BTreeMap<String, (u32, bool, RecordAction)>,
    /// The ids seen by the crawl in progress.
    crawl: Option<BTreeSet<String>>,
}

impl Model {
    fn save(&mut self, batch: &[(usize, u32)]) -> SaveOutcome {
        // The last save of an id in a batch wins.
        let batch: BTreeMap<&str, u32> = batch.iter().map(|&(id, n)| (IDS[id], n)).collect();
        let mut outcome = SaveOutcome::default();
        for (id, n) in batch {
            match self.records.get(id) {
                None | Some((_, true, _)) => {
                    outcome.added += 1;
                    self.records
                        .insert(id.to_owned(), (n, false, RecordAction::Added));
                }
                Some(&(old, false, _)) if old != n => {
                    outcome.updated += 1;
                    self.records
                        .insert(id.to_owned(), (n, false, RecordAction::Updated));
                }
                Some(_) => outcome.unchanged += 1,
            }
            if let Some(seen) = &mut self.crawl {
                seen.insert(id.to_owned());
            }
        }
        outcome
    }

    fn delete(&mut self, ids: impl IntoIterator<Item = String>) -> u64 {
        let mut deleted = 0;
        for id in ids {
            if let Some(record) = self.records.get_mut(&id)
                && !record.1
            {
                *record = (record.0, true, RecordAction::Deleted);
                deleted += 1;
            }
        }
        deleted
    }

    fn end_crawl(&mut self) -> Option<u64> {
        let seen = self.crawl.take()?;
        let unseen: Vec<String> = self
            .records
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        Some(self.delete(unseen))
    }
}

/// Any history of saves (with duplicates, changes and unchanged records), deletions and
/// crawls, ended or abandoned: each step answers what the model answers and leaves the
/// records as the model has them; so nothing is deleted but by a deletion or by the end of a
/// crawl, of what that crawl did not see.
pub async fn the_record_diff_follows_the_model(b: &Backend) {
    let steps = prop::collection::vec(step(), 1..14);
    check(b, 256, steps, |store, c, model_name, steps| {
        Box::pin(async move {
            let now = Utc::now();
            let mut model = Model::default();
            for (n, step) in steps.iter().enumerate() {
                let at = format!("step {n} ({step:?})");
                match step {
                    Step::Save(batch) => {
                        let records = batch.iter().map(|&(id, v)| record(IDS[id], v)).collect();
                        let saved = store.save_records(&c, &model_name, records, now).await;
                        prop_assert_eq!(saved.map_err(store_error)?, model.save(batch), "{}", at);
                    }
                    Step::Delete(ids) => {
                        let ids: Vec<String> = ids.iter().map(|&id| IDS[id].to_owned()).collect();
                        let deleted = store.delete_records(&c, &model_name, &ids, now).await;
                        let distinct: BTreeSet<String> = ids.into_iter().collect();
                        prop_assert_eq!(
                            deleted.map_err(store_error)?,
                            model.delete(distinct),
                            "{}",
                            at
                        );
                    }
                    Step::BeginCrawl => {
                        store
                            .begin_crawl(&c, &model_name)
                            .await
                            .map_err(store_error)?;
                        model.crawl = Some(BTreeSet::new());
                    }
                    Step::EndCrawl => {
                        let ended = store.end_crawl(&c, &model_name, now).await;
                        prop_assert_eq!(ended.map_err(store_error)?, model.end_crawl(), "{}", at);
                    }
                }
                prop_assert_eq!(
                    &stored(&store, &c, &model_name).await?,
                    &model.records,
                    "after {}",
                    at
                );
            }
            let counts = store.record_counts(&c).await.map_err(store_error)?;
            let counted = counts.iter().find(|count| count.model == model_name);
            let deleted = model.records.values().filter(|r| r.1).count() as u64;
            let live = model.records.len() as u64 - deleted;
            prop_assert_eq!(
                counted.map_or((0, 0), |c| (c.live, c.deleted)),
                (live, deleted)
            );
            Ok(())
        })
    })
    .await;
}

/// A write between two pages of a listing.
#[derive(Debug, Clone)]
enum Write {
    /// Ids saved: with new data (`true`) or with the data they have.
    Save(BTreeMap<usize, bool>),
    Delete(BTreeSet<usize>),
}

/// Ids for paging: enough for several pages, of any text.
const PAGED: usize = 14;

fn paged_id(n: usize) -> String {
    match n {
        0 => "a\0".to_owned(),
        1 => "😀".to_owned(),
        2 => "Z:z".to_owned(),
        n => format!("r{n:02}"),
    }
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        3 => prop::collection::btree_map(0..PAGED, any::<bool>(), 1..4).prop_map(Write::Save),
        1 => prop::collection::btree_set(0..PAGED, 1..3).prop_map(Write::Delete),
    ]
}

#[derive(Debug, Clone)]
struct Listing {
    /// Batches saved before the listing begins: new ids, or existing ones with new data.
    initial: Vec<BTreeSet<usize>>,
    newest_first: bool,
    /// Page sizes, taken in turn.
    limits: Vec<u32>,
    scan_limit: Option<u32>,
    /// One after each page, until none are left; each with its clock, which may go back.
    writes: Vec<(Write, i64)>,
}

fn listing() -> impl Strategy<Value = Listing> {
    (
        prop::collection::vec(prop::collection::btree_set(0..PAGED, 1..8), 1..4),
        any::<bool>(),
        prop::collection::vec(1u32..5, 1..4),
        prop::option::of(1u32..6),
        prop::collection::vec((write(), -3600i64..60), 0..8),
    )
        .prop_map(
            |(initial, newest_first, limits, scan_limit, writes)| Listing {
                initial,
                newest_first,
                limits,
                scan_limit,
                writes,
            },
        )
}

/// A record as the model has it: its data, whether deleted, and a version that every change
/// moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    n: u32,
    deleted: bool,
    version: u32,
}

/// A listing paged by cursor (each passed through its text, as callers hold it) while
/// records are added, changed, saved unchanged and deleted between pages, with clocks that
/// go back: its cursors only move forward; it never lists a version of a record twice;
/// oldest first, it ends having listed every record at its latest version (none skipped);
/// newest first, it lists each record at most once, as it was when the listing began, and
/// every record not written since.
pub async fn paging_skips_and_repeats_nothing_while_records_change(b: &Backend) {
    check(b, 256, listing(), |store, c, model_name, listing| {
        Box::pin(async move {
            let start = Utc::now();
            let mut model: BTreeMap<String, Version> = BTreeMap::new();
            let mut counter = 0u32;
            let mut apply = |model: &mut BTreeMap<String, Version>,
                             id: String,
                             n: Option<u32>,
                             deleted: bool| {
                let version = model.get(&id).map_or(0, |v| v.version + 1);
                let n = n.unwrap_or_else(|| {
                    counter += 1;
                    counter
                });
                model.insert(
                    id,
                    Version {
                        n,
                        deleted,
                        version,
                    },
                );
                n
            };
            for batch in &listing.initial {
                let mut records = Vec::new();
                for &id in batch {
                    let n = apply(&mut model, paged_id(id), None, false);
                    records.push(record(&paged_id(id), n));
                }
                store
                    .save_records(&c, &model_name, records, start)
                    .await
                    .map_err(store_error)?;
            }
            let at_start = model.clone();

            let mut listed: Vec<(String, u32)> = Vec::new();
            let mut cursors: Vec<RecordCursor> = Vec::new();
            let mut after: Option<RecordCursor> = None;
            let mut writes = listing.writes.iter();
            for page_number in 0.. {
                prop_assert!(page_number < 200, "the listing does not end");
                let limit = listing.limits[page_number % listing.limits.len()];
                let page = store
                    .records(&RecordQuery {
                        model: model_name.clone(),
                        after: after.take(),
                        limit,
                        newest_first: listing.newest_first,
                        scan_limit: listing.scan_limit,
                        ..query(&c)
                    })
                    .await
                    .map_err(store_error)?;
                prop_assert!(page.records.len() <= limit as usize);
                for r in &page.records {
                    let Some(now) = model.get(&r.id) else {
                        return Err(TestCaseError::fail(format!("unknown record {:?}", r.id)));
                    };
                    let n = r.data["n"].as_u64().unwrap() as u32;
                    prop_assert_eq!(
                        (n, r.deleted_at.is_some()),
                        (now.n, now.deleted),
                        "{:?}",
                        r.id
                    );
                    listed.push((r.id.clone(), now.version));
                    cursors.push(r.cursor.clone());
                }
                let Some(next) = page.next else { break };
                after = Some(RecordCursor::decode(&next.encode()).unwrap());

                if let Some((write, offset)) = writes.next() {
                    let now = start + Duration::seconds(*offset);
                    match write {
                        Write::Save(ids) => {
                            let mut records = Vec::new();
                            for (&id, &changed) in ids {
                                let id = paged_id(id);
                                let n = match model.get(&id).copied() {
                                    // Saved with the data it has: a live record is left as it
                                    // is, a deleted one comes back.
                                    Some(v) if !changed && !v.deleted => v.n,
                                    Some(v) if !changed => {
                                        apply(&mut model, id.clone(), Some(v.n), false)
                                    }
                                    _ => apply(&mut model, id.clone(), None, false),
                                };
                                records.push(record(&id, n));
                            }
                            store
                                .save_records(&c, &model_name, records, now)
                                .await
                                .map_err(store_error)?;
                        }
                        Write::Delete(ids) => {
                            let ids: Vec<String> = ids.iter().map(|&id| paged_id(id)).collect();
                            for id in &ids {
                                if let Some(v) = model.get(id).copied().filter(|v| !v.deleted) {
                                    apply(&mut model, id.clone(), Some(v.n), true);
                                }
                            }
                            store
                                .delete_records(&c, &model_name, &ids, now)
                                .await
                                .map_err(store_error)?;
                        }
                    }
                }
            }

            let key = |c: &RecordCursor| (c.modified, c.id.clone());
            for pair in cursors.windows(2) {
                let moved_on = if listing.newest_first {
                    key(&pair[1]) < key(&pair[0])
                } else {
                    key(&pair[1]) > key(&pair[0])
                };
                prop_assert!(moved_on, "{:?} then {:?}", pair[0], pair[1]);
            }
            let distinct: BTreeSet<&(String, u32)> = listed.iter().collect();
            prop_assert_eq!(
                distinct.len(),
                listed.len(),
                "a version listed twice: {:?}",
                listed
            );
            if listing.newest_first {
                let ids: BTreeSet<&String> = listed.iter().map(|(id, _)| id).collect();
                prop_assert_eq!(
                    ids.len(),
                    listed.len(),
                    "a record listed twice: {:?}",
                    listed
                );
                for (id, version) in &listed {
                    prop_assert_eq!(
                        at_start.get(id).map(|v| v.version),
                        Some(*version),
                        "{:?}",
                        id
                    );
                }
                for (id, was) in &at_start {
                    if model[id] == *was {
                        prop_assert!(ids.contains(id), "{:?} not listed: {:?}", id, listed);
                    }
                }
            } else {
                let last: BTreeMap<&String, u32> = listed.iter().map(|(id, v)| (id, *v)).collect();
                for (id, now) in &model {
                    prop_assert_eq!(
                        last.get(id).copied(),
                        Some(now.version),
                        "{:?} skipped: {:?}",
                        id,
                        listed
                    );
                }
            }
            Ok(())
        })
    })
    .await;
}
