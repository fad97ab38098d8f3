//! The context: the only way provider code reaches the world.
//!
//! Every HTTP call, record write, checkpoint and log line of a provider goes through a
//! [`Context`] that the host implements. The host therefore is the one place for auth, token
//! refresh, retries, timeouts, concurrency limits and persistence, and provider code stays pure
//! logic that can be loaded from a dynamic library. Everything passed through it is owned and
//! serialisable so that it can cross such a boundary.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::encoded_records::{EncodedRecords, RawRecord, RecordSpan};
use crate::error::{ErrorKind, ProviderError};

#[async_trait]
pub trait Context: Send + Sync {
    /// Sends a request to the provider's API. The host resolves the URL against the API base
    /// URL, adds credentials and default headers, retries as the spec says, and refreshes the
    /// token when it must. Error statuses come back as responses; only transport failures and
    /// exhausted retries are errors.
    async fn http(&self, request: HttpRequest) -> Result<HttpResponse, ProviderError>;

    /// Saves (inserts or updates) records of a model. Unchanged records cost nothing.
    async fn save_records(&self, model: &str, records: Vec<Record>) -> Result<(), ProviderError>;

    /// Saves records that are already JSON, as [`Context::save_records`] does.
    ///
    /// Records from a plugin arrive as bytes. Decoding them into [`Value`]s only for the host to
    /// encode them again for storage costs most of what a sync spends on its records, so a host
    /// that stores JSON overrides this and writes each record's `data` as it is (see
    /// [`EncodedRecords::raw`]). The default decodes them and calls `save_records`.
    async fn save_encoded_records(
        &self,
        model: &str,
        records: EncodedRecords,
    ) -> Result<(), ProviderError> {
        self.save_records(model, records.decode()?).await
    }

    /// Marks records of a model as deleted.
    async fn delete_records(&self, model: &str, ids: Vec<String>) -> Result<(), ProviderError>;

    /// Starts a crawl of every record of a model. Records saved from now on count as seen.
    /// A crawl outlives the run that started it, so a run resumed from a checkpoint continues it.
    async fn begin_crawl(&self, model: &str) -> Result<(), ProviderError>;

    /// Ends the crawl after it reached the last page: records of the model that were not seen
    /// during it are marked deleted. Returns how many. Never call it after a partial crawl.
    async fn end_crawl(&self, model: &str) -> Result<u64, ProviderError>;

    /// The checkpoint saved by the last `set_checkpoint` of this sync, if any. A `full` run
    /// starts without one.
    async fn checkpoint(&self) -> Result<Option<Value>, ProviderError>;

    /// Saves where the sync is, so an interrupted run resumes there.
    async fn set_checkpoint(&self, checkpoint: Value) -> Result<(), ProviderError>;

    /// Which run this is and on whose behalf.
    fn run_info(&self) -> RunInfo;

    /// Keeps a log line with the run. Never log tokens or personal data in bulk.
    fn log(&self, level: LogLevel, message: &str);

    fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// GETs a path and decodes a successful JSON answer; an error status becomes an error.
    async fn get_json(&self, request: HttpRequest) -> Result<Value, ProviderError> {
        self.http(request).await?.error_for_status()?.json()
    }
}

/// A request to the provider's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    /// A path below the API base URL (`/v1.0/me/people`), or an absolute URL on the same origin
    /// as the base URL, such as a next link to follow verbatim. Anything else is refused.
    pub url: String,
    #[serde(default)]
    pub query: Vec<(String, String)>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        HttpRequest {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.header("Content-Type", "application/json")
    }

    pub fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }
}

/// The provider's answer, fully read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header of that name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON. `T` may borrow from the body (a `&RawValue`, say).
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ProviderError::decode(format!(
                "response (status {}) is not the expected JSON: {e}",
                self.status
            ))
        })
    }

    /// Turns an error status into an error carrying a short excerpt of the body.
    pub fn error_for_status(self) -> Result<Self, ProviderError> {
        if self.is_success() {
            return Ok(self);
        }
        let excerpt: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect();
        Err(ProviderError::new(
            ErrorKind::Http {
                status: self.status,
            },
            format!("provider answered {}: {excerpt}", self.status),
        ))
    }
}

/// One record of a model: the provider's id and the normalised payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The provider's id, byte for byte.
    pub id: String,
    pub data: Value,
}

impl Record {
    pub fn new(id: impl Into<String>, data: Value) -> Self {
        Record {
            id: id.into(),
            data,
        }
    }
}

/// Facts about the current run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub connection_id: String,
    /// The connection's config with defaults applied (e.g. `tenant`).
    pub connection_config: BTreeMap<String, String>,
    pub mode: SyncMode,
    pub previous: Option<PreviousRun>,
    /// The page size the integration chose for this sync (`[integrations.<key>.syncs.<name>]
    /// page_size`, at most the spec's `max_page_size`): [`crate::Pager::new`] asks for pages of
    /// this size instead of the preset's. `None` keeps the preset's. It travels with the run
    /// rather than the spec because a plugin parses its own copy of its spec.
    #[serde(default)]
    pub page_size: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Continue from the checkpoint, if any.
    Incremental,
    /// Start from scratch: no checkpoint.
    Full,
}

/// The last finished run of the same sync on the same connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousRun {
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub succeeded: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}
