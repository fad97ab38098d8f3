//! A [`Context`] for tests: real HTTP to the emulator or a [`FakeApi`], records in memory.
//!
//! Provider crates test their syncs against the emulator (or a small fake of their own API)
//! with it, without the host. It keeps the host's record semantics (crawls, deletions,
//! checkpoints) exactly as the [`Context`] docs state them, and lets a test inspect the result
//! and simulate a crash.

mod fake_api;

pub use fake_api::{FakeApi, FakeRequest, FakeResponse};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::context::{
    Context, HttpRequest, HttpResponse, LogLevel, PreviousRun, Record, RunInfo, SyncMode,
};
use crate::error::{ErrorKind, ProviderError};
use crate::http::{ApiClient, Credential, http_client};
use crate::oauth::{
    ErrorFields, OAuthClient, OAuthError, OAuthErrorKind, Stage, TokenSet, classify, parse_callback,
};
use crate::spec::{ApiKeySpec, ProviderSpec};

/// Runs an async test body on a fresh multi-threaded runtime.
///
/// Provider crates never depend on tokio, not even for their tests: they write
/// `#[test] fn x() { block_on(async { … }) }` and the runtime stays the host's business.
pub fn block_on<F: std::future::Future>(body: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the test")
        .block_on(body)
}

/// An in-memory context. One `TestContext` is one connection's sync across several runs: the
/// records, the checkpoint and an unfinished crawl carry over from run to run.
pub struct TestContext {
    api: ApiClient,
    bearer: Mutex<SecretString>,
    /// Where the secret goes when the provider takes API keys; a bearer token otherwise.
    api_key: Option<ApiKeySpec>,
    state: Mutex<State>,
}

struct State {
    run_info: RunInfo,
    models: BTreeMap<String, ModelState>,
    checkpoint: Option<Value>,
    logs: Vec<(LogLevel, String)>,
    counts: SaveCounts,
    /// Save calls still allowed before one fails, if a crash is armed.
    saves_before_failure: Option<u64>,
}

#[derive(Default)]
struct ModelState {
    live: BTreeMap<String, Value>,
    deleted: BTreeSet<String>,
    /// Ids saved since `begin_crawl`, while a crawl is in progress.
    crawl: Option<BTreeSet<String>>,
}

/// What `save_records` calls did, over the context's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveCounts {
    /// Successful `save_records` calls.
    pub calls: u64,
    pub inserted: u64,
    pub updated: u64,
    /// Records saved again with identical data.
    pub unchanged: u64,
}

impl TestContext {
    /// A context sending requests through `api` with `bearer` as the access token. The first
    /// run is incremental, for connection `test-connection`, with an empty connection config.
    pub fn new(api: ApiClient, bearer: SecretString) -> Self {
        TestContext {
            api,
            bearer: Mutex::new(bearer),
            api_key: None,
            state: Mutex::new(State {
                run_info: RunInfo {
                    connection_id: "test-connection".to_owned(),
                    connection_config: BTreeMap::new(),
                    mode: SyncMode::Incremental,
                    previous: None,
                    page_size: None,
                },
                models: BTreeMap::new(),
                checkpoint: None,
                logs: Vec::new(),
                counts: SaveCounts::default(),
                saves_before_failure: None,
            }),
        }
    }

    /// A context for `spec`'s API at `base_url` (a [`FakeApi`]'s, say), sending the secret
    /// `test-secret` as the spec's `[auth]` says: where its API key goes, or as a bearer token.
    pub fn against(spec: &ProviderSpec, base_url: &str) -> Self {
        let base_url = url::Url::parse(base_url).expect("a base URL such as FakeApi::url()");
        let mut ctx = TestContext::new(
            ApiClient::new(http_client(), &spec.api, base_url),
            SecretString::from("test-secret"),
        );
        ctx.api_key = spec.auth.as_api_key().cloned();
        ctx
    }

