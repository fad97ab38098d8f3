//! Several `plugboard serve` processes on one store (SQLite here; PostgreSQL in `postgres.rs`
//! and where a test names it), as replicas behind a load balancer run: one token refresh per
//! connection, one run per connection and sync, refresh events announced once, and a starting
//! replica that leaves the others' runs alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{
    Host, Received, SYNCS_OFF, StoreKind, World, all_answered, events, webhook_receiver,
    webhooks_section,
};
use crate::syncs::{finished_run, syncing};

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_storm_across_replicas_makes_exactly_one_token_request() {
    refresh_storm(StoreKind::Sqlite, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_a_refresh_storm_across_replicas_makes_exactly_one_token_request() {
    refresh_storm(StoreKind::Postgres, 200).await;
}

/// `requests` proxied requests spread over two replicas on a store of `kind`, all on an
/// expired token: every one answered, and exactly one token request at the emulator.
async fn refresh_storm(kind: StoreKind, requests: usize) {
    let world = Arc::new(World::start_on(kind, 20, SYNCS_OFF).await);
    world.connect("microsoft", "storm").await;
    let replica = Arc::new(world.start_replica().await);
    let before = world.host.credentials("microsoft", "storm").await;
    world.expire_access_tokens().await;
    world.control.reset_counters().await.unwrap();

    let requests = (0..requests).map(|i| {
        let (world, replica) = (world.clone(), replica.clone());
        tokio::spawn(async move {
            let host = if i % 2 == 0 { &world.host } else { &*replica };
            host.proxy_get("microsoft", "storm", "/v1.0/me").await
        })
    });
    all_answered(requests, StatusCode::OK).await;
    assert_eq!(world.token_requests("refresh_token").await, 1);

    // Both hand out the one new token.
    let first = world.host.credentials("microsoft", "storm").await;
    let second = replica.credentials("microsoft", "storm").await;
    assert_ne!(
        before["credentials"]["access_token"],
        first["credentials"]["access_token"]
    );
    assert_eq!(
        first["credentials"]["access_token"],
        second["credentials"]["access_token"]
    );
    drop(replica);
    Arc::into_inner(world).unwrap().finish().await;
}

/// How many `connection.refresh_failed` and `connection.recovered` events arrived.
fn connection_events(received: &Received) -> (usize, usize) {
    let [failed, recovered] = ["connection.refresh_failed", "connection.recovered"].map(|kind| {
        let events = events(received, kind);
        for event in &events {
            assert_eq!(event["data"]["connection_id"], "w1", "{event}");
        }
        events.len()
    });
    (failed, recovered)
}

/// Waits until these many refresh failures and recoveries were announced, then a little
/// longer to see that no duplicate follows.
async fn expect_connection_events(received: &Received, expected: (usize, usize)) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (failed, recovered) = connection_events(received);
        if failed >= expected.0 && recovered >= expected.1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "(failed, recovered) so far: {:?}",
            (failed, recovered)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(connection_events(received), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_failures_and_recoveries_are_announced_once_whatever_path_saw_them() {
    announced_once(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_refresh_failures_and_recoveries_are_announced_once() {
    announced_once(StoreKind::Postgres).await;
}

/// Refresh failures and recoveries seen by two replicas on a store of `kind`: each announced
/// by one webhook event, whichever replica and path saw it.
async fn announced_once(kind: StoreKind) {
    let (hook_url, received) = webhook_receiver().await;
    let world = Arc::new(
        World::start_on(
            kind,
            120,
            &format!("{SYNCS_OFF}{}", webhooks_section(&hook_url)),
        )
        .await,
    );
    world.connect("microsoft", "w1").await;
    let replica = Arc::new(world.start_replica().await);

    // The grant is revoked: proxied requests on both replicas find out at once.
    world.revoke_grant().await;
    let requests = (0..10).map(|i| {
        let (world, replica) = (world.clone(), replica.clone());
        tokio::spawn(async move {
            let host: &Host = if i % 2 == 0 { &world.host } else { &replica };
            host.proxy_get("microsoft", "w1", "/v1.0/me").await
        })
    });
    for body in all_answered(requests, StatusCode::CONFLICT).await {
        assert!(body.to_string().contains("needs_reconnect"), "{body}");
    }
    let (status, _) = replica.force_refresh("microsoft", "w1").await;
    assert_eq!(status, StatusCode::CONFLICT);
    expect_connection_events(&received, (1, 0)).await;
    let failed = &events(&received, "connection.refresh_failed")[0];
    assert!(
        failed["data"]["error"].as_str().unwrap().contains("AADSTS"),
        "{failed}"
    );

    // Connecting again ends it.
    world.connect("microsoft", "w1").await;
    expect_connection_events(&received, (1, 1)).await;
    let (status, _) = world.host.proxy_get("microsoft", "w1", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK);

    // The token endpoint fails for a while: a refresh through one replica fails after its
    // retries; one through the other works later.
    world.token_endpoint_unavailable(3).await;
    let (status, _) = replica.force_refresh("microsoft", "w1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    expect_connection_events(&received, (2, 1)).await;
    let (status, _) = world.host.force_refresh("microsoft", "w1").await;
    assert_eq!(status, StatusCode::OK);
    expect_connection_events(&received, (2, 2)).await;
    drop(replica);
    Arc::into_inner(world).unwrap().finish().await;
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// The runs of the sync that started after `since`, oldest first.
async fn runs_since(host: &Host, connection_id: &str, since: DateTime<Utc>) -> Vec<Value> {
    let mut runs: Vec<Value> = host
        .runs(connection_id, 20)
        .await
        .into_iter()
        .filter(|run| time(&run["started_at"]) > since)
        .collect();
    runs.reverse();
    runs
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_never_run_one_sync_at_once_and_a_starting_replica_spares_a_live_run() {
    let world = World::start_with(500, &syncing("http://127.0.0.1:9/unused")).await;
    world.connect("microsoft", "r1").await;
    let first = finished_run(&world, "r1", "").await;
    assert_eq!(first["status"], "success", "{first}");
    let since = time(&first["started_at"]);
    let pages = world.graph_requests("/v1.0/me/people").await;

    // Slow pages make a run last seconds; a run is asked for at the first replica.
    world.set_graph_latency(700).await;
    world.control.reset_counters().await.unwrap();
    world.host.trigger("r1", "full").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let live = loop {
        let runs = runs_since(&world.host, "r1", since).await;
        // Its log lines are kept as it goes, not only at its end.
        if let Some(run) = runs.first()
            && run["status"] == "running"
            && run["logs"].to_string().contains("page 1: ")
        {
            break run.clone();
        }
        assert!(Instant::now() < deadline, "no run in progress: {runs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // A second replica starts meanwhile: its start-up recovery must not fail the live run.
    let replica = world.start_replica().await;
    let runs = runs_since(&replica, "r1", since).await;
    assert_eq!(
        (runs.len(), &runs[0]["id"], &runs[0]["status"]),
        (1, &live["id"], &Value::from("running")),
        "{runs:?}"
    );
    // Asked at the second replica too, the run waits for the first one to finish.
    replica.trigger("r1", "full").await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let runs = loop {
        let runs = runs_since(&replica, "r1", since).await;
        if runs.len() == 2 && runs.iter().all(|run| run["status"] != "running") {
            break runs;
        }
        assert!(
            runs.len() <= 2 && Instant::now() < deadline,
            "{runs:?}\nfirst replica:\n{}\nsecond replica:\n{}",
            world.host.logs(),
            replica.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(runs[0]["id"], live["id"]);
    for run in &runs {
        assert_eq!(run["status"], "success", "{run}");
    }
    assert!(
        time(&runs[1]["started_at"]) >= time(&runs[0]["finished_at"]),
        "the runs overlapped: {runs:?}"
    );
    // The provider saw two whole crawls, one after the other: never two page requests at once.
    let counters = world.control.counters().await.unwrap();
    assert_eq!(
        counters.graph_requests["/v1.0/me/people"],
        2 * pages,
        "{counters:?}"
    );
    assert_eq!(
        counters.max_concurrency_per_mailbox[&world.demo.user_id], 1,
        "{counters:?}"
    );
    // Neither scheduler starts another run on its own: the last one counts for both.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs_since(&world.host, "r1", since).await.len(), 2);
}
