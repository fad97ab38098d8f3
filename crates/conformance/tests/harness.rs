//! The harness itself: what it flags in a provider and in a spec file, each problem named.

use async_trait::async_trait;
use plugboard_conformance::{Call, Conformance, Script, check_spec};
use plugboard_core::provider::unknown;
use plugboard_core::{Context, HttpRequest, Provider, ProviderError, ProviderSpec, Record};
use serde_json::{Value, json};

const SPEC: &str = r#"
id = "acme-crm"
display_name = "Acme CRM"

[auth]
mode = "api_key"
header = "X-Api-Key"

[api]
base_url = "https://api.acme.example"

[models.Contact]
description = "A contact"

[[syncs]]
name = "contacts"
model = "Contact"
frequency = "1h"

[[syncs]]
name = "blank-ids"
model = "Contact"
frequency = "1h"

[[syncs]]
name = "forgotten"
model = "Contact"
frequency = "1h"

[[actions]]
name = "lookup"

[[actions]]
name = "unscripted"
"#;

/// A provider with one of each mistake the harness knows.
struct Acme(ProviderSpec);

#[async_trait]
impl Provider for Acme {
    fn spec(&self) -> &ProviderSpec {
        &self.0
    }

    async fn run_sync(&self, name: &str, ctx: &dyn Context) -> Result<(), ProviderError> {
        match name {
            "contacts" | "blank-ids" => {
                if name == "blank-ids" {
                    // Begun, and never ended: the run stops after one page.
                    ctx.begin_crawl("Contact").await?;
                }
                let page = ctx.get_json(HttpRequest::get("/contacts")).await?;
                let records = page["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let id = match name {
                            "contacts" => c["id"].as_str().unwrap_or_default(),
                            _ => "",
                        };
                        Record::new(id, c.clone())
                    })
                    .collect();
                ctx.save_records("Contact", records).await
            }
            _ => Err(unknown("sync", name, &self.0)),
        }
    }

    async fn run_action(
        &self,
        name: &str,
        input: Value,
        ctx: &dyn Context,
    ) -> Result<Value, ProviderError> {
        match name {
            // An absolute URL below the base URL, as a next link would be.
            "lookup" => {
                let id = input["id"].as_str().unwrap_or_default();
                let url = format!("https://api.acme.example/contacts/{id}");
                ctx.get_json(HttpRequest::get(url)).await
            }
            "unscripted" => ctx.get_json(HttpRequest::get("/elsewhere?x=1")).await,
            _ => Err(unknown("action", name, &self.0)),
        }
    }
}

fn script() -> Script {
    Script::new()
        .respond(
            "GET",
            "/contacts",
            200,
            json!({"data": [{"id": "c1"}, {"id": "c2"}]}),
        )
        .respond("GET", "/contacts/c1", 200, json!({"id": "c1"}))
        .action_input("lookup", json!({"id": "c1"}))
}

#[test]
fn every_problem_is_reported_naming_the_provider_and_the_sync_or_action() {
    let provider = Acme(ProviderSpec::parse("acme.toml", SPEC).unwrap());
    let report = Conformance::new(&provider, script()).run();
    assert_eq!(
        report.problems,
        [
            "provider `acme-crm`, sync `blank-ids`: 2 of 2 `Contact` records have an empty id; every record needs the provider's id",
            "provider `acme-crm`, sync `blank-ids`: began a crawl of `Contact` and never ended it: read every page the script answers (script the last page without a next cursor or link) and call end_crawl",
            "provider `acme-crm`, sync `forgotten`: declared under [[syncs]] but the provider has no code for it (provider `acme-crm` has no sync `forgotten`)",
            "provider `acme-crm`, sync `forgotten`: saved no records; script a response with at least one record so the records can be checked",
            "provider `acme-crm`, action `unscripted`: failed against the scripted responses: provider answered 404: {\"error\":\"not scripted\"}",
            "provider `acme-crm`, action `unscripted`: requested `GET /elsewhere`, which the script does not answer; add `.respond(\"GET\", \"/elsewhere\", 200, …)`",
        ]
    );
    // What each run asked is kept, for tests that check more.
    assert_eq!(
        report.calls["sync `contacts`"],
        [
            Call::Http(HttpRequest::get("/contacts")),
            Call::Save {
                model: "Contact".to_owned(),
                ids: vec!["c1".to_owned(), "c2".to_owned()]
            },
        ]
    );
}

#[test]
#[should_panic(
    expected = "the provider does not conform:\n  - provider `acme-crm`, sync `blank-ids`"
)]
fn assert_ok_lists_the_problems() {
    let provider = Acme(ProviderSpec::parse("acme.toml", SPEC).unwrap());
    Conformance::new(&provider, script()).run().assert_ok();
}

#[test]
fn a_provider_doing_everything_it_declares_passes() {
    let spec = SPEC
        .split("[[syncs]]\nname = \"blank-ids\"")
        .next()
        .unwrap()
        .to_owned()
        + "[[actions]]\nname = \"lookup\"\n";
    let provider = Acme(ProviderSpec::parse("acme.toml", &spec).unwrap());
    Conformance::new(&provider, script()).run().assert_ok();
}

#[test]
fn spec_files_are_checked_for_validity_blanks_code_and_their_name() {
    let text = r#"
id = "acme-crm"
display_name = "TODO(provider-author): the name people know the provider by"

[auth]
mode = "oauth2"
authorization_url = "https://todo.invalid/authorize"
token_url = "http://acme.example/token"

[[auth.scopes]]
name = "contacts.read"
description = "TODO(provider-author): what this scope grants"

[api]
base_url = "https://api.acme.example"

[models.Contact]

[[syncs]]
name = "contacts"
model = "Contact"
frequency = "1h"
"#;
    assert_eq!(
        check_spec("providers/specs/acme.toml", text, true),
        [
            "provider `acme-crm` (providers/specs/acme.toml): auth.token_url: `http://acme.example/token` must be an https:// URL",
            "provider `acme-crm` (providers/specs/acme.toml): auth.authorization_url: `https://todo.invalid/authorize` is a blank left by the scaffold; fill it in",
            "provider `acme-crm` (providers/specs/acme.toml): auth.scopes[0].description: `TODO(provider-author): what this scope grants` is a blank left by the scaffold; fill it in",
            "provider `acme-crm` (providers/specs/acme.toml): display_name: `TODO(provider-author): the name people know the provider by` is a blank left by the scaffold; fill it in",
            "provider `acme-crm` (providers/specs/acme.toml): id: `acme-crm` must match its file name `acme`",
        ]
    );
    // The same spec as a Rust provider's may have syncs; only the spec-only rule goes.
    let problems = check_spec("providers/acme-crm/provider.toml", text, false);
    assert_eq!(problems.len(), 4, "{problems:#?}");
}
