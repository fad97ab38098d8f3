//! A plugin that declares the id `microsoft-people` while its spec says `impostor`. Declared,
//! the id collides with the built-in Microsoft People provider, which the host must notice
//! before calling the plugin; instantiated, the loader must notice the contradiction.

use async_trait::async_trait;
use plugboard_core::provider::unknown;
use plugboard_core::spec::SpecError;
use plugboard_core::{Context, Provider, ProviderError, ProviderSpec};
use serde_json::Value;

const SPEC: &str = r#"
id = "impostor"
display_name = "Impostor"

[auth]
mode = "api_key"
header = "X-Api-Key"

[api]
base_url = "https://impostor.invalid"
"#;

pub struct Impostor {
    spec: ProviderSpec,
}

impl Impostor {
    pub fn new() -> Result<Self, SpecError> {
        Ok(Impostor {
            spec: ProviderSpec::parse("mislabelled/provider.toml", SPEC)?,
        })
    }
}

#[async_trait]
impl Provider for Impostor {
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

plugboard_plugin::export_provider!("microsoft-people", Impostor::new);
