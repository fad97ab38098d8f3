//! The soak's connections: each its own tenant and user at the emulator with a few pages of
//! people, connected through the whole connect flow, so a revoked grant or a changed person
//! concerns one connection only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use plugboard_emulator::{CreateTenant, CreateUser};
use serde_json::{Value, json};

use super::FREQUENCY;
use super::metrics::Scrape;
use super::schedule::Injected;
use crate::support::World;

/// People per user, and the sync's page size: three pages a run.
pub const PEOPLE: usize = 25;
pub const PAGE_SIZE: usize = 10;
/// Connect flows at once while setting up.
const CONNECTING_AT_ONCE: usize = 16;

pub struct Member {
    pub connection_id: String,
    pub user_id: String,
}

pub struct Fleet {
    pub members: Vec<Member>,
}

/// How the last sync round after the faults went.
pub struct Round {
    pub took: Duration,
    /// The runs the host counted during the faulted run, by outcome, and how late they started.
    pub runs: String,
}

impl Fleet {
    /// Creates the tenants, users and people, and connects each user as `soak-NNNN` with the
    /// connection's tenant set to the user's own.
    pub async fn connect(world: &World, count: usize) -> Fleet {
        let members = futures::stream::iter(0..count)
            .map(|i| join(world, i))
            .buffered(CONNECTING_AT_ONCE)
            .collect()
            .await;
        Fleet { members }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The people sync's state of every connection (`GET /syncs/status`), by connection id.
    pub async fn sync_states(world: &World) -> BTreeMap<String, Value> {
        let body = world
            .host
            .get_json("/syncs/status?integration=microsoft")
            .await;
        body["syncs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["connection_id"].as_str().unwrap().to_owned(), s.clone()))
            .collect()
    }

    /// Waits until every connection's first sync run succeeded.
    pub async fn wait_for_first_syncs(&self, world: &World) {
        let deadline = Instant::now() + Duration::from_secs(120) + self.len() as u32 * ONE_SYNC;
        loop {
            let states = Self::sync_states(world).await;
            let waiting: Vec<&str> = self
                .members
                .iter()
                .filter(|m| {
                    states
                        .get(&m.connection_id)
                        .is_none_or(|s| s["last_run"]["status"] != "success")
                })
                .map(|m| m.connection_id.as_str())
                .collect();
            if waiting.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} connection(s) never finished a first sync, e.g. {:?}",
                waiting.len(),
                states.get(waiting[0])
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Asks for a full run of every connection whose grant is intact, once the faults have
    /// stopped, and waits until each has finished one that started since; a run that then
    /// failed is a problem, since nothing was faulted any more. Full, because a run resuming
    /// from a failed run's checkpoint would not read again the pages that run read before a
    /// change at the provider: only a crawl begun after the last change must see all of them.
    /// The problems, and how the round and the whole run went since `before`.
    pub async fn last_round(
        &self,
        world: &World,
        faults: &Injected,
        before: &Scrape,
    ) -> (Round, Vec<String>) {
        let started = Instant::now();
        let intact = self
            .members
            .iter()
            .filter(|m| !faults.revoked.contains(&m.connection_id));
        // When each was asked for: the scheduler starts a run asked for before a scheduled one.
        let asked: BTreeMap<&str, DateTime<Utc>> = futures::stream::iter(intact)
            .map(|member| async move {
                let asked = Utc::now();
                world.host.trigger(&member.connection_id, "full").await;
                (member.connection_id.as_str(), asked)
            })
            .buffer_unordered(CONNECTING_AT_ONCE)
            .collect()
            .await;
        let deadline = started + 3 * FREQUENCY + self.len() as u32 * ONE_SYNC / 4;
        let mut problems = Vec::new();
        loop {
            let states = Self::sync_states(world).await;
            let mut waiting = 0;
            problems.clear();
            for (connection_id, asked) in &asked {
                let state = &states[*connection_id];
                let run = &state["last_run"];
                let after = run["started_at"]
                    .as_str()
                    .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                    .is_some_and(|t| t > *asked);
                if !after || state["state"] == "running" {
                    waiting += 1;
                } else if run["status"] != "success" {
                    problems.push(format!(
                        "{connection_id}: its full sync run after the faults ended failed: {}",
                        run["error"]
                    ));
                }
            }
            if waiting == 0 {
                break;
            }
            if Instant::now() > deadline {
                problems.push(format!(
                    "{waiting} connection(s) finished no full sync within {:?} of the faults' end",
                    deadline - started
                ));
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let took = started.elapsed();
        let after = Scrape::take(world).await;
        let runs = after.runs_since(before);
        (Round { took, runs }, problems)
    }
}

/// A generous bound on one connection's share of a round, for deadlines that grow with the
/// fleet.
const ONE_SYNC: Duration = Duration::from_millis(100);

/// One member: its tenant, user and people at the emulator, then its connect flow.
async fn join(world: &World, i: usize) -> Member {
    let tenant = world
        .control
        .create_tenant(&CreateTenant {
            display_name: Some(format!("Soak {i}")),
            ..CreateTenant::default()
        })
        .await
        .unwrap();
    let user = world
        .control
        .create_user(&CreateUser {
            tenant: tenant.id.clone(),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    world
        .control
        .seed_people(&user.id, PEOPLE, i as u64)
        .await
        .unwrap();
    let connection_id = format!("soak-{i:04}");
    let session = world
        .host
        .post(
            "/connect/sessions",
            &json!({
                "integration": "microsoft",
                "connection_id": connection_id,
                "connection_config": {"tenant": tenant.id},
            }),
        )
        .await;
    let link = session.1["connect_url"]
        .as_str()
        .unwrap_or_else(|| panic!("a connect session for {connection_id}: {session:?}"));
    world.connect_with_link(link).await;
    Member {
        connection_id,
        user_id: user.id,
    }
}
