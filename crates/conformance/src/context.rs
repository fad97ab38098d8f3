//! A [`Context`] that answers HTTP from a [`Script`] and records every call.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use plugboard_core::{
    Context, HttpRequest, HttpResponse, LogLevel, ProviderError, ProviderSpec, Record, RunInfo,
    SyncMode,
};
use serde_json::Value;

use crate::{Script, path_of};

/// One call a provider made on its context, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Http(HttpRequest),
    Save { model: String, ids: Vec<String> },
    Delete { model: String, ids: Vec<String> },
    BeginCrawl(String),
    EndCrawl(String),
    SetCheckpoint(Value),
    Log(LogLevel, String),
}

/// One run's context: a full run of a fresh connection, with the spec's connection config
/// defaults, answering from the script.
pub struct ScriptedContext<'a> {
    script: &'a Script,
    base_url: String,
    run_info: RunInfo,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// How many answers each scripted request has served.
    served: BTreeMap<(String, String), usize>,
    unanswered: Vec<String>,
    saved: BTreeMap<String, Vec<Record>>,
    checkpoint: Option<Value>,
}

impl<'a> ScriptedContext<'a> {
    pub fn new(spec: &ProviderSpec, script: &'a Script) -> Self {
        ScriptedContext {
            script,
            base_url: spec.api.base_url.clone(),
            run_info: RunInfo {
                connection_id: "conformance".to_owned(),
                connection_config: spec
                    .resolve_connection_config(&BTreeMap::new())
                    .unwrap_or_default(),
                mode: SyncMode::Full,
                previous: None,
                page_size: None,
            },
            state: Mutex::default(),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The records saved, by model.
    pub fn saved(&self) -> BTreeMap<String, Vec<Record>> {
        self.lock().saved.clone()
    }

    /// A problem per request the script had no answer for.
    pub fn unanswered(&self) -> Vec<String> {
        self.lock().unanswered.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Context for ScriptedContext<'_> {
    async fn http(&self, request: HttpRequest) -> Result<HttpResponse, ProviderError> {
        let key = (request.method.clone(), path_of(&request, &self.base_url));
        let mut state = self.lock();
        state.calls.push(Call::Http(request));
        let Some(answers) = self.script.responses.get(&key) else {
            let problem = format!(
                "requested `{} {}`, which the script does not answer; add \
                 `.respond(\"{}\", \"{}\", 200, …)`",
                key.0, key.1, key.0, key.1
            );
            state.unanswered.push(problem);
            return Ok(HttpResponse {
                status: 404,
                headers: Vec::new(),
                body: br#"{"error":"not scripted"}"#.to_vec(),
            });
        };
        let served = state.served.entry(key).or_default();
        let (status, body) = &answers[(*served).min(answers.len() - 1)];
        *served += 1;
        Ok(HttpResponse {
            status: *status,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: body.to_string().into_bytes(),
        })
    }

    async fn save_records(&self, model: &str, records: Vec<Record>) -> Result<(), ProviderError> {
        let mut state = self.lock();
        let ids = records.iter().map(|r| r.id.clone()).collect();
        state.calls.push(Call::Save {
            model: model.to_owned(),
            ids,
        });
        state
            .saved
            .entry(model.to_owned())
            .or_default()
            .extend(records);
        Ok(())
    }

    async fn delete_records(&self, model: &str, ids: Vec<String>) -> Result<(), ProviderError> {
        self.lock().calls.push(Call::Delete {
            model: model.to_owned(),
            ids,
        });
        Ok(())
    }

    async fn begin_crawl(&self, model: &str) -> Result<(), ProviderError> {
        self.lock().calls.push(Call::BeginCrawl(model.to_owned()));
        Ok(())
    }

    async fn end_crawl(&self, model: &str) -> Result<u64, ProviderError> {
        self.lock().calls.push(Call::EndCrawl(model.to_owned()));
        Ok(0)
    }

    async fn checkpoint(&self) -> Result<Option<Value>, ProviderError> {
        Ok(self.lock().checkpoint.clone())
    }

    async fn set_checkpoint(&self, checkpoint: Value) -> Result<(), ProviderError> {
        let mut state = self.lock();
        state.calls.push(Call::SetCheckpoint(checkpoint.clone()));
        state.checkpoint = Some(checkpoint);
        Ok(())
    }

    fn run_info(&self) -> RunInfo {
        self.run_info.clone()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.lock().calls.push(Call::Log(level, message.to_owned()));
    }
}
