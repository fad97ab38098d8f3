//! The provider the test plugins share: an embedded spec, and what its runs do.
//!
//! Each test plugin is its own `cdylib`, so that each refusal is exercised by a library of its
//! own; what differs between them is the spec, the id they declare and how their constructor
//! or runs misbehave. The provider itself lives here once.

use async_trait::async_trait;
use plugboard_core::provider::unknown;
use plugboard_core::spec::SpecError;
use plugboard_core::{Context, HttpRequest, Provider, ProviderError, ProviderSpec};
use serde_json::Value;

/// What a [`Skeleton`] does when the host runs one of its syncs or actions.
#[derive(Debug, Clone)]
pub enum Runs {
    /// Nothing: every sync and action is unknown. For plugins the host must refuse before any
    /// run.
    Nothing,
    /// Every sync and action the spec declares sends this request through the host's context
    /// and then panics, so the panic comes in a later poll, after real I/O. A sync begins a
    /// crawl of its model first: a host that deleted records after a crawl that never ended
    /// would show it.
    PanicAfter(HttpRequest),
}

/// A provider that is its spec, plus [`Runs`].
#[derive(Debug)]
pub struct Skeleton {
    spec: ProviderSpec,
    runs: Runs,
}

impl Skeleton {
    /// Parses `text` as the spec at `path`, failing the way a real provider's constructor does
    /// when its spec is invalid.
    pub fn new(path: &str, text: &str, runs: Runs) -> Result<Skeleton, SpecError> {
        Ok(Skeleton {
            spec: ProviderSpec::parse(path, text)?,
            runs,
        })
    }

    /// Sends `request` through the host and panics, naming the run.
    async fn panic_after<T>(
        &self,
        request: &HttpRequest,
        kind: &str,
        name: &str,
        ctx: &dyn Context,
    ) -> Result<T, ProviderError> {
        ctx.http(request.clone()).await?;
        panic!("the test plugin panics in {kind} `{name}`, on purpose")
    }
}

#[async_trait]
impl Provider for Skeleton {
    fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    async fn run_sync(&self, name: &str, ctx: &dyn Context) -> Result<(), ProviderError> {
        match (&self.runs, self.spec.sync(name)) {
            (Runs::PanicAfter(request), Some(sync)) => {
                ctx.begin_crawl(&sync.model).await?;
                self.panic_after(request, "sync", name, ctx).await
            }
            _ => Err(unknown("sync", name, &self.spec)),
        }
    }

    async fn run_action(
        &self,
        name: &str,
        _input: Value,
        ctx: &dyn Context,
    ) -> Result<Value, ProviderError> {
        match (&self.runs, self.spec.action(name)) {
            (Runs::PanicAfter(request), Some(_)) => {
                self.panic_after(request, "action", name, ctx).await
            }
            _ => Err(unknown("action", name, &self.spec)),
        }
    }
}
