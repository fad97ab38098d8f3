//! The `people` sync: a full crawl of `/me/people`, resumable page by page.
//!
//! Graph has no delta query for people, so every crawl reads the whole list and the host's
//! crawl bookkeeping (`begin_crawl` / `end_crawl`) turns "no longer returned" into deletes. A
//! crawl can take many pages, so after each page the request for the next one is saved as the
//! checkpoint: a run that stops half-way is continued by the next run rather than restarted,
//! and nothing is deleted until a crawl has really seen the last page.

use plugboard_core::spec::PaginationSpec;
use plugboard_core::{Context, HttpRequest, LogLevel, Pager, ProviderError, SyncMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph;
use crate::person::{GraphEntry, Person};

/// The model the sync writes.
pub(crate) const MODEL: &str = "Person";

/// What the sync keeps between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    /// The request for the next page of the crawl in progress. `None` once a crawl has ended,
    /// which makes the next run start a new crawl.
    next: Option<HttpRequest>,
    /// Pages and people read by the crawl so far, across the runs that made it.
    pages: u64,
    records: u64,
}

pub(crate) async fn run(ctx: &dyn Context, preset: &PaginationSpec) -> Result<(), ProviderError> {
    let resume = match ctx.run_info().mode {
        SyncMode::Full => None,
        SyncMode::Incremental => saved_checkpoint(ctx).await?,
    };
    let (mut pager, mut progress) = match resume.and_then(|c| Some((c.next.clone()?, c))) {
        Some((next, checkpoint)) => {
            ctx.info(&format!(
                "resuming the crawl after {} pages and {} people",
                checkpoint.pages, checkpoint.records
            ));
            (Pager::resume(ctx, preset, next), checkpoint)
        }
        None => {
            ctx.begin_crawl(MODEL).await?;
            ctx.info("starting a full crawl of the connected user's people");
            let first = HttpRequest::get(graph::ME_PEOPLE);
            (Pager::new(ctx, preset, first), Checkpoint::default())
        }
    };

    while let Some(page) = pager.next_page_as::<GraphEntry>().await.map_err(explain)? {
        progress.pages += 1;
        let people = graph::people(ctx, page.records, progress.pages);
        let count = people.len();
        progress.records += count as u64;
        if !people.is_empty() {
            ctx.save_encoded_records(MODEL, Person::encode_records(&people)?)
                .await?;
        }
        ctx.log(
            LogLevel::Debug,
            &format!("page {}: {count} people saved", progress.pages),
        );
        // On the last page the crawl ends before the checkpoint says so: if the run stops in
        // between, the next run reads the last page again and ends the crawl itself.
        if page.next.is_none() {
            let deleted = ctx.end_crawl(MODEL).await?;
            ctx.info(&format!(
                "crawl complete: {} pages, {} people, {deleted} no longer relevant and deleted",
                progress.pages, progress.records
            ));
        }
        progress.next = page.next;
        ctx.set_checkpoint(to_value(&progress)).await?;
    }
    Ok(())
}

/// The saved checkpoint; one this code cannot read (written by another version, say) is
/// dropped with a warning, because a fresh crawl is always correct and failing every run on it
/// would not be.
async fn saved_checkpoint(ctx: &dyn Context) -> Result<Option<Checkpoint>, ProviderError> {
    let Some(saved) = ctx.checkpoint().await? else {
        return Ok(None);
    };
    match serde_json::from_value(saved) {
        Ok(checkpoint) => Ok(Some(checkpoint)),
        Err(e) => {
            ctx.warn(&format!(
                "ignoring a checkpoint this version cannot read ({e}); starting a new crawl"
            ));
            Ok(None)
        }
    }
}

fn to_value(checkpoint: &Checkpoint) -> Value {
    serde_json::to_value(checkpoint).expect("a checkpoint is plain data")
}

fn explain(error: ProviderError) -> ProviderError {
    graph::explain(error, |status| {
        (status == 403).then(|| {
            "Microsoft Graph refused to list the connected user's people: the connection needs \
             People.Read; reconnect and grant it"
                .to_owned()
        })
    })
}
