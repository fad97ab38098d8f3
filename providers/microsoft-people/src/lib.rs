//! Plugboard provider for the Microsoft Graph People API, through Microsoft Entra ID.
//!
//! The facts (OAuth URLs, scopes, API base, retry and throttling rules, pagination) are data in
//! `provider.toml`; this crate adds the logic the spec cannot express:
//! - the `people` sync (`people_sync.rs`): a resumable full crawl of `/me/people` into
//!   [`Person`] records, with people no longer returned deleted after a complete crawl;
//! - the `search-people` and `list-user-people` actions (`actions.rs`).
//!
//! Like every provider it is pure logic: all I/O goes through the host's
//! [`plugboard_core::Context`]. Built with the `plugin` feature, its cdylib is a
//! Plugboard plugin exporting this provider.

mod actions;
#[cfg(test)]
mod fuzz;
mod graph;
mod lenient;
mod people_sync;
mod person;

use async_trait::async_trait;
use plugboard_core::provider::unknown;
use plugboard_core::spec::{PaginationSpec, SpecError};
use plugboard_core::{Context, Provider, ProviderError, ProviderSpec};
use serde_json::Value;

pub use person::{Email, Person, PersonType, Phone, PostalAddress, Website};

/// Where the spec lives in the repository; error messages name it.
pub const SPEC_PATH: &str = "providers/microsoft-people/provider.toml";

const SPEC_TEXT: &str = include_str!("../provider.toml");

/// The pagination preset the sync and the actions read Graph's lists with.
const PAGINATION: &str = "odata";
const SYNCS: &[&str] = &["people"];
const ACTIONS: &[&str] = &["search-people", "list-user-people"];

/// The spec as written, for tools that show or check it.
pub fn spec_text() -> &'static str {
    SPEC_TEXT
}

pub struct MicrosoftPeople {
    spec: ProviderSpec,
    pagination: PaginationSpec,
}

impl MicrosoftPeople {
    /// Parses the embedded spec and checks that it declares exactly what this code runs, so a
    /// spec edit that drops or renames a sync, an action or the pagination preset fails at
    /// start-up rather than on the first run.
    pub fn new() -> Result<Self, SpecError> {
        let spec = ProviderSpec::parse(SPEC_PATH, SPEC_TEXT)?;
        let mut problems = Vec::new();
        let declared_syncs: Vec<&str> = spec.syncs.iter().map(|s| s.name.as_str()).collect();
        let declared_actions: Vec<&str> = spec.actions.iter().map(|a| a.name.as_str()).collect();
        for (kind, declared, implemented) in [
            ("syncs", &declared_syncs, SYNCS),
            ("actions", &declared_actions, ACTIONS),
        ] {
            for name in implemented.iter().filter(|name| !declared.contains(name)) {
                problems.push(format!("{kind}: `{name}` is implemented but not declared"));
            }
            for name in declared.iter().filter(|name| !implemented.contains(name)) {
                problems.push(format!("{kind}: `{name}` is declared but has no code"));
            }
        }
        let pagination = spec.pagination(PAGINATION).cloned();
        if pagination.is_none() {
            problems.push(format!(
                "api.pagination.{PAGINATION}: the code reads Graph's lists with this preset; declare it"
            ));
        }
        match pagination {
            Some(pagination) if problems.is_empty() => Ok(MicrosoftPeople { spec, pagination }),
            _ => Err(SpecError {
                source: SPEC_PATH.to_owned(),
                problems,
            }),
        }
    }
}

#[cfg(feature = "plugin")]
plugboard_plugin::export_provider!("microsoft-people", MicrosoftPeople::new);

#[async_trait]
impl Provider for MicrosoftPeople {
    fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    async fn run_sync(&self, name: &str, ctx: &dyn Context) -> Result<(), ProviderError> {
        match name {
            "people" => people_sync::run(ctx, &self.pagination).await,
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
            "search-people" => actions::search_people(ctx, &self.pagination, &input).await,
            "list-user-people" => actions::list_user_people(ctx, &self.pagination, &input).await,
            _ => Err(unknown("action", name, &self.spec)),
        }
    }
}
