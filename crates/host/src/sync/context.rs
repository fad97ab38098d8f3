//! The host's [`Context`]: what provider code runs against in syncs and actions.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use plugboard_core::http::ApiClient;
use plugboard_core::{
    Context, EncodedRecords, ErrorKind, HttpRequest, HttpResponse, LogLevel, ProviderError, Record,
    RunInfo,
};
use serde_json::Value;

use crate::crash_point;
use crate::integrations::Integration;
use crate::refresh::{REFRESH_MARGIN, RefreshError};
use crate::state::AppState;
use plugboard_store::{Connection, RecordJson, RunCounts, RunLog, StoreError};

/// Log lines kept per run; a chatty provider cannot fill the database.
const MAX_LOG_LINES: usize = 2_000;
/// Log lines held in memory before a records write stores them, for providers that log a lot
/// between checkpoints (every checkpoint stores them too).
const LOG_BATCH: usize = 100;
/// Records a dry run shows.
const DRY_RUN_SAMPLE: usize = 5;
/// Wait before fetching a truncated JSON answer again.
const TRUNCATED_RETRY_DELAY: Duration = Duration::from_millis(200);

/// What the context is for.
pub enum Purpose {
    /// A sync run that writes to the store, and keeps its log lines with the run `run_id`.
    Sync {
        sync: String,
        run_id: String,
    },
    /// A sync run that stores nothing and keeps a sample of what it would save.
    DryRun {
        sync: String,
    },
    Action,
}

/// Live counters of a run, for progress lines.
#[derive(Debug, Default)]
pub struct Progress {
    pub requests: AtomicU64,
    pub records: AtomicU64,
}

pub struct HostContext {
    state: AppState,
    integration: Arc<Integration>,
    connection: Mutex<Arc<Connection>>,
    api: ApiClient,
    limiter: Option<Arc<tokio::sync::Semaphore>>,
    run_info: RunInfo,
    purpose: Purpose,
    /// Absolute URLs (next links) fetched by this run, to stop a provider that loops.
    fetched: Mutex<HashSet<String>>,
    counts: Mutex<RunCounts>,
    /// Log lines not stored yet.
    logs: Mutex<Vec<RunLog>>,
    /// Log lines the run kept so far, stored or not, against [`MAX_LOG_LINES`].
    logs_kept: AtomicUsize,
    logs_dropped: AtomicU64,
    /// Held while storing log lines, so batches are stored in the order they were taken.
    logs_storing: tokio::sync::Mutex<()>,
    /// A dry run's checkpoint and sample, kept in memory only.
    dry_checkpoint: Mutex<Option<Value>>,
    sample: Mutex<Vec<Record>>,
    pub progress: Arc<Progress>,
}

impl HostContext {
    pub fn new(
        state: AppState,
        integration: Arc<Integration>,
        connection: Arc<Connection>,
        run_info: RunInfo,
        purpose: Purpose,
    ) -> Result<HostContext, String> {
        let base = integration
            .api_base_url(&connection.connection_config)?
            .into_owned();
        let api = ApiClient::new(state.http.clone(), integration.api(), base);
        let limiter = state
            .syncs
            .limiter(&connection.id, integration.api().max_concurrency);
        Ok(HostContext {
            state,
            integration,
            connection: Mutex::new(connection),
            api,
            limiter,
            run_info,
            purpose,
            fetched: Mutex::new(HashSet::new()),
            counts: Mutex::new(RunCounts::default()),
            logs: Mutex::new(Vec::new()),
            logs_kept: AtomicUsize::new(0),
            logs_dropped: AtomicU64::new(0),
            logs_storing: tokio::sync::Mutex::new(()),
            dry_checkpoint: Mutex::new(None),
            sample: Mutex::new(Vec::new()),
            progress: Arc::new(Progress::default()),
        })
    }

    pub fn counts(&self) -> RunCounts {
        *lock(&self.counts)
    }

    pub fn sample(&self) -> Vec<Record> {
        lock(&self.sample).clone()
    }

    /// Stores the log lines gathered since the last call with the run, so a run cut short by a
    /// crash keeps its log up to its last checkpoint. Lines a failed write could not store
    /// wait for the next call. Only sync runs that write keep logs.
    pub async fn flush_logs(&self) {
        let Purpose::Sync { run_id, .. } = &self.purpose else {
            return;
        };
        let _in_order = self.logs_storing.lock().await;
        let logs = self.take_logs();
        if logs.is_empty() {
            return;
        }
        let store = self.state.connections.store();
        if let Err(error) = store.append_run_logs(run_id, &logs).await {
            tracing::warn!(%error, "keeping the run's log lines failed; trying again later");
            lock(&self.logs).splice(0..0, logs);
        }
    }

