//! Plugboard on PostgreSQL: replicas sharing one database, the same answers as on SQLite, and
//! the database going away and coming back. (The refresh storm and the refresh events across
//! replicas run on both backends in `replicas.rs`.)

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use plugboard_store::testing::TestDatabase;

use crate::support::{Host, KEY_1, SYNCS_OFF, StoreKind, World, plugboard_command};
use crate::syncs::{emulator_ids, finished_run, ids, live, records, syncing};

/// A connection deleted through one replica is refused by the other's proxy within a second,
/// though that replica had just used (and cached) it.
async fn a_deleted_connection_is_refused_by_the_other_replica_within_a_second(kind: StoreKind) {
    let world = World::start_on(kind, 20, SYNCS_OFF).await;
    world.connect("microsoft", "gone").await;
    let replica = world.start_replica().await;
    let (status, _) = replica.proxy_get("microsoft", "gone", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = world
        .host
        .call(Method::DELETE, "/connections/gone?integration=microsoft")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deleted = Instant::now();
    loop {
        let (status, body) = replica.proxy_get("microsoft", "gone", "/v1.0/me").await;
        if status == StatusCode::NOT_FOUND {
            assert_eq!(body["error"]["code"], "connection_not_found", "{body}");
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "the other replica still served the deleted connection: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(replica);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_a_deleted_connection_is_refused_by_the_other_replica_within_a_second() {
    a_deleted_connection_is_refused_by_the_other_replica_within_a_second(StoreKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_a_deleted_connection_is_refused_by_the_other_replica_within_a_second() {
    a_deleted_connection_is_refused_by_the_other_replica_within_a_second(StoreKind::Sqlite).await;
}

/// The records API's answer with what differs between two runs of the same sync taken out:
/// the times (and the cursors made of them).
fn without_times(records: Vec<Value>) -> Vec<Value> {
    records
        .into_iter()
        .map(|mut record| {
            let metadata = record["_metadata"].as_object_mut().unwrap();
            for key in ["first_seen_at", "last_modified_at", "cursor"] {
                assert!(metadata.remove(key).is_some(), "{key} missing");
            }
            record
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_sync_on_sqlite_and_on_postgres_gives_the_same_records() {
    let mut answers = Vec::new();
    for kind in [StoreKind::Sqlite, StoreKind::Postgres] {
        let world = World::start_on(kind, 250, &syncing("http://127.0.0.1:9/unused")).await;
        world.connect("microsoft", "same").await;
        let run = finished_run(&world, "same", "").await;
        assert_eq!(run["status"], "success", "{run}");
        answers.push(without_times(records(&world, "same", "").await));
        world.finish().await;
    }
    assert_eq!(answers[0].len(), 250);
    assert_eq!(answers[0], answers[1]);
}

/// `GET /connections` until it answers `status`; how long that took.
async fn until_answered(host: &Host, status: StatusCode, within: Duration) -> (Duration, Value) {
    let start = Instant::now();
    loop {
        let asked = Instant::now();
        let (got, body) = host.call(Method::GET, "/connections").await;
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "a call took {:?} to answer {got}: {body}",
            asked.elapsed()
        );
        if got == status {
            return (start.elapsed(), body);
        }
        assert!(
            start.elapsed() < within,
            "still {got} after {within:?}: {body}\nlogs:\n{}",
            host.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn while_postgres_is_away_calls_answer_503_and_the_host_recovers_by_itself() {
    let world = World::start_on(
        StoreKind::PostgresThroughRelay,
        400,
        &syncing("http://127.0.0.1:9/unused"),
    )
    .await;
    world.connect("microsoft", "away").await;
    let first = finished_run(&world, "away", "").await;
    assert_eq!(first["status"], "success", "{first}");
    let people = emulator_ids(&world).await;
    let relay = world.relay.as_ref().unwrap();

    // Two people go; a sync is running, page by page, when the database goes away.
    world
        .remove_people(&people.iter().take(2).cloned().collect::<Vec<_>>())
        .await;
    world.set_graph_latency(300).await;
    let pages_before = world.graph_requests("/v1.0/me/people").await;
    world.host.trigger("away", "full").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.graph_requests("/v1.0/me/people").await < pages_before + 2 {
        assert!(Instant::now() < deadline, "the crawl did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.cut();
    let cut = Instant::now();
    let (_, body) = until_answered(
        &world.host,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    // Calls keep answering promptly while it stays away, and proxied requests are answered
    // (from the cached connection, or 503), never with a 500.
    while cut.elapsed() < Duration::from_secs(10) {
        until_answered(
            &world.host,
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(5),
        )
        .await;
        for _ in 0..5 {
            let (status, body) = world.host.proxy_get("microsoft", "away", "/v1.0/me").await;
            assert!(
                status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
                "a proxied request answered {status}: {body}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    relay.restore();
    world.set_graph_latency(0).await;
    let (_, body) = until_answered(&world.host, StatusCode::OK, Duration::from_secs(10)).await;
    assert_eq!(body["connections"][0]["connection_id"], "away", "{body}");
    let (status, _) = world.host.proxy_get("microsoft", "away", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK);
    // The interrupted sync failed; the sync runs again by itself and ends with the emulator's
    // people, the two removed ones deleted.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let runs = world.host.runs("away", 10).await;
        if runs.iter().any(|run| {
            run["status"] == "success"
                && run["deleted"] == 2
                && time(&run["started_at"]) > time(&first["started_at"])
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no run recovered: {runs:?}\n{}",
            world.host.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all = records(&world, "away", "").await;
    let (stored, expected) = (ids(&live(&all)), emulator_ids(&world).await);
    let differ: Vec<&String> = stored.symmetric_difference(&expected).collect();
    assert!(
        differ.is_empty(),
        "{} stored, {} at the emulator, differing: {differ:?}",
        stored.len(),
        expected.len()
    );
    let logs = world.host.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    world.finish().await;
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// The microsoft people sync every `frequency`, the other integrations' syncs off.
fn every(frequency: &str) -> String {
    format!(
        r#"
[integrations.microsoft.syncs.people]
enabled = true
frequency = "{frequency}"

[integrations.admin.syncs.people]
enabled = false

[integrations.echo.syncs.people]
enabled = false
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_make_every_due_run_once_and_never_two_at_once() {
    const CONNECTIONS: usize = 20;
    const PERIOD: i64 = 30;
    let world = World::start_on(StoreKind::Postgres, 150, &every("30s")).await;
    let replica = world.start_replica().await;
    world.control.reset_counters().await.unwrap();
    let start = Utc::now();
    for i in 0..CONNECTIONS {
        world.connect("microsoft", &format!("s{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    // Both replicas are still scheduling; stop them so the counts are final.
    let logs = [world.host.logs(), replica.logs()];
    drop(replica);
    let mut total = 0;
    for i in 0..CONNECTIONS {
        let mut runs = world.host.runs(&format!("s{i}"), 100).await;
        runs.reverse();
        let finished: Vec<&Value> = runs
            .iter()
            .filter(|run| run["status"] != "running")
            .collect();
        for run in &finished {
            assert_eq!(run["status"], "success", "{run}");
        }
        for pair in finished.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            assert!(
                time(&later["started_at"]) >= time(&earlier["finished_at"]),
                "runs overlapped: {earlier} {later}"
            );
            // Due one period after the last run started: never made twice in one period.
            let gap = (time(&later["started_at"]) - time(&earlier["started_at"])).num_seconds();
            assert!(
                gap >= PERIOD - 1,
                "a run {gap}s after the last: {earlier} {later}"
            );
        }
        // The first run when connected, then one per period.
        let elapsed = (Utc::now() - start).num_seconds();
        assert!(
            runs.len() as i64 <= elapsed / PERIOD + 1 && runs.len() >= 3,
            "s{i}: {} runs in {elapsed}s",
            runs.len()
        );
        assert_eq!(finished[0]["added"], 150, "{}", finished[0]);
        for run in &finished[1..] {
            assert_eq!(
                (&run["added"], &run["updated"], &run["deleted"]),
                (&Value::from(0), &Value::from(0), &Value::from(0)),
                "{run}"
            );
        }
        total += runs.len() as u64;
    }
    // The provider saw exactly the runs' pages (two pages of people per run): no run was
    // made without being recorded, nor twice.
    let pages = world.graph_requests("/v1.0/me/people").await;
    let lower = 2 * (total - CONNECTIONS as u64);
    assert!(
        (lower..=2 * total).contains(&pages),
        "{pages} page requests for {total} runs"
    );
    // Both replicas took runs.
    for log in &logs {
        assert!(
            log.contains("sync run finished"),
            "a replica ran nothing:\n{log}"
        );
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_sync_leaves_the_run_to_the_other_from_its_checkpoint() {
    let world = World::start_on(
        StoreKind::Postgres,
        400,
        &syncing("http://127.0.0.1:9/unused"),
    )
    .await;
    world.connect("microsoft", "k1").await;
    let first = finished_run(&world, "k1", "").await;
    assert_eq!(first["status"], "success", "{first}");
    let clean = records(&world, "k1", "").await;

    let mut replica = world.start_replica().await;
    world.set_graph_latency(800).await;
    let pages_before = world.graph_requests("/v1.0/me/people").await;
    // The run is asked for at the replica, which is killed after its first page.
    replica.trigger("k1", "full").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.graph_requests("/v1.0/me/people").await < pages_before + 2 {
        assert!(Instant::now() < deadline, "the crawl did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replica.kill();
    world.set_graph_latency(0).await;
    let interrupted = records(&world, "k1", "").await;
    assert_eq!(
        live_count(&interrupted),
        400,
        "the partial run deleted nothing"
    );

    // The surviving replica takes the sync over once the dead one's lease expires, and resumes
    // the crawl from the checkpoint.
    let since = first["started_at"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let resumed = loop {
        let runs = world.host.runs("k1", 10).await;
        if let Some(run) = runs
            .iter()
            .find(|run| run["status"] == "success" && run["started_at"].as_str().unwrap() > since)
        {
            break run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no run resumed: {runs:?}\n{}",
            world.host.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        resumed["logs"].to_string().contains("resuming the crawl"),
        "{resumed}"
    );
    let killed = world
        .host
        .runs("k1", 10)
        .await
        .into_iter()
        .find(|run| run["mode"] == "full")
        .unwrap();
    assert_eq!(killed["status"], "failed", "{killed}");
    assert_eq!(
        without_times(records(&world, "k1", "").await),
        without_times(clean),
        "the same records as a clean run"
    );
    world.finish().await;
}

fn live_count(records: &[Value]) -> usize {
    records
        .iter()
        .filter(|r| r["_metadata"]["deleted_at"].is_null())
        .count()
}

/// `plugboard store copy` with the world's config (the host's environment: its key ring).
fn store_copy(world: &World, to: &str) -> std::process::Output {
    plugboard_command(
        &["store", "copy", "--to", to],
        &world.dir.0.join("plugboard.toml"),
    )
    .env("KEY_K1", KEY_1)
    .env("CLIENT_SECRET", &world.demo.client_secret)
    .env(
        "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET",
        &world.demo.client_secret,
    )
    .output()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_store_copied_to_postgres_serves_the_same_connections_records_and_cursors() {
    // Pages of 1,000 people, so the first sync is quick.
    let config = syncing("http://127.0.0.1:9/unused").replacen(
        "frequency = \"1h\"\n",
        "frequency = \"1h\"\npage_size = 1000\n",
        1,
    );
    let mut world = World::start_with(10_000, &config).await;
    world.connect("microsoft", "moved").await;
    let first = finished_run(&world, "moved", "").await;
    assert_eq!(first["added"], 10_000, "{first}");
    let connections = world.host.get_json("/connections").await;
    let before = records(&world, "moved", "").await;
    // A cursor handed out before the move, and where it leads.
    let page = world
        .host
        .get_json("/records?integration=microsoft&connection_id=moved&model=Person&limit=4000")
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = format!(
        "/records?integration=microsoft&connection_id=moved&model=Person&limit=100&cursor={cursor}"
    );
    let continued = world.host.get_json(&rest).await;
    world.host.kill();

    let database = TestDatabase::create().await;
    let copied = store_copy(&world, database.url());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&copied.stdout),
        String::from_utf8_lossy(&copied.stderr),
    );
    assert!(copied.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("records: 10000/10000"), "{stderr}");
    assert!(
        stdout.contains("the counts of every table match"),
        "{stdout}"
    );

    // Once more into the same database: refused, and nothing changes.
    let again = store_copy(&world, database.url());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("already holds data"), "{stderr}");

    let on_postgres = format!("url = \"{}\"", database.url());
    world
        .restart_with(|config| {
            let sqlite = config
                .lines()
                .find(|line| line.starts_with("url = \"sqlite://"))
                .unwrap()
                .to_owned();
            config.replace(&sqlite, &on_postgres)
        })
        .await;
    assert_eq!(world.host.get_json("/connections").await, connections);
    assert_eq!(records(&world, "moved", "").await, before);
    assert_eq!(world.host.get_json(&rest).await, continued);

    // The next sync finds nothing changed.
    world.host.trigger("moved", "incremental").await;
    let next = finished_run(&world, "moved", first["started_at"].as_str().unwrap()).await;
    assert_eq!(
        (
            &next["status"],
            &next["added"],
            &next["updated"],
            &next["deleted"]
        ),
        (
            &Value::from("success"),
            &Value::from(0),
            &Value::from(0),
            &Value::from(0)
        ),
        "{next}"
    );
    world.finish().await;
    database.drop_database().await;
}
