//! The emulator's misbehaviour, on a schedule repeated every minute: windows of throttling,
//! 5xx answers, dropped connections, slow answers and a token endpoint outage (one at a time,
//! so each window's end clears exactly its own faults), then some grants revoked and some
//! people changed at the provider.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use plugboard_emulator::{ExpireTokens, FaultKind, FaultRule, ThrottleSettings, UpdateSettings};
use serde_json::json;
use tokio::time::{Instant, sleep_until};

use super::fleet::Fleet;
use crate::support::World;

/// The connections whose grant the schedule revoked, shared with the proxy traffic, which
/// may see them refused from the moment they are added.
pub type Revoked = Arc<Mutex<BTreeSet<String>>>;

/// The schedule below is written for a cycle of a minute; a run shorter than three minutes
/// repeats it faster (at least every 20 seconds), each step scaled, so that the first and last
/// third of any run hold the same faults and their memory and descriptors compare.
const CYCLE: Duration = Duration::from_secs(60);
const SHORTEST_CYCLE: Duration = Duration::from_secs(20);

/// How long the host's HTTP client (reqwest's defaults) keeps an idle connection, and a little.
const POOL_IDLE: Duration = Duration::from_secs(95);

/// How much slower every Graph answer is in a slow window.
const SLOW_MS: u64 = 1_500;

#[derive(Debug, Clone, Copy)]
enum Step {
    Window(Window, Duration),
    Revoke,
    Churn,
}

#[derive(Debug, Clone, Copy)]
enum Window {
    Throttling,
    ServerErrors,
    DroppedConnections,
    SlowAnswers,
    TokenOutage,
}

/// The Graph faults a window adds each second, how many of each.
fn per_second(window: Window) -> Vec<(u32, FaultKind)> {
    let status = |status| FaultKind::Status {
        status,
        retry_after_secs: None,
    };
    match window {
        Window::ServerErrors => vec![(4, status(503)), (2, status(500)), (1, status(504))],
        Window::DroppedConnections => vec![(4, FaultKind::DropConnection)],
        Window::Throttling | Window::SlowAnswers | Window::TokenOutage => Vec::new(),
    }
}

/// One cycle of a minute: each step with its start in the cycle.
const STEPS: [(u64, Step); 7] = [
    (0, Step::Window(Window::Throttling, Duration::from_secs(8))),
    (
        10,
        Step::Window(Window::ServerErrors, Duration::from_secs(8)),
    ),
    (
        20,
        Step::Window(Window::DroppedConnections, Duration::from_secs(6)),
    ),
    (
        28,
        Step::Window(Window::SlowAnswers, Duration::from_secs(8)),
    ),
    (
        38,
        Step::Window(Window::TokenOutage, Duration::from_secs(8)),
    ),
    (48, Step::Revoke),
    (52, Step::Churn),
];

pub struct Schedule {
    world: Arc<World>,
    fleet: Arc<Fleet>,
    revoked: Revoked,
    counts: BTreeMap<&'static str, u64>,
    churned: BTreeMap<String, DateTime<Utc>>,
    /// The next member to revoke, counting down from the last; the first half is never revoked.
    next_revoked: usize,
    /// The next member whose people change, cycling through the first half.
    next_churned: usize,
    /// How long one cycle of [`STEPS`] lasts, and how many have finished.
    cycle: Duration,
    cycles: u32,
}

/// What the schedule did.
pub struct Injected {
    pub revoked: BTreeSet<String>,
    /// Connections whose people changed at the provider, with the time of the last change.
    pub churned: BTreeMap<String, DateTime<Utc>>,
    counts: BTreeMap<&'static str, u64>,
}

