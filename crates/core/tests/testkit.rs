//! The test kit the way a provider crate uses it: a small paged sync over the emulator's
//! `/me/people`, crashed mid-crawl with `fail_saves_after`, resumed from its checkpoint.
#![cfg(feature = "testkit")]

mod common;

use common::Harness;
use plugboard_core::http::ApiClient;
use plugboard_core::spec::PaginationSpec;
use plugboard_core::testkit::{SaveCounts, TestContext, connect_auto_consent};
use plugboard_core::{Context, ErrorKind, HttpRequest, Pager, ProviderError, Record, SyncMode};

const MODEL: &str = "person";

/// What a provider's full-crawl sync does: begin (unless resuming), save each page, checkpoint
/// the next request, end the crawl after the last page.
async fn sync_people(ctx: &dyn Context, preset: &PaginationSpec) -> Result<(), ProviderError> {
    // The last page leaves a null checkpoint: the next run starts a new crawl.
    let mut pager = match ctx.checkpoint().await?.filter(|c| !c.is_null()) {
        Some(next) => Pager::resume(ctx, preset, serde_json::from_value(next).unwrap()),
        None => {
            ctx.begin_crawl(MODEL).await?;
            Pager::new(ctx, preset, HttpRequest::get("/v1.0/me/people"))
        }
    };
    while let Some(page) = pager.next_page().await? {
        let records = page
            .records
            .into_iter()
            .map(|p| Record::new(p["id"].as_str().unwrap().to_owned(), p))
            .collect();
        ctx.save_records(MODEL, records).await?;
        match page.next {
            Some(next) => {
                ctx.set_checkpoint(serde_json::to_value(next).unwrap())
                    .await?
            }
            None => {
                let deleted = ctx.end_crawl(MODEL).await?;
                ctx.info(&format!("crawl done, {deleted} deleted"));
                ctx.set_checkpoint(serde_json::Value::Null).await?;
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_crashed_crawl_resumes_from_its_checkpoint_and_deletes_only_what_vanished() {
    let h = Harness::start().await;
    let tokens = connect_auto_consent(&h.http, &h.oauth(), &h.tenant(), &[])
        .await
        .unwrap();
    let api = ApiClient::new(
        h.http.clone(),
        &Harness::graph_api(),
        url::Url::parse(&h.emulator.url()).unwrap(),
    );
    let ctx = TestContext::new(api, tokens.access_token).with_connection_config(h.tenant());
    let preset: PaginationSpec = toml::from_str(
        r#"
        type = "next_link"
        next_link = "/@odata.nextLink"
        records = "/value"
        page_size_param = "$top"
        page_size = 2
        "#,
    )
    .unwrap();

    // Five people in pages of two: the second save fails, after one page was checkpointed.
    ctx.fail_saves_after(1);
    let err = sync_people(&ctx, &preset).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Storage);
    assert_eq!(ctx.records(MODEL).len(), 2);
    assert!(ctx.crawl_in_progress(MODEL));
    assert!(ctx.current_checkpoint().is_some());

    ctx.start_run(SyncMode::Incremental, None);
    sync_people(&ctx, &preset).await.unwrap();
    assert_eq!(ctx.records(MODEL).len(), 5);
    assert!(
        ctx.deleted_ids(MODEL).is_empty(),
        "the resumed crawl kept page one's records"
    );
    assert!(!ctx.crawl_in_progress(MODEL));

    // A person vanishes at the provider: the next full crawl marks exactly that one deleted.
    let gone = ctx.records(MODEL)[0].id.clone();
    h.control
        .remove_person(&h.demo.user_id, &gone)
        .await
        .unwrap();
    ctx.start_run(SyncMode::Full, None);
    sync_people(&ctx, &preset).await.unwrap();
    assert_eq!(ctx.deleted_ids(MODEL), [gone]);
    assert_eq!(ctx.records(MODEL).len(), 4);
    let ids: Vec<_> = ctx.records(MODEL).into_iter().map(|r| r.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "records come sorted by id");
    let logs = ctx.logs();
    assert_eq!(logs.last().unwrap().1, "crawl done, 1 deleted");
    let expected = SaveCounts {
        calls: 1 + 2 + 2,
        inserted: 5,
        updated: 0,
        unchanged: 4,
    };
    assert_eq!(
        ctx.save_counts(),
        expected,
        "the failed save stored nothing"
    );
}

/// The sizes of the pages a fresh pager reads, starting from `first`.
async fn page_sizes(ctx: &dyn Context, preset: &PaginationSpec, first: HttpRequest) -> Vec<usize> {
    let mut pager = Pager::new(ctx, preset, first);
    let mut sizes = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        sizes.push(page.records.len());
    }
    sizes
}

#[tokio::test]
async fn the_page_size_chosen_for_the_run_replaces_the_presets_up_to_its_maximum() {
    let h = Harness::start().await;
    let tokens = connect_auto_consent(&h.http, &h.oauth(), &h.tenant(), &[])
        .await
        .unwrap();
    let api = ApiClient::new(
        h.http.clone(),
        &Harness::graph_api(),
        url::Url::parse(&h.emulator.url()).unwrap(),
    );
    let preset: PaginationSpec = toml::from_str(
        r#"
        type = "next_link"
        next_link = "/@odata.nextLink"
        records = "/value"
        page_size_param = "$top"
        page_size = 2
        max_page_size = 4
        "#,
    )
    .unwrap();
    let people = || HttpRequest::get("/v1.0/me/people");
    let explicit = || people().query("$top", "1");

    // Five people: the preset's pages of 2, unless the request asks for its own size.
    let ctx = TestContext::new(api, tokens.access_token).with_connection_config(h.tenant());
    assert_eq!(page_sizes(&ctx, &preset, people()).await, [2, 2, 1]);
    assert_eq!(page_sizes(&ctx, &preset, explicit()).await, [1; 5]);

    // The run's page size wins over both, and the preset's maximum caps it.
    let ctx = ctx.with_page_size(Some(3));
    assert_eq!(page_sizes(&ctx, &preset, people()).await, [3, 2]);
    assert_eq!(page_sizes(&ctx, &preset, explicit()).await, [3, 2]);
    let ctx = ctx.with_page_size(Some(1000));
    assert_eq!(page_sizes(&ctx, &preset, people()).await, [4, 1]);
}