    /// The log lines not yet stored, taken.
    fn take_logs(&self) -> Vec<RunLog> {
        let mut logs = std::mem::take(&mut *lock(&self.logs));
        let dropped = self.logs_dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            logs.push(RunLog {
                at: Utc::now(),
                level: "warn".into(),
                message: format!("{dropped} more log line(s) were dropped"),
            });
        }
        logs
    }

    fn connection_row(&self) -> String {
        lock(&self.connection).id.clone()
    }

    fn sync_name(&self) -> Option<&str> {
        match &self.purpose {
            Purpose::Sync { sync, .. } | Purpose::DryRun { sync } => Some(sync),
            Purpose::Action => None,
        }
    }

    fn stores(&self) -> bool {
        matches!(self.purpose, Purpose::Sync { .. })
    }

    /// Writes records of a sync run to the store and counts what changed: the one write path
    /// for records from built-in providers and from plugins alike.
    async fn write_records(
        &self,
        model: &str,
        records: Vec<RecordJson<'_>>,
    ) -> Result<(), ProviderError> {
        self.progress
            .records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let outcome = self
            .state
            .connections
            .store()
            .save_records(&self.connection_row(), model, records, Utc::now())
            .await
            .map_err(storage)?;
        {
            let mut counts = lock(&self.counts);
            counts.added += outcome.added;
            counts.updated += outcome.updated;
        }
        if lock(&self.logs).len() >= LOG_BATCH {
            self.flush_logs().await;
        }
        Ok(())
    }

    /// The connection with a token that is valid for a while, refreshing it if needed.
    async fn fresh_connection(&self) -> Result<Arc<Connection>, ProviderError> {
        let current = lock(&self.connection).clone();
        let fresh = self
            .state
            .connections
            .fresh(&self.integration, current, REFRESH_MARGIN)
            .await
            .map_err(Self::refresh_error)?;
        *lock(&self.connection) = fresh.clone();
        Ok(fresh)
    }

    /// The provider's view of a failed refresh; the refresh module announced it already.
    fn refresh_error(error: RefreshError) -> ProviderError {
        let message = error.to_string();
        match error {
            RefreshError::NeedsReconnect(_) | RefreshError::NotFound => {
                ProviderError::new(ErrorKind::Auth, message)
            }
            RefreshError::Store(_) => ProviderError::new(ErrorKind::Storage, message),
            RefreshError::Misconfigured(_) | RefreshError::Transient(_) => {
                ProviderError::new(ErrorKind::Transport, message)
            }
        }
    }

    /// Refuses a next link this run already followed: a provider whose pagination loops
    /// would otherwise crawl forever.
    fn check_loop(&self, request: &HttpRequest) -> Result<(), ProviderError> {
        let absolute = request.url.starts_with("http://") || request.url.starts_with("https://");
        if self.sync_name().is_none() || request.method != "GET" || !absolute {
            return Ok(());
        }
        let key = format!("{}?{:?}", request.url, request.query);
        if lock(&self.fetched).insert(key) {
            return Ok(());
        }
        let path = url::Url::parse(&request.url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        Err(ProviderError::new(
            ErrorKind::Pagination,
            format!(
                "pagination loops: the provider's next link to `{path}` was already fetched in this run; the run stops instead of crawling forever"
            ),
        ))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn storage(error: StoreError) -> ProviderError {
    ProviderError::new(ErrorKind::Storage, format!("the store failed: {error}"))
}

/// A 2xx answer that says it is JSON but does not parse was cut off in transfer. Only an
/// answer that does not end like a JSON object or array is parsed to find out, so whole pages
/// (nearly all of them) cost no second parse.
fn truncated_json(response: &HttpResponse) -> bool {
    let ends_whole = response
        .body
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|last| matches!(last, b'}' | b']'));
    response.is_success()
        && !ends_whole
        && response
            .header("content-type")
            .is_some_and(|kind| kind.contains("json"))
        && serde_json::from_slice::<serde::de::IgnoredAny>(&response.body).is_err()
}

#[async_trait]
impl Context for HostContext {
    async fn http(&self, request: HttpRequest) -> Result<HttpResponse, ProviderError> {
        self.check_loop(&request)?;
        let _permit = match &self.limiter {
            Some(limiter) => Some(
                limiter
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| ProviderError::internal("the concurrency limiter closed"))?,
            ),
            None => None,
        };
        let retry = self.api.retry_policy().clone();
        let mut refreshed = false;
        let mut attempt = 1;
        loop {
            let connection = self.fresh_connection().await?;
            let response = self
                .api
                .send_with(&request, Some(self.integration.credential(&connection)))
                .await?;
            self.progress.requests.fetch_add(1, Ordering::Relaxed);
            if response.status == 401 && !refreshed {
                // Revoked or expired early: one replacement token (single-flight), one retry.
                refreshed = true;
                let replaced = self
                    .state
                    .connections
                    .replace(&self.integration, &connection.key, connection.token_version)
                    .await
                    .map_err(Self::refresh_error)?;
                *lock(&self.connection) = replaced;
                continue;
            }
            if retry.retries_status(response.status) {
                // The client's retries ran out: an error, not an answer.
                return response.error_for_status();
            }
            // A truncated GET answer is retried like a dropped connection: GETs are safe to
            // repeat, and the page is then read whole instead of failing the run.
            if request.method == "GET"
                && attempt < retry.max_attempts()
                && truncated_json(&response)
            {
                self.log(
                    LogLevel::Warn,
                    &format!(
                        "a {} answer was not complete JSON (attempt {attempt}); fetching it again",
                        response.status
                    ),
                );
                attempt += 1;
                tokio::time::sleep(TRUNCATED_RETRY_DELAY).await;
                continue;
            }
            return Ok(response);
        }
    }

    async fn save_records(&self, model: &str, records: Vec<Record>) -> Result<(), ProviderError> {
        match &self.purpose {
            Purpose::Sync { .. } => {
                let records = records
                    .into_iter()
                    .map(RecordJson::encode)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(storage)?;
                self.write_records(model, records).await
            }
            Purpose::DryRun { .. } => {
                self.progress
                    .records
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                let mut sample = lock(&self.sample);
                let room = DRY_RUN_SAMPLE.saturating_sub(sample.len());
                sample.extend(records.into_iter().take(room));
                Ok(())
            }
            Purpose::Action => Err(ProviderError::invalid_input(
                "actions cannot save records; only syncs can",
            )),
        }
    }

    /// A plugin's records go to the store as the JSON it sent: each record's data is stored
    /// (and hashed) as its text in the batch, with no decode into `Value`s and no re-encoding.
    /// Dry runs and actions take the decoded path, which keeps a sample or refuses.
    async fn save_encoded_records(
        &self,
        model: &str,
        records: EncodedRecords,
    ) -> Result<(), ProviderError> {
        if !self.stores() {
            return self.save_records(model, records.decode()?).await;
        }
        let raw = records.raw()?;
        self.write_records(model, raw.into_iter().map(RecordJson::from).collect())
            .await
    }

    async fn delete_records(&self, model: &str, ids: Vec<String>) -> Result<(), ProviderError> {
        if !self.stores() {
            return Ok(());
        }
        let deleted = self
            .state
            .connections
            .store()
            .delete_records(&self.connection_row(), model, &ids, Utc::now())
            .await
            .map_err(storage)?;
        lock(&self.counts).deleted += deleted;
        Ok(())
    }

    async fn begin_crawl(&self, model: &str) -> Result<(), ProviderError> {
        if !self.stores() {
            return Ok(());
        }
        self.state
            .connections
            .store()
            .begin_crawl(&self.connection_row(), model)
            .await
            .map_err(storage)
    }

    async fn end_crawl(&self, model: &str) -> Result<u64, ProviderError> {
        if !self.stores() {
            return Ok(0);
        }
        let deleted = self
            .state
            .connections
            .store()
            .end_crawl(&self.connection_row(), model, Utc::now())
            .await
            .map_err(storage)?
            .ok_or_else(|| {
                ProviderError::internal(format!(
                    "end_crawl(`{model}`) without begin_crawl: no crawl is in progress"
                ))
            })?;
        lock(&self.counts).deleted += deleted;
        Ok(deleted)
    }

    async fn checkpoint(&self) -> Result<Option<Value>, ProviderError> {
        match &self.purpose {
            Purpose::Sync { sync, .. } => Ok(self
                .state
                .connections
                .store()
                .sync_state(&self.connection_row(), sync)
                .await
                .map_err(storage)?
                .checkpoint),
            Purpose::DryRun { .. } => Ok(lock(&self.dry_checkpoint).clone()),
            Purpose::Action => Ok(None),
        }
    }

    async fn set_checkpoint(&self, checkpoint: Value) -> Result<(), ProviderError> {
        match &self.purpose {
            Purpose::Sync { sync, .. } => {
                crash_point::reached("sync.before_checkpoint");
                let store = self.state.connections.store();
                let row = self.connection_row();
                store
                    .set_checkpoint(&row, sync, Some(&checkpoint))
                    .await
                    .map_err(storage)?;
                self.flush_logs().await;
                Ok(())
            }
            Purpose::DryRun { .. } => {
                *lock(&self.dry_checkpoint) = Some(checkpoint);
                Ok(())
            }
            Purpose::Action => Err(ProviderError::invalid_input(
                "actions have no checkpoint; only syncs do",
            )),
        }
    }

    fn run_info(&self) -> RunInfo {
        self.run_info.clone()
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        tracing::debug!(integration = %self.integration.name, sync = ?self.sync_name(), level, "{message}");
        if self.logs_kept.fetch_add(1, Ordering::Relaxed) >= MAX_LOG_LINES {
            self.logs_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        lock(&self.logs).push(RunLog {
            at: Utc::now(),
            level: level.to_owned(),
            message: message.to_owned(),
        });
    }
}