impl Injected {
    pub fn describe(&self) -> String {
        self.counts
            .iter()
            .map(|(what, count)| format!("{count} {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Schedule {
    /// A schedule for a run of `length`.
    pub fn new(world: Arc<World>, fleet: Arc<Fleet>, revoked: Revoked, length: Duration) -> Self {
        let next_revoked = fleet.len() - 1;
        Schedule {
            world,
            fleet,
            revoked,
            counts: BTreeMap::new(),
            churned: BTreeMap::new(),
            next_revoked,
            next_churned: 0,
            cycle: (length / 3).clamp(SHORTEST_CYCLE, CYCLE),
            cycles: 0,
        }
    }

    /// Cycles before the measured run, for as long as an idle pooled connection lives: the
    /// host's HTTP client keeps every connection a burst opened (a slow window has a hundred
    /// requests in flight) for 90 seconds of idleness, so its descriptors follow the busiest
    /// moment of the last 90 seconds. Measured from then on, the first and last third of the
    /// run compare like with like, and only what is never given back can make them differ.
    pub async fn warm_up(&mut self) {
        self.play(self.cycle.max(POOL_IDLE)).await;
    }

    /// Runs cycles for `length` (a step that would end after it is left out), then stops
    /// every fault: what the schedule did.
    pub async fn run(mut self, length: Duration) -> Injected {
        self.play(length).await;
        self.calm().await;
        Injected {
            revoked: self.revoked.lock().unwrap().clone(),
            churned: self.churned,
            counts: self.counts,
        }
    }

    async fn play(&mut self, length: Duration) {
        let start = Instant::now();
        let end = start + length;
        let scale = self.cycle.as_secs_f64() / CYCLE.as_secs_f64();
        'cycles: for cycle in 0.. {
            let begins = start + self.cycle * cycle;
            for (at, step) in STEPS {
                let at = begins + Duration::from_secs(at).mul_f64(scale);
                let step = match step {
                    Step::Window(window, lasts) => Step::Window(window, lasts.mul_f64(scale)),
                    other => other,
                };
                let lasts = match step {
                    Step::Window(_, lasts) => lasts,
                    Step::Revoke | Step::Churn => Duration::ZERO,
                };
                if at + lasts > end {
                    break 'cycles;
                }
                sleep_until(at).await;
                match step {
                    Step::Window(window, lasts) => self.window(window, lasts).await,
                    Step::Revoke => self.revoke().await,
                    Step::Churn => self.churn().await,
                }
            }
            self.cycles += 1;
        }
        sleep_until(end).await;
    }

    fn count(&mut self, what: &'static str, by: u64) {
        *self.counts.entry(what).or_default() += by;
    }

    async fn window(&mut self, window: Window, lasts: Duration) {
        let world = self.world.clone();
        let control = &world.control;
        let before = control.counters().await.unwrap();
        let mut added = 0;
        match window {
            Window::Throttling => {
                // Outlook's limits, tightened until a sync's pages meet them: one request at a
                // time per mailbox, two per five seconds, with Graph's `Retry-After` (the rest
                // of the window).
                let throttling = ThrottleSettings {
                    max_concurrent_per_mailbox: 1,
                    requests_per_window: 2,
                    window_secs: 5,
                    retry_after_secs: None,
                };
                control
                    .update_settings(&UpdateSettings {
                        throttling: Some(throttling),
                        ..UpdateSettings::default()
                    })
                    .await
                    .unwrap();
            }
            // Added a second's worth at a time (below), so the syncs meet them as well as
            // the proxy's steadier traffic.
            Window::ServerErrors | Window::DroppedConnections => {}
            Window::SlowAnswers => self.world.set_graph_latency(SLOW_MS).await,
            Window::TokenOutage => {
                // Every access token ends now, so every connection's next use needs the token
                // endpoint, of every tenant, which is down.
                control
                    .expire_tokens(&ExpireTokens::default())
                    .await
                    .unwrap();
                self.count("token endpoint outages (every access token ended)", 1);
                let unavailable = FaultKind::Status {
                    status: 503,
                    retry_after_secs: None,
                };
                let path = "/*/oauth2/v2.0/token";
                added += self.fault(Some("POST"), path, u32::MAX, unavailable).await;
            }
        }
        let ends = Instant::now() + lasts;
        while Instant::now() < ends {
            for (count, kind) in per_second(window) {
                added += self.fault(None, "/v1.0/", count, kind).await;
            }
            tokio::time::sleep(
                Duration::from_secs(1).min(ends.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        let unused: u64 = control
            .faults()
            .await
            .unwrap()
            .iter()
            .map(|rule| u64::from(rule.count))
            .sum();
        self.calm().await;
        let after = control.counters().await.unwrap();
        let graph = |c: &plugboard_emulator::Counters| c.graph_requests.values().sum::<u64>();
        match window {
            Window::Throttling => {
                self.count("429s (throttling)", after.throttled - before.throttled)
            }
            Window::ServerErrors => self.count("Graph 5xx", added - unused),
            Window::DroppedConnections => self.count("dropped connections", added - unused),
            Window::SlowAnswers => self.count("slow Graph answers", graph(&after) - graph(&before)),
            Window::TokenOutage => self.count("token endpoint 503s", added - unused),
        }
    }

    /// Adds a fault rule for `count` requests: `count`.
    async fn fault(&self, method: Option<&str>, path: &str, count: u32, kind: FaultKind) -> u64 {
        self.world
            .control
            .add_fault(&FaultRule {
                method: method.map(str::to_owned),
                path_prefix: path.to_owned(),
                count,
                kind,
            })
            .await
            .unwrap();
        u64::from(count)
    }

    /// No fault pending, no latency, throttling out of the way.
    async fn calm(&self) {
        let control = &self.world.control;
        control.clear_faults().await.unwrap();
        control
            .update_settings(&UpdateSettings {
                throttling: Some(ThrottleSettings {
                    max_concurrent_per_mailbox: 10_000,
                    requests_per_window: 1_000_000,
                    ..ThrottleSettings::default()
                }),
                graph_latency_ms: Some(0),
                ..UpdateSettings::default()
            })
            .await
            .unwrap();
    }

    /// Revokes the grants of half a percent of the fleet (at least one), and ends their access
    /// tokens, so their next use must refresh and is refused.
    async fn revoke(&mut self) {
        let half = self.fleet.len() / 2;
        for _ in 0..(self.fleet.len() / 200).max(1) {
            if self.next_revoked < half {
                return;
            }
            let member = &self.fleet.members[self.next_revoked];
            self.next_revoked -= 1;
            self.revoked
                .lock()
                .unwrap()
                .insert(member.connection_id.clone());
            let control = &self.world.control;
            control
                .revoke_refresh_tokens(&member.user_id)
                .await
                .unwrap();
            control
                .expire_tokens(&ExpireTokens {
                    user: Some(member.user_id.clone()),
                    ..ExpireTokens::default()
                })
                .await
                .unwrap();
            self.count("grants revoked", 1);
        }
    }

    /// At the provider, for two percent of the fleet (at least two): a person added, one
    /// changed and one removed.
    async fn churn(&mut self) {
        let cycle = self.cycles;
        let half = self.fleet.len() / 2;
        for _ in 0..(self.fleet.len() / 50).max(2) {
            let member = &self.fleet.members[self.next_churned];
            self.next_churned = (self.next_churned + 1) % half;
            let control = &self.world.control;
            let user = &member.user_id;
            let people = control.people(user).await.unwrap();
            let name = format!("Soak Newcomer {cycle}");
            control
                .add_person(user, &json!({"displayName": name, "jobTitle": "New"}))
                .await
                .unwrap();
            let changed = json!({"jobTitle": format!("Changed in cycle {cycle}")});
            control
                .update_person(user, &people[0].id, &changed)
                .await
                .unwrap();
            let gone = &people[people.len() - 1].id;
            control.remove_person(user, gone).await.unwrap();
            self.churned
                .insert(member.connection_id.clone(), Utc::now());
            self.count("people changed", 3);
        }
    }
}
