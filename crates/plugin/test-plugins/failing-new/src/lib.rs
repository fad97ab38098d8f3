//! A plugin whose constructor fails the way a real one would: its embedded spec is invalid.
//! Loading it must fail with the constructor's error.

use async_trait::async_trait;
use plugboard_core::provider::unknown;
use plugboard_core::spec::SpecError;
use plugboard_core::{Context, Provider, ProviderError, ProviderSpec};
use serde_json::Value;

const SPEC: &str = r#"
id = "failing-new"
display_name = "Failing constructor"

[auth]
mode = "api_key"

[api]
base_url = "http://failing-new.invalid/"
"#;

pub struct FailingNew {
    spec: ProviderSpec,
}

impl FailingNew {
    pub fn new() -> Result<Self, SpecError> {
        Ok(FailingNew {
            spec: ProviderSpec::parse("failing-new/provider.toml", SPEC)?,
        })
    }
}

#[async_trait]
impl Provider for FailingNew {
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

plugboard_plugin::export_provider!("failing-new", FailingNew::new);
