//! The boundary itself, through the `probe` test plugin: every context method crosses with its
//! data intact, errors cross unchanged in both directions, panics cost one run and no more,
//! and the plugin's futures run on the host's multi-threaded runtime.

mod common;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use chrono::{TimeZone, Utc};
use plugboard_core::http::{ApiClient, api_base_url, http_client};
use plugboard_core::testkit::{TestContext, block_on};
use plugboard_core::{
    Context, EncodedRecords, ErrorKind, HttpRequest, HttpResponse, LogLevel, PreviousRun, Provider,
    ProviderError, Record, RunInfo, SyncMode,
};
use plugboard_emulator::{DemoOptions, Emulator, EmulatorOptions, RunningEmulator};
use plugboard_plugin::LoadedProvider;
use secrecy::SecretString;
use serde_json::{Value, json};

const MODEL: &str = "Item";

struct World {
    emulator: RunningEmulator,
    probe: LoadedProvider,
}

impl World {
    async fn start() -> World {
        let emulator = Emulator::start(EmulatorOptions::default())
            .await
            .expect("emulator starts");
        let probe = plugboard_plugin::load(common::plugin("probe")).expect("the probe loads");
        World { emulator, probe }
    }

    fn context(&self) -> TestContext {
        context(&self.emulator, &self.probe)
    }
}

/// A context whose requests go to the emulator (its control API needs no token).
fn context(emulator: &RunningEmulator, provider: &dyn Provider) -> TestContext {
    let mut api = provider.spec().api.clone();
    api.base_url = emulator.url();
    let base_url = api_base_url(&api, &BTreeMap::new()).expect("emulator URL");
    TestContext::new(
        ApiClient::new(http_client(), &api, base_url),
        SecretString::from("no-token"),
    )
}

#[test]
fn every_context_call_crosses_with_its_data_intact() {
    block_on(async {
        let world = World::start().await;
        let config = BTreeMap::from([("tenant".to_owned(), "contoso.example".to_owned())]);
        let ctx = world.context().with_connection_config(config);
        ctx.save_records(MODEL, vec![Record::new("stale", json!({"old": true}))])
            .await
            .unwrap();
        ctx.set_checkpoint(json!({"before": ["the", "run"]}))
            .await
            .unwrap();
        ctx.start_run(
            SyncMode::Incremental,
            Some(PreviousRun {
                started_at: Utc.with_ymd_and_hms(2026, 4, 1, 8, 0, 0).unwrap(),
                finished_at: Some(Utc.with_ymd_and_hms(2026, 4, 1, 8, 0, 7).unwrap()),
                succeeded: false,
                error: Some("provider answered 503".to_owned()),
            }),
        );

        world
            .probe
            .run_sync("every-call", &ctx)
            .await
            .expect("the probe's sync");

        let records: BTreeMap<String, Value> = ctx
            .records(MODEL)
            .into_iter()
            .map(|r| (r.id, r.data))
            .collect();
        let expected = BTreeMap::from([
            (
                "AAMk+/=ü".to_owned(),
                json!({"text": "ünïcödé ✓", "n": 1.5}),
            ),
            (
                "seen".to_owned(),
                json!({
                    "run_info": serde_json::to_value(ctx.run_info()).unwrap(),
                    "previous": {"before": ["the", "run"]},
                }),
            ),
        ]);
        assert_eq!(records, expected);
        assert_eq!(ctx.deleted_ids(MODEL), ["doomed", "stale"]);
        assert!(!ctx.crawl_in_progress(MODEL));
        assert_eq!(ctx.current_checkpoint(), Some(json!({"unseen": 1})));
        assert_eq!(
            ctx.logs(),
            [
                (LogLevel::Debug, "Debug from the probe".to_owned()),
                (LogLevel::Info, "Info from the probe".to_owned()),
                (LogLevel::Warn, "Warn from the probe".to_owned()),
                (LogLevel::Error, "Error from the probe".to_owned()),
            ]
        );
        // The test's own save, the probe's decoded batch and its encoded one.
        assert_eq!(ctx.save_counts().calls, 3);
    })
}

