//! Providers that are only a spec: auth and the proxy, no code.
//!
//! Most of what a connection needs (OAuth, token refresh, the proxy, retries, limits) is the
//! host's, driven by the spec. A provider without syncs or actions therefore needs no Rust at
//! all: the host loads its spec file and wraps it in a [`SpecOnlyProvider`], which the rest of
//! the host uses like any other [`Provider`].

use async_trait::async_trait;
use serde_json::Value;

use crate::context::Context;
use crate::error::ProviderError;
use crate::provider::{Provider, unknown};
use crate::spec::{ProviderSpec, SpecError};

/// A provider made of its spec alone.
#[derive(Debug, Clone)]
pub struct SpecOnlyProvider {
    spec: ProviderSpec,
}

impl SpecOnlyProvider {
    /// Parses and validates a spec file and checks that it needs no code. `source` names the
    /// file in error messages.
    pub fn parse(source: &str, text: &str) -> Result<Self, SpecError> {
        Self::from_spec(source, ProviderSpec::parse(source, text)?)
    }

    /// Wraps a valid spec. Syncs and actions are code, so a spec that declares any is refused,
    /// each naming its key: otherwise the provider would start and fail at its first run.
    pub fn from_spec(source: &str, spec: ProviderSpec) -> Result<Self, SpecError> {
        let syncs = spec.syncs.iter().enumerate().map(|(i, s)| {
            format!(
                "syncs[{i}].name: sync `{}` needs code; a spec-only provider declares no syncs \
                 (write a Rust provider: `cargo xtask new-provider {}`)",
                s.name, spec.id
            )
        });
        let actions = spec.actions.iter().enumerate().map(|(i, a)| {
            format!(
                "actions[{i}].name: action `{}` needs code; a spec-only provider declares no \
                 actions (write a Rust provider: `cargo xtask new-provider {}`)",
                a.name, spec.id
            )
        });
        let problems: Vec<String> = syncs.chain(actions).collect();
        if problems.is_empty() {
            Ok(SpecOnlyProvider { spec })
        } else {
            Err(SpecError {
                source: source.to_owned(),
                problems,
            })
        }
    }
}

#[async_trait]
impl Provider for SpecOnlyProvider {
    fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    async fn run_sync(&self, name: &str, _ctx: &dyn Context) -> Result<(), ProviderError> {
        Err(unknown("sync", name, &self.spec))
    }

    async fn run_action(
        &self,
        name: &str,
        _input: Value,
        _ctx: &dyn Context,
    ) -> Result<Value, ProviderError> {
        Err(unknown("action", name, &self.spec))
    }
}
