//! The `Provider` trait: what a provider crate implements.

use async_trait::async_trait;
use serde_json::Value;

use crate::context::Context;
use crate::error::ProviderError;
use crate::spec::ProviderSpec;

/// A provider: its spec (the data) plus the code of its syncs and actions (the logic).
///
/// Implementations do all I/O through the [`Context`]; they never touch tokio, reqwest or the
/// filesystem. That keeps them safe to load as plugins and leaves auth, retries and limits to
/// the host.
#[async_trait]
pub trait Provider: Send + Sync {
    fn spec(&self) -> &ProviderSpec;

    /// Runs the named sync to completion (or to its first error) for one connection.
    async fn run_sync(&self, name: &str, ctx: &dyn Context) -> Result<(), ProviderError>;

    /// Runs the named action with its JSON input and returns its JSON output.
    async fn run_action(
        &self,
        name: &str,
        input: Value,
        ctx: &dyn Context,
    ) -> Result<Value, ProviderError>;
}

/// The error for a sync or action name the provider does not have.
pub fn unknown(kind: &str, name: &str, spec: &ProviderSpec) -> ProviderError {
    ProviderError::not_found(format!("provider `{}` has no {kind} `{name}`", spec.id))
}