    /// Sets the connection config that [`Context::run_info`] reports.
    pub fn with_connection_config(self, connection_config: BTreeMap<String, String>) -> Self {
        self.lock().run_info.connection_config = connection_config;
        self
    }

    /// Sets the page size the integration chose, which [`Context::run_info`] reports and
    /// [`crate::Pager::new`] asks for.
    pub fn with_page_size(self, page_size: Option<u32>) -> Self {
        self.lock().run_info.page_size = page_size;
        self
    }

    /// Starts the next run as the host would: a `Full` run forgets the checkpoint (the records
    /// and any unfinished crawl stay); `previous` is what the run reports as the last run.
    pub fn start_run(&self, mode: SyncMode, previous: Option<PreviousRun>) {
        let mut state = self.lock();
        if mode == SyncMode::Full {
            state.checkpoint = None;
        }
        state.run_info.mode = mode;
        state.run_info.previous = previous;
    }

    /// Replaces the access token, e.g. after a refresh.
    pub fn set_bearer(&self, bearer: SecretString) {
        *self.bearer.lock().unwrap_or_else(PoisonError::into_inner) = bearer;
    }

    /// Simulates a crash: the next `n` calls of `save_records` succeed and the one after fails
    /// with a storage error, once. The sync then stops with its checkpoint at the last page it
    /// completed, and the next run resumes from there.
    pub fn fail_saves_after(&self, n: u64) {
        self.lock().saves_before_failure = Some(n);
    }