/// A host context that stores JSON: it keeps the bytes of every batch it is handed, and whether
/// the batch said where its records are, then saves them through the default
/// `save_encoded_records`.
struct StoresJson {
    inner: TestContext,
    batches: Mutex<Vec<(String, Vec<u8>, bool)>>,
}

#[async_trait]
impl Context for StoresJson {
    async fn http(&self, request: HttpRequest) -> Result<HttpResponse, ProviderError> {
        self.inner.http(request).await
    }

    async fn save_records(&self, _model: &str, _records: Vec<Record>) -> Result<(), ProviderError> {
        panic!("the host's side of the boundary decoded the records")
    }

    async fn save_encoded_records(
        &self,
        model: &str,
        records: EncodedRecords,
    ) -> Result<(), ProviderError> {
        let bytes = records.as_bytes().to_vec();
        // Borrowed: the spans came with the batch, so finding the records needs no parse.
        let located = matches!(records.spans(), Ok(Cow::Borrowed(_)));
        self.batches
            .lock()
            .unwrap()
            .push((model.to_owned(), bytes, located));
        self.inner.save_encoded_records(model, records).await
    }

    async fn delete_records(&self, model: &str, ids: Vec<String>) -> Result<(), ProviderError> {
        self.inner.delete_records(model, ids).await
    }

    async fn begin_crawl(&self, model: &str) -> Result<(), ProviderError> {
        self.inner.begin_crawl(model).await
    }

    async fn end_crawl(&self, model: &str) -> Result<u64, ProviderError> {
        self.inner.end_crawl(model).await
    }

    async fn checkpoint(&self) -> Result<Option<Value>, ProviderError> {
        self.inner.checkpoint().await
    }

    async fn set_checkpoint(&self, checkpoint: Value) -> Result<(), ProviderError> {
        self.inner.set_checkpoint(checkpoint).await
    }

    fn run_info(&self) -> RunInfo {
        self.inner.run_info()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, message)
    }
}

#[test]
fn records_reach_the_host_as_the_bytes_the_plugin_encoded() {
    block_on(async {
        let world = World::start().await;
        let ctx = StoresJson {
            inner: world.context(),
            batches: Mutex::new(Vec::new()),
        };
        world
            .probe
            .run_sync("every-call", &ctx)
            .await
            .expect("the probe's sync");

        let batches = ctx.batches.into_inner().unwrap();
        let [
            (first_model, decoded, first_located),
            (second_model, encoded, second_located),
        ] = batches.as_slice()
        else {
            panic!("expected two batches: {batches:?}");
        };
        assert_eq!(
            (first_model.as_str(), second_model.as_str()),
            (MODEL, MODEL)
        );
        assert!(
            *first_located && *second_located,
            "both batches crossed with their spans"
        );
        // `save_records` in the plugin: the encoding of its `Vec<Record>`.
        let records: Vec<Record> = serde_json::from_slice(decoded).unwrap();
        assert_eq!(serde_json::to_vec(&records).unwrap(), *decoded);
        // `save_encoded_records` in the plugin: its bytes, unchanged, escapes and all.
        assert_eq!(
            String::from_utf8(encoded.clone()).unwrap(),
            r#"[{"id":"AAMk+/=\u00fc","data":{"text":"ünïcödé ✓","n":1.5}}]"#
        );
        let raw = EncodedRecords::new(encoded.clone());
        let raw = raw.raw().unwrap();
        assert_eq!(raw[0].id, "AAMk+/=ü");
        assert_eq!(raw[0].data, r#"{"text":"ünïcödé ✓","n":1.5}"#);
        assert_eq!(ctx.inner.records(MODEL).len(), 2);
    })
}

#[test]
fn errors_cross_unchanged_in_both_directions() {
    block_on(async {
        let world = World::start().await;
        let ctx = world.context();

        let from_provider = world.probe.run_sync("fail", &ctx).await.unwrap_err();
        assert_eq!(
            from_provider,
            ProviderError::new(
                ErrorKind::Http { status: 418 },
                "the probe fails on purpose"
            )
        );

        let from_host = world
            .probe
            .run_sync("end-without-begin", &ctx)
            .await
            .unwrap_err();
        assert_eq!(from_host, ctx.end_crawl(MODEL).await.unwrap_err());

        ctx.fail_saves_after(0);
        let storage = world.probe.run_sync("every-call", &ctx).await.unwrap_err();
        assert_eq!(storage.kind, ErrorKind::Storage);
        assert!(
            storage.message.contains("simulated storage failure"),
            "{storage}"
        );

        let unknown = world.probe.run_sync("nope", &ctx).await.unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::NotFound);
        assert_eq!(unknown.message, "provider `probe` has no sync `nope`");
    })
}

