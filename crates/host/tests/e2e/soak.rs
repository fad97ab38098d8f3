//! The soak (issue #14): a fleet of connections, each its own Microsoft tenant and user, synced
//! every minute with steady proxy traffic on top, while the emulator throttles, fails with
//! 5xx, drops connections, answers slowly, loses its token endpoint and has grants revoked on a
//! schedule (`schedule.rs`). Then the faults stop, a full sync of every intact connection
//! finishes, and every invariant is checked (`invariants.rs`): each connection works or is
//! marked for reconnect exactly when its grant was revoked, its records equal the emulator's
//! people, every webhook event arrived once with the events the faults call for, no answer of
//! Plugboard's own is one the faults do not explain (`traffic.rs`), and the host's resident
//! memory and open descriptors stayed flat (`samples.rs`).
//!
//! `PLUGBOARD_SOAK_MINUTES` (default 1, fractions allowed) sets the length of the measured,
//! faulted run per backend, `PLUGBOARD_SOAK_CONNECTIONS` (default 1000) the fleet. Setting the
//! fleet up and a warm-up of 95 seconds of faults (`Schedule::warm_up`) come before the
//! minutes. The figures print as a markdown table on stdout (`-- --nocapture`).

mod fleet;
mod invariants;
mod metrics;
mod samples;
mod schedule;
mod traffic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{Received, StoreKind, WEBHOOK_SECRET, World, events, webhook_receiver};
use fleet::Fleet;
use metrics::Scrape;
use samples::Sampler;
use schedule::{Revoked, Schedule};
use traffic::Traffic;

/// How often every connection's people sync runs.
const FREQUENCY: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite() {
    soak(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres() {
    soak(StoreKind::Postgres).await;
}

/// The run's length and fleet, from the environment.
struct Settings {
    run: Duration,
    connections: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let minutes: f64 = env_or("PLUGBOARD_SOAK_MINUTES", 1.0);
        assert!(
            minutes.is_finite() && minutes > 0.0,
            "PLUGBOARD_SOAK_MINUTES: expected a positive number of minutes, got {minutes}"
        );
        let connections: usize = env_or("PLUGBOARD_SOAK_CONNECTIONS", 1000);
        assert!(
            connections >= 4,
            "PLUGBOARD_SOAK_CONNECTIONS: expected at least 4 connections, got {connections}"
        );
        Settings {
            run: Duration::from_secs_f64(minutes * 60.0),
            connections,
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Err(_) => default,
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: `{text}` is not a number")),
    }
}

/// The people sync on for the `microsoft` integration, every minute, in pages of ten; the other
/// integrations' syncs off; webhooks to `hook_url`.
fn config(hook_url: &str) -> String {
    format!(
        r#"
[integrations.microsoft.syncs.people]
enabled = true
frequency = "{}s"
page_size = {}

[integrations.admin.syncs.people]
enabled = false

[integrations.echo.syncs.people]
enabled = false

[webhooks]
url = "{hook_url}"
secret = "{WEBHOOK_SECRET}"
"#,
        FREQUENCY.as_secs(),
        fleet::PAGE_SIZE,
    )
}

async fn soak(kind: StoreKind) {
    let settings = Settings::from_env();
    let (hook_url, received) = webhook_receiver().await;
    let mut world = World::start_on(kind, 0, &config(&hook_url)).await;
    // Logged at `info`, as a deployment would run: the debug log of a thousand connections'
    // traffic would cost the host more than the traffic does.
    world.restart_with_env(&[("RUST_LOG", "info")]).await;

    let set_up = Instant::now();
    let fleet = Arc::new(Fleet::connect(&world, settings.connections).await);
    fleet.wait_for_first_syncs(&world).await;
    let set_up = set_up.elapsed();

    let world = Arc::new(world);
    let before = Scrape::take(&world).await;
    let revoked = Revoked::default();
    let traffic = Traffic::start(world.clone(), fleet.clone(), revoked.clone());
    let mut schedule = Schedule::new(world.clone(), fleet.clone(), revoked, settings.run);
    schedule.warm_up().await;
    let target = samples::Target {
        pid: world.host.pid(),
        pooled_ports: [world.emulator.url(), hook_url]
            .iter()
            .map(|url| reqwest::Url::parse(url).unwrap().port().unwrap())
            .collect(),
    };
    let sampler = Sampler::start(target.clone());
    let injected = schedule.run(settings.run).await;
    let proxied = traffic.stop().await;
    let samples = sampler.stop().await;

    let (round, mut problems) = fleet.last_round(&world, &injected, &before).await;
    let refreshes = Scrape::take(&world).await.refreshes_since(&before);
    problems.extend(invariants::check(&world, &fleet, &injected, &received).await);
    problems.extend(proxied.problems());
    problems.extend(samples.problems());
    let at_end = samples::describe_now(&target);
    let figures = Figures {
        kind,
        settings: &settings,
        set_up,
        round: &round,
        refreshes,
        proxied: &proxied,
        injected: &injected,
        received: &received,
        samples: &samples,
        at_end,
    };
    let summary = figures.table();
    println!("{summary}");
    assert!(
        problems.is_empty(),
        "the soak on {kind:?} broke {} invariant(s):\n- {}\n\n{summary}",
        problems.len(),
        problems.join("\n- ")
    );
    Arc::into_inner(world).unwrap().finish().await;
}

/// What the run did and how the host held up.
struct Figures<'a> {
    kind: StoreKind,
    settings: &'a Settings,
    set_up: Duration,
    round: &'a fleet::Round,
    refreshes: String,
    proxied: &'a traffic::Proxied,
    injected: &'a schedule::Injected,
    received: &'a Received,
    samples: &'a samples::Samples,
    /// The host's memory and descriptors after the last round and the checks.
    at_end: String,
}

impl Figures<'_> {
    /// The figures RELIABILITY.md quotes, as a markdown table.
    fn table(&self) -> String {
        let received = self.received;
        let count = |kind: &str| events(received, kind).len();
        // Taken alone: `events` locks the deliveries too.
        let deliveries = received.lock().unwrap().len();
        let rows = [
            ("store", format!("{:?}", self.kind)),
            (
                "run",
                format!(
                    "{:.1} min faulted (after a warm-up of 95 s or a cycle), then {:.0} s until every intact connection finished a full sync",
                    self.settings.run.as_secs_f64() / 60.0,
                    self.round.took.as_secs_f64()
                ),
            ),
            (
                "connections",
                format!(
                    "{} (connected and first synced in {:.0} s), {} revoked",
                    self.settings.connections,
                    self.set_up.as_secs_f64(),
                    self.injected.revoked.len()
                ),
            ),
            ("sync runs", self.round.runs.clone()),
            ("token refreshes", self.refreshes.clone()),
            ("proxy calls", self.proxied.describe()),
            ("faults injected", self.injected.describe()),
            (
                "webhooks received",
                format!(
                    "{} ({} sync.completed, {} sync.failed, {} refresh_failed, {} recovered)",
                    deliveries,
                    count("sync.completed"),
                    count("sync.failed"),
                    count("connection.refresh_failed"),
                    count("connection.recovered")
                ),
            ),
            ("RSS (MiB), first / last third", self.samples.describe_rss()),
            ("open fds, first / last third", self.samples.describe_fds()),
            ("after the last round", self.at_end.clone()),
        ];
        let mut table = String::from("| soak | figures |\n|---|---|\n");
        for (name, value) in rows {
            table.push_str(&format!("| {name} | {value} |\n"));
        }
        table
    }
}