    /// The live (not deleted) records of a model, sorted by id.
    pub fn records(&self, model: &str) -> Vec<Record> {
        self.lock()
            .models
            .get(model)
            .map(|m| {
                m.live
                    .iter()
                    .map(|(id, data)| Record::new(id.clone(), data.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ids of a model's records marked deleted, sorted.
    pub fn deleted_ids(&self, model: &str) -> Vec<String> {
        self.lock()
            .models
            .get(model)
            .map(|m| m.deleted.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a crawl of the model was begun and not yet ended.
    pub fn crawl_in_progress(&self, model: &str) -> bool {
        self.lock()
            .models
            .get(model)
            .is_some_and(|m| m.crawl.is_some())
    }

    pub fn current_checkpoint(&self) -> Option<Value> {
        self.lock().checkpoint.clone()
    }

    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.lock().logs.clone()
    }

    pub fn save_counts(&self) -> SaveCounts {
        self.lock().counts
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Context for TestContext {
    async fn http(&self, request: HttpRequest) -> Result<HttpResponse, ProviderError> {
        let bearer = self
            .bearer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let secret = bearer.expose_secret();
        let credential = match &self.api_key {
            Some(spec) => Credential::ApiKey { spec, key: secret },
            None => Credential::Bearer(secret),
        };
        let response = self.api.send_with(&request, Some(credential)).await?;
        // The host's contract: a retryable status that reaches the caller means the retries
        // ran out, which is an error rather than an answer.
        if self.api.retry_policy().retries_status(response.status) {
            return response.error_for_status();
        }
        Ok(response)
    }

    async fn save_records(&self, model: &str, records: Vec<Record>) -> Result<(), ProviderError> {
        let mut state = self.lock();
        match state.saves_before_failure {
            Some(0) => {
                state.saves_before_failure = None;
                return Err(ProviderError::new(
                    ErrorKind::Storage,
                    "simulated storage failure (TestContext::fail_saves_after)",
                ));
            }
            Some(n) => state.saves_before_failure = Some(n - 1),
            None => {}
        }
        let mut counts = state.counts;
        counts.calls += 1;
        let entry = state.models.entry(model.to_owned()).or_default();
        for record in records {
            match entry.live.insert(record.id.clone(), record.data.clone()) {
                None => counts.inserted += 1,
                Some(old) if old == record.data => counts.unchanged += 1,
                Some(_) => counts.updated += 1,
            }
            entry.deleted.remove(&record.id);
            if let Some(seen) = entry.crawl.as_mut() {
                seen.insert(record.id);
            }
        }
        state.counts = counts;
        Ok(())
    }

    async fn delete_records(&self, model: &str, ids: Vec<String>) -> Result<(), ProviderError> {
        let mut state = self.lock();
        let entry = state.models.entry(model.to_owned()).or_default();
        for id in ids {
            if entry.live.remove(&id).is_some() {
                entry.deleted.insert(id);
            }
        }
        Ok(())
    }

    async fn begin_crawl(&self, model: &str) -> Result<(), ProviderError> {
        let mut state = self.lock();
        state.models.entry(model.to_owned()).or_default().crawl = Some(BTreeSet::new());
        Ok(())
    }

    async fn end_crawl(&self, model: &str) -> Result<u64, ProviderError> {
        let mut state = self.lock();
        let entry = state.models.entry(model.to_owned()).or_default();
        let seen = entry.crawl.take().ok_or_else(|| {
            ProviderError::internal(format!(
                "end_crawl(`{model}`) without begin_crawl: no crawl is in progress"
            ))
        })?;
        let unseen: Vec<String> = entry
            .live
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in &unseen {
            entry.live.remove(id);
            entry.deleted.insert(id.clone());
        }
        Ok(unseen.len() as u64)
    }

    async fn checkpoint(&self) -> Result<Option<Value>, ProviderError> {
        Ok(self.lock().checkpoint.clone())
    }

    async fn set_checkpoint(&self, checkpoint: Value) -> Result<(), ProviderError> {
        self.lock().checkpoint = Some(checkpoint);
        Ok(())
    }

    fn run_info(&self) -> RunInfo {
        self.lock().run_info.clone()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.lock().logs.push((level, message.to_owned()));
    }
}

/// Connects through an authorization server that consents on its own (the emulator): opens the
/// authorization URL without following redirects, reads `code` and `state` from the redirect,
/// checks the state and redeems the code.
///
/// A callback with `error=` comes back as its classified [`OAuthError`], so tests of declined
/// consent use this too.
pub async fn connect_auto_consent(
    http: &reqwest::Client,
    oauth: &OAuthClient,
    connection_config: &BTreeMap<String, String>,
    extra_params: &[(String, String)],
) -> Result<TokenSet, OAuthError> {
    let request = oauth.authorization_request(connection_config, extra_params)?;
    let rejected =
        |fix: String| OAuthError::local(OAuthErrorKind::CallbackRejected, Stage::Authorize, fix);
    let response = http.get(&request.url).send().await.map_err(|e| {
        OAuthError::local(
            OAuthErrorKind::Transient,
            Stage::Authorize,
            format!(
                "the authorization URL could not be opened: {}",
                crate::http::describe(&e)
            ),
        )
    })?;
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|_| status.is_redirection())
        .map(str::to_owned);
    let Some(location) = location else {
        // The provider's own error page (unknown client, unregistered redirect URI): nothing
        // would reach the app, but the page names the AADSTS code, which is worth classifying.
        let page = response.text().await.unwrap_or_default();
        let description = page.find("AADSTS").map(|start| {
            page[start..]
                .split('<')
                .next()
                .unwrap_or_default()
                .to_owned()
        });
        if description.is_some() {
            let fields = ErrorFields {
                error_description: description,
                ..ErrorFields::default()
            };
            return Err(classify(Stage::Authorize, None, &fields));
        }
        return Err(rejected(format!(
            "the authorization server answered {status} instead of redirecting to the redirect URI"
        )));
    };
    let redirect_uri = &oauth.config().redirect_uri;
    let target = url::Url::parse(&location).ok();
    let expected = url::Url::parse(redirect_uri).ok();
    let query = match (target, expected) {
        (Some(target), Some(expected))
            if target.origin() == expected.origin() && target.path() == expected.path() =>
        {
            target.query().unwrap_or_default().to_owned()
        }
        _ => {
            return Err(rejected(format!(
                "the authorization server redirected elsewhere than {redirect_uri}"
            )));
        }
    };
    let callback = parse_callback(&query)?;
    if callback.state != request.state {
        return Err(rejected(
            "the callback's state does not match the request's — start the connection again"
                .to_owned(),
        )
        .with_state(Some(callback.state)));
    }
    oauth
        .exchange_code(
            connection_config,
            &callback.code,
            request.pkce_verifier.as_ref(),
        )
        .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::ApiSpec;

    fn context() -> TestContext {
        let api: ApiSpec = toml::from_str("base_url = \"http://127.0.0.1:9\"").unwrap();
        let client = ApiClient::new(
            crate::http::http_client(),
            &api,
            url::Url::parse("http://127.0.0.1:9").unwrap(),
        );
        TestContext::new(client, SecretString::from("token"))
    }

    fn rec(id: &str, n: i64) -> Record {
        Record::new(id, json!({ "n": n }))
    }

    #[tokio::test]
    async fn crawl_marks_unseen_records_deleted_across_runs() {
        let ctx = context();
        ctx.save_records("m", vec![rec("a", 1), rec("b", 1), rec("c", 1)])
            .await
            .unwrap();
        ctx.begin_crawl("m").await.unwrap();
        ctx.save_records("m", vec![rec("a", 1)]).await.unwrap();
        // The run stops here; a resumed run continues the same crawl.
        ctx.start_run(SyncMode::Incremental, None);
        assert!(ctx.crawl_in_progress("m"));
        ctx.save_records("m", vec![rec("c", 2)]).await.unwrap();
        assert_eq!(ctx.end_crawl("m").await.unwrap(), 1);
        assert_eq!(ctx.deleted_ids("m"), ["b"]);
        let ids: Vec<_> = ctx.records("m").into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(
            ctx.save_counts(),
            SaveCounts {
                calls: 3,
                inserted: 3,
                updated: 1,
                unchanged: 1
            }
        );
        assert!(
            ctx.end_crawl("m").await.is_err(),
            "no crawl in progress any more"
        );
    }

    #[tokio::test]
    async fn a_saved_record_is_no_longer_deleted() {
        let ctx = context();
        ctx.save_records("m", vec![rec("a", 1)]).await.unwrap();
        ctx.delete_records("m", vec!["a".into(), "zz".into()])
            .await
            .unwrap();
        assert_eq!(ctx.deleted_ids("m"), ["a"]);
        ctx.save_records("m", vec![rec("a", 2)]).await.unwrap();
        assert!(ctx.deleted_ids("m").is_empty());
        assert_eq!(ctx.records("m"), [rec("a", 2)]);
    }

    #[tokio::test]
    async fn fails_one_save_when_armed_and_full_runs_drop_the_checkpoint() {
        let ctx = context();
        ctx.fail_saves_after(1);
        ctx.save_records("m", vec![rec("a", 1)]).await.unwrap();
        let err = ctx.save_records("m", vec![rec("b", 1)]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Storage);
        ctx.save_records("m", vec![rec("b", 1)]).await.unwrap();
        assert_eq!(ctx.save_counts().calls, 2);

        ctx.set_checkpoint(json!({"page": 2})).await.unwrap();
        ctx.start_run(SyncMode::Incremental, None);
        assert_eq!(ctx.checkpoint().await.unwrap(), Some(json!({"page": 2})));
        ctx.start_run(SyncMode::Full, None);
        assert_eq!(ctx.checkpoint().await.unwrap(), None);
        assert_eq!(ctx.run_info().mode, SyncMode::Full);
        ctx.warn("careful");
        assert_eq!(ctx.logs(), [(LogLevel::Warn, "careful".to_owned())]);
    }
}
