//! Spec-only providers: a spec without code is a provider, as long as it asks for no code.

use plugboard_core::{ErrorKind, Provider, SpecOnlyProvider};

const AUTH_AND_API: &str = r#"
id = "acme-crm"
display_name = "Acme CRM"

[auth]
mode = "oauth2"
authorization_url = "https://acme.example/oauth/authorize"
token_url = "https://acme.example/oauth/token"

[[auth.scopes]]
name = "contacts.read"
description = "Read contacts"
default = true

[api]
base_url = "https://api.acme.example"
"#;

#[test]
fn a_spec_with_auth_and_api_only_is_a_provider() {
    let provider = SpecOnlyProvider::parse("specs/acme-crm.toml", AUTH_AND_API).unwrap();
    assert_eq!(provider.spec().id, "acme-crm");
}

#[tokio::test]
async fn every_sync_and_action_is_unknown() {
    let provider = SpecOnlyProvider::parse("specs/acme-crm.toml", AUTH_AND_API).unwrap();
    let ctx = NoContext;
    let sync = provider.run_sync("contacts", &ctx).await.unwrap_err();
    assert_eq!(sync.kind, ErrorKind::NotFound);
    assert_eq!(sync.message, "provider `acme-crm` has no sync `contacts`");
    let action = provider
        .run_action("create-contact", serde_json::json!({}), &ctx)
        .await
        .unwrap_err();
    assert_eq!(action.kind, ErrorKind::NotFound);
    assert_eq!(
        action.message,
        "provider `acme-crm` has no action `create-contact`"
    );
}

#[test]
fn syncs_and_actions_are_refused_each_naming_its_key() {
    let text = format!(
        "{AUTH_AND_API}\n[models.Contact]\n\n[[syncs]]\nname = \"contacts\"\nmodel = \"Contact\"\n\
         frequency = \"1h\"\n\n[[actions]]\nname = \"create-contact\"\n"
    );
    let error = SpecOnlyProvider::parse("specs/acme-crm.toml", &text).unwrap_err();
    assert_eq!(error.source, "specs/acme-crm.toml");
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(error.problems[0].starts_with("syncs[0].name: sync `contacts` needs code"));
    assert!(error.problems[1].starts_with("actions[0].name: action `create-contact` needs code"));
}

#[test]
fn an_invalid_spec_is_refused_as_the_parser_says() {
    let text = AUTH_AND_API.replace("https://api.acme.example", "http://api.acme.example");
    let error = SpecOnlyProvider::parse("specs/acme-crm.toml", &text).unwrap_err();
    assert_eq!(
        error.problems,
        ["api.base_url: `http://api.acme.example` must be an https:// URL"]
    );
}

/// The provider never reaches its context; any call would be a bug.
struct NoContext;

#[async_trait::async_trait]
impl plugboard_core::Context for NoContext {
    async fn http(
        &self,
        _: plugboard_core::HttpRequest,
    ) -> Result<plugboard_core::HttpResponse, plugboard_core::ProviderError> {
        panic!("a spec-only provider makes no requests")
    }
    async fn save_records(
        &self,
        _: &str,
        _: Vec<plugboard_core::Record>,
    ) -> Result<(), plugboard_core::ProviderError> {
        panic!("a spec-only provider saves nothing")
    }
    async fn delete_records(
        &self,
        _: &str,
        _: Vec<String>,
    ) -> Result<(), plugboard_core::ProviderError> {
        panic!("a spec-only provider deletes nothing")
    }
    async fn begin_crawl(&self, _: &str) -> Result<(), plugboard_core::ProviderError> {
        panic!("a spec-only provider crawls nothing")
    }
    async fn end_crawl(&self, _: &str) -> Result<u64, plugboard_core::ProviderError> {
        panic!("a spec-only provider crawls nothing")
    }
    async fn checkpoint(&self) -> Result<Option<serde_json::Value>, plugboard_core::ProviderError> {
        panic!("a spec-only provider keeps no checkpoint")
    }
    async fn set_checkpoint(
        &self,
        _: serde_json::Value,
    ) -> Result<(), plugboard_core::ProviderError> {
        panic!("a spec-only provider keeps no checkpoint")
    }
    fn run_info(&self) -> plugboard_core::RunInfo {
        panic!("a spec-only provider runs nothing")
    }
    fn log(&self, _: plugboard_core::LogLevel, _: &str) {}
}