#[test]
fn a_panic_fails_its_run_and_the_provider_keeps_serving() {
    block_on(async {
        let world = World::start().await;
        let ctx = world.context();

        let sync = world.probe.run_sync("panic", &ctx).await.unwrap_err();
        assert_eq!(
            sync,
            ProviderError::internal(
                "provider `probe` panicked in sync `panic`: the probe panics in a sync, on purpose"
            )
        );
        let action = world
            .probe
            .run_action("panic", json!({}), &ctx)
            .await
            .unwrap_err();
        assert_eq!(
            action,
            ProviderError::internal(
                "provider `probe` panicked in action `panic`: the probe panics in an action, on \
                 purpose"
            )
        );

        world
            .probe
            .run_sync("every-call", &ctx)
            .await
            .expect("the same provider runs the next sync");
        assert_eq!(ctx.records(MODEL).len(), 2);
    })
}

#[test]
fn actions_pass_json_and_http_through_intact() {
    block_on(async {
        let world = World::start().await;
        let setup = world
            .emulator
            .control()
            .setup_demo(DemoOptions {
                people: 0,
                ..DemoOptions::default()
            })
            .await
            .unwrap();
        let ctx = world.context();

        let input = json!({"nested": {"list": [1, 2.5, null, true], "text": "ünïcödé \u{0} ✓"}});
        let echoed = world
            .probe
            .run_action("echo", input.clone(), &ctx)
            .await
            .unwrap();
        assert_eq!(echoed, input);

        // A request with a body, through the plugin to the emulator's control API, which
        // answers with what it stored.
        let person = json!({"id": "AAMkAGPlugin+Id/==", "displayName": "Ada Ümlaut"});
        let people = format!("/_emulator/users/{}/people", setup.user_id);
        let request = HttpRequest::post(&people).json(&person);
        let answer = world
            .probe
            .run_action("http", serde_json::to_value(&request).unwrap(), &ctx)
            .await
            .unwrap();
        let answer: HttpResponse = serde_json::from_value(answer).unwrap();
        assert_eq!(answer.status, 200);
        let stored: Value = answer.json().unwrap();
        assert_eq!(stored["id"], person["id"]);
        assert_eq!(stored["displayName"], person["displayName"]);

        // An error status is an answer, not an error, and arrives as the host received it.
        let missing = HttpRequest::get("/_emulator/users/nobody@example.com/people");
        let through_plugin = world
            .probe
            .run_action("http", serde_json::to_value(&missing).unwrap(), &ctx)
            .await
            .unwrap();
        let through_plugin: HttpResponse = serde_json::from_value(through_plugin).unwrap();
        let direct = ctx.http(missing).await.unwrap();
        assert_eq!(through_plugin.status, 404);
        assert_eq!(
            (through_plugin.status, through_plugin.body),
            (direct.status, direct.body)
        );
    })
}

#[test]
fn runs_proceed_concurrently_on_the_hosts_runtime() {
    block_on(async {
        let world = World::start().await;
        let probe: Arc<dyn Provider> = Arc::new(world.probe);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let probe = Arc::clone(&probe);
                let ctx = Arc::new(context(&world.emulator, probe.as_ref()));
                tokio::spawn(async move {
                    // A sync that suspends on real I/O and then panics, and one that succeeds.
                    let panicked = probe.run_sync("panic", &*ctx).await.unwrap_err();
                    probe
                        .run_sync("every-call", &*ctx)
                        .await
                        .map(|()| (panicked, ctx))
                })
            })
            .collect();
        for task in tasks {
            let (panicked, ctx) = task.await.expect("the task").expect("the sync");
            assert_eq!(panicked.kind, ErrorKind::Internal);
            assert_eq!(ctx.records(MODEL).len(), 2);
        }
    })
}
