//! A provider that exercises the boundary: one sync calls every context method, others fail
//! or panic on request, and its actions echo their input or pass an HTTP request through.
//! The loader's tests run it against a real `TestContext` and the emulator.

use async_trait::async_trait;
use plugboard_core::provider::unknown;
use plugboard_core::spec::SpecError;
use plugboard_core::{
    Context, EncodedRecords, ErrorKind, HttpRequest, LogLevel, Provider, ProviderError,
    ProviderSpec, Record,
};
use serde_json::{Value, json};

const SPEC: &str = r#"
id = "probe"
display_name = "Probe"

[auth]
mode = "api_key"
header = "X-Api-Key"

[api]
base_url = "https://probe.invalid"

[models.Item]
description = "What the probe saw of the host."

[[syncs]]
name = "every-call"
model = "Item"
frequency = "1h"

[[syncs]]
name = "end-without-begin"
model = "Item"
frequency = "1h"

[[syncs]]
name = "fail"
model = "Item"
frequency = "1h"

[[syncs]]
name = "panic"
model = "Item"
frequency = "1h"

[[actions]]
name = "echo"

[[actions]]
name = "http"

[[actions]]
name = "panic"
"#;

const MODEL: &str = "Item";

pub struct Probe {
    spec: ProviderSpec,
}

impl Probe {
    pub fn new() -> Result<Self, SpecError> {
        Ok(Probe {
            spec: ProviderSpec::parse("probe/provider.toml", SPEC)?,
        })
    }
}

#[async_trait]
impl Provider for Probe {
    fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    async fn run_sync(&self, name: &str, ctx: &dyn Context) -> Result<(), ProviderError> {
        match name {
            "every-call" => every_call(ctx).await,
            // The host's error must come back through the provider unchanged.
            "end-without-begin" => ctx.end_crawl(MODEL).await.map(drop),
            "fail" => Err(ProviderError::new(
                ErrorKind::Http { status: 418 },
                "the probe fails on purpose",
            )),
            "panic" => {
                // Suspend on real I/O first, so the panic happens in a later poll.
                ctx.http(HttpRequest::get("/_emulator/clock")).await?;
                panic!("the probe panics in a sync, on purpose")
            }
            _ => Err(unknown("sync", name, &self.spec)),
        }
    }

    async fn run_action(
        &self,
        name: &str,
        input: Value,
        ctx: &dyn Context,
    ) -> Result<Value, ProviderError> {
        match name {
            "echo" => Ok(input),
            "http" => {
                let request: HttpRequest = serde_json::from_value(input)
                    .map_err(|e| ProviderError::invalid_input(e.to_string()))?;
                let response = ctx.http(request).await?;
                serde_json::to_value(response).map_err(|e| ProviderError::internal(e.to_string()))
            }
            "panic" => panic!("the probe panics in an action, on purpose"),
            _ => Err(unknown("action", name, &self.spec)),
        }
    }
}

/// Every `Context` method once, leaving traces the test can check: records carrying what the
/// host told the plugin (saved decoded and already encoded), one record deleted, a crawl
/// ended, logs at every level, a checkpoint.
async fn every_call(ctx: &dyn Context) -> Result<(), ProviderError> {
    let info = ctx.run_info();
    let previous = ctx.checkpoint().await?;
    ctx.begin_crawl(MODEL).await?;
    ctx.save_records(
        MODEL,
        vec![
            Record::new("seen", json!({"run_info": info, "previous": previous})),
            Record::new("doomed", Value::Null),
        ],
    )
    .await?;
    // Written by hand, as a provider that produces JSON itself would: it crosses as it is.
    let encoded = r#"[{"id":"AAMk+/=\u00fc","data":{"text":"ünïcödé ✓","n":1.5}}]"#;
    ctx.save_encoded_records(MODEL, EncodedRecords::new(encoded.as_bytes().to_vec()))
        .await?;
    ctx.delete_records(MODEL, vec!["doomed".to_owned()]).await?;
    let unseen = ctx.end_crawl(MODEL).await?;
    for level in [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ] {
        ctx.log(level, &format!("{level:?} from the probe"));
    }
    ctx.set_checkpoint(json!({"unseen": unseen})).await
}

plugboard_plugin::export_provider!("probe", Probe::new);
