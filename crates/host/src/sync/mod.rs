//! Running provider code: syncs on a schedule or on demand, and actions.
//!
//! - [`context`]: the host's [`Context`](plugboard_core::Context), through which provider code
//!   does all its I/O — HTTP like the proxy (auth, single-flight refresh, retries), limited to
//!   the provider's concurrency per connection, records into the store.
//! - [`runner`]: one run of one sync for one connection, recorded with its counts, error and
//!   log lines; a failed or panicking run keeps its checkpoint and deletes nothing.
//! - [`scheduler`]: every enabled sync of every connection at its frequency, one run per
//!   connection and sync at a time, plus the trigger, pause and start controls.
//! - [`status`]: a sync's state for one connection, from the scheduler and the store.

pub mod context;
pub mod runner;
pub mod scheduler;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use plugboard_core::spec::HumanDuration;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::integrations::Integrations;
use crate::webhooks::Webhooks;
use plugboard_store::Connection;

/// One sync of an integration as it runs: the spec's, with the integration's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    pub name: String,
    pub model: String,
    pub enabled: bool,
    pub frequency: Duration,
    /// The page size the integration chose; `None` keeps the provider's.
    pub page_size: Option<u32>,
}

/// The shortest frequency a sync may have: a shorter one would keep the scheduler spinning.
pub const MIN_FREQUENCY: Duration = Duration::from_secs(1);
/// The longest frequency a sync may have, 365 days. Unbounded, a frequency such as
/// `1000000000000d` overflowed the date of the next run and panicked the scheduler, stopping
/// every sync; a sync meant to run less than once a year is better paused.
pub const MAX_FREQUENCY: Duration = Duration::from_secs(365 * 86_400);

/// Reads a sync's frequency, such as `30s` or `1d`, and checks it is within [`MIN_FREQUENCY`]
/// and [`MAX_FREQUENCY`]. The config reader and `POST /syncs/frequency` both use it, so the two
/// accept the same values; the error names the value and the allowed range, and its caller
/// says where the value came from.
pub fn parse_frequency(text: &str) -> Result<Duration, String> {
    let frequency = text.parse::<HumanDuration>()?.get();
    if (MIN_FREQUENCY..=MAX_FREQUENCY).contains(&frequency) {
        Ok(frequency)
    } else {
        Err(format!(
            "`{}` is out of range: expected {} to {}d",
            text.trim(),
            HumanDuration(MIN_FREQUENCY),
            MAX_FREQUENCY.as_secs() / 86_400
        ))
    }
}

/// Sync machinery shared by the API, the scheduler and the runs.
pub struct Syncs {
    /// By integration; swapped whole by a configuration reload ([`Syncs::replace_settings`]).
    settings: RwLock<Arc<BTreeMap<String, Vec<SyncSettings>>>>,
    /// One semaphore per connection (row id), shared by its syncs and actions, sized by the
    /// provider's `api.max_concurrency`.
    limiters: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub schedule: scheduler::Schedule,
    pub webhooks: Option<Arc<Webhooks>>,
}

impl Syncs {
    pub fn new(
        config: &Config,
        integrations: &Integrations,
        webhooks: Option<Arc<Webhooks>>,
    ) -> Syncs {
        Syncs {
            settings: RwLock::new(Arc::new(settings(config, integrations))),
            limiters: Mutex::new(HashMap::new()),
            schedule: scheduler::Schedule::default(),
            webhooks,
        }
    }

    /// Takes the sync settings of a reloaded configuration. Whether a sync is enabled is read
    /// at every scheduler tick; its next run is planned again from its history with the new
    /// frequency.
    pub async fn replace_settings(&self, config: &Config, integrations: &Integrations) {
        let new = Arc::new(settings(config, integrations));
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = new;
        self.schedule.plan_again().await;
    }

    /// The syncs of an integration; empty for an unknown one.
    pub fn settings(&self, integration: &str) -> Vec<SyncSettings> {
        let settings = self
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        settings.get(integration).cloned().unwrap_or_default()
    }

    pub fn sync_settings(&self, integration: &str, sync: &str) -> Option<SyncSettings> {
        self.settings(integration)
            .into_iter()
            .find(|s| s.name == sync)
    }

    /// The connection's concurrency limit, if its provider declares one.
    fn limiter(&self, connection_row: &str, max: Option<u32>) -> Option<Arc<Semaphore>> {
        let max = max?.max(1) as usize;
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        Some(
            limiters
                .entry(connection_row.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(max)))
                .clone(),
        )
    }

    /// A connection was created or reconnected: its syncs start now, and the webhook hears it.
    pub fn connection_saved(&self, connection: &Connection) {
        let event = if connection.token_version == 1 {
            "connection.created"
        } else {
            "connection.reconnected"
        };
        self.emit(
            event,
            json!({
                "integration": connection.key.integration,
                "connection_id": connection.key.connection_id,
            }),
        );
        self.schedule.wake();
    }

    pub fn emit(&self, event: &str, data: serde_json::Value) {
        if let Some(webhooks) = &self.webhooks {
            webhooks.send(event, data);
        }
    }
}

/// The syncs of each integration: the spec's, with the integration's overrides.
fn settings(config: &Config, integrations: &Integrations) -> BTreeMap<String, Vec<SyncSettings>> {
    let mut settings = BTreeMap::new();
    for integration in integrations.iter() {
        let overrides = config
            .integrations
            .get(&integration.name)
            .map(|c| c.syncs.clone())
            .unwrap_or_default();
        let syncs = integration
            .spec()
            .syncs
            .iter()
            .map(|spec| {
                let custom = overrides.get(&spec.name).cloned().unwrap_or_default();
                SyncSettings {
                    name: spec.name.clone(),
                    model: spec.model.clone(),
                    enabled: custom.enabled.unwrap_or(true),
                    frequency: custom.frequency.unwrap_or(spec.frequency.get()),
                    page_size: custom.page_size,
                }
            })
            .collect();
        settings.insert(integration.name.clone(), syncs);
    }
    settings
}
