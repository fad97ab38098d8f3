//! A plugin whose constructor panics. Loading it must fail with the panic's message, and the
//! host must go on.

use std::convert::Infallible;

use async_trait::async_trait;
use plugboard_core::provider::unknown;
use plugboard_core::{Context, Provider, ProviderError, ProviderSpec};
use serde_json::Value;

pub struct PanickingNew {
    spec: ProviderSpec,
}

impl PanickingNew {
    pub fn new() -> Result<Self, Infallible> {
        let spec = ProviderSpec::parse("panicking-new/provider.toml", "not = [toml")
            .unwrap_or_else(|_| panic!("panicking-new panics in its constructor, on purpose"));
        Ok(PanickingNew { spec })
    }
}

#[async_trait]
impl Provider for PanickingNew {
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

plugboard_plugin::export_provider!("panicking-new", PanickingNew::new);
