//! Syncs and records: the scheduler, the records API, the controls, faults, crashes, webhooks
//! and the CLI, all against the real binary and the emulator over HTTP.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use plugboard_emulator::FaultKind;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{WEBHOOK_SECRET, World, events, plugboard_command, webhook_receiver};

/// The microsoft integration's people sync on (hourly, so only the first run and triggered
/// ones happen during a test), the others off, and webhooks to `webhook_url`.
pub(crate) fn syncing(webhook_url: &str) -> String {
    format!(
        r#"
[integrations.microsoft.syncs.people]
enabled = true
frequency = "1h"

[integrations.admin.syncs.people]
enabled = false

[integrations.echo.syncs.people]
enabled = false

[webhooks]
url = "{webhook_url}"
secret = "{WEBHOOK_SECRET}"
"#
    )
}

/// The people sync's state and last run for the connection (`GET /syncs/status`).
pub(crate) async fn status(world: &World, connection_id: &str) -> Value {
    let body = world
        .host
        .get_json(&format!(
            "/syncs/status?integration=microsoft&connection_id={connection_id}"
        ))
        .await;
    body["syncs"][0].clone()
}

/// Waits until the people sync's last finished run started after `since` (RFC 3339, or "" for
/// any run) and returns it.
pub(crate) async fn finished_run(world: &World, connection_id: &str, since: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sync = status(world, connection_id).await;
        let run = &sync["last_run"];
        if sync["state"] != "running"
            && run.is_object()
            && run["started_at"].as_str().unwrap_or_default() > since
        {
            return run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no run finished; status {sync}\nlogs:\n{}",
            world.host.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every record page by page, checking each page's cursor chain.
pub(crate) async fn records(world: &World, connection_id: &str, extra: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = world
            .host
            .get_json(&format!(
                "/records?integration=microsoft&connection_id={connection_id}&model=Person&limit=70&cursor={cursor}{extra}"
            ))
            .await;
        all.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return all,
        }
    }
}

pub(crate) fn ids(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Live records without their metadata, sorted by id: what a clean run and a repaired or
/// resumed one must share.
pub(crate) fn contents(records: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = live(records)
        .into_iter()
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("_metadata");
            r
        })
        .collect();
    out.sort_by_key(|r| r["id"].as_str().unwrap().to_owned());
    out
}

pub(crate) fn live(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["_metadata"]["deleted_at"].is_null())
        .cloned()
        .collect()
}

pub(crate) async fn emulator_ids(world: &World) -> BTreeSet<String> {
    world
        .control
        .people(&world.demo.user_id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect()
}

pub(crate) async fn trigger(world: &World, connection_id: &str, mode: &str) {
    world.host.trigger(connection_id, mode).await;
}

/// The first page passes (a harmless delay uses up the first fault), the second fails with a
/// 500, which is not retried: the run stops after saving one page.
pub(crate) async fn fail_the_second_page(world: &World) {
    world
        .fault_people_pages([
            FaultKind::Delay { ms: 1 },
            FaultKind::Status {
                status: 500,
                retry_after_secs: None,
            },
        ])
        .await;
}

/// A run's status and counts, as one value to compare with what a test expects.
pub(crate) fn outcome(run: &Value) -> (Option<&str>, Option<u64>, Option<u64>, Option<u64>) {
    (
        run["status"].as_str(),
        run["added"].as_u64(),
        run["updated"].as_u64(),
        run["deleted"].as_u64(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn connecting_syncs_everyone_and_the_next_run_reports_exact_changes() {
    let (hook_url, received) = webhook_receiver().await;
    let world = World::start_with(150, &syncing(&hook_url)).await;
    world.connect("microsoft", "s1").await;

    // The sync starts by itself.
    let first = finished_run(&world, "s1", "").await;
    assert_eq!(first["status"], "success", "{first}");
    assert_eq!(
        (first["added"].as_u64(), first["deleted"].as_u64()),
        (Some(150), Some(0))
    );
    let stored = records(&world, "s1", "").await;
    assert_eq!(ids(&stored), emulator_ids(&world).await);
    assert!(
        stored
            .iter()
            .all(|r| r["_metadata"]["last_action"] == "ADDED")
    );
    let before = stored
        .iter()
        .map(|r| {
            r["_metadata"]["last_modified_at"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .max()
        .unwrap();

    // 10 added, 5 changed, 3 removed at the provider.
    let user = &world.demo.user_id;
    let people: Vec<String> = emulator_ids(&world).await.into_iter().collect();
    let mut added = BTreeSet::new();
    for i in 0..10 {
        let person = world
            .control
            .add_person(user, &json!({"displayName": format!("New Person {i}")}))
            .await
            .unwrap();
        added.insert(person.id);
    }
    let changed: BTreeSet<String> = people[0..5].iter().cloned().collect();
    for id in &changed {
        world
            .control
            .update_person(user, id, &json!({"jobTitle": "Changed"}))
            .await
            .unwrap();
    }
    let removed: BTreeSet<String> = people[5..8].iter().cloned().collect();
    for id in &removed {
        world.control.remove_person(user, id).await.unwrap();
    }
    trigger(&world, "s1", "incremental").await;
    let second = finished_run(&world, "s1", first["started_at"].as_str().unwrap()).await;
    assert_eq!(
        outcome(&second),
        (Some("success"), Some(10), Some(5), Some(3)),
        "{second}"
    );

    let since = format!("&modified_after={before}");
    assert_eq!(
        ids(&records(&world, "s1", &format!("{since}&filter=added")).await),
        added
    );
    let updated = records(&world, "s1", &format!("{since}&filter=updated")).await;
    assert_eq!(ids(&updated), changed);
    assert!(updated.iter().all(|r| r["job_title"] == "Changed"));
    assert_eq!(
        ids(&records(&world, "s1", &format!("{since}&filter=deleted")).await),
        removed
    );
    assert_eq!(records(&world, "s1", &since).await.len(), 18);
    assert_eq!(
        records(&world, "s1", "&filter=added,updated").await.len(),
        157
    );
    let all = records(&world, "s1", "").await;
    assert_eq!(ids(&live(&all)), emulator_ids(&world).await);

    // A third run without changes changes nothing and sends no event.
    trigger(&world, "s1", "full").await;
    let third = finished_run(&world, "s1", second["started_at"].as_str().unwrap()).await;
    assert_eq!(
        outcome(&third),
        (Some("success"), Some(0), Some(0), Some(0)),
        "{third}"
    );

    // The webhook heard the connection and both changing runs, signed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while events(&received, "sync.completed").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "webhooks: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let completed = events(&received, "sync.completed");
    assert_eq!(completed.len(), 2, "{completed:?}");
    let counts = |e: &Value| {
        (
            e["data"]["added"].as_u64(),
            e["data"]["updated"].as_u64(),
            e["data"]["deleted"].as_u64(),
        )
    };
    assert_eq!(counts(&completed[0]), (Some(150), Some(0), Some(0)));
    assert_eq!(counts(&completed[1]), (Some(10), Some(5), Some(3)));
    assert_eq!(completed[1]["data"]["connection_id"], "s1");
    assert_eq!(events(&received, "connection.created").len(), 1);

    // The records API refuses bad input clearly.
    for (query, code) in [
        ("&limit=0", "invalid_limit"),
        ("&limit=10001", "invalid_limit"),
        ("&filter=gone", "invalid_filter"),
        ("&cursor=nonsense", "invalid_cursor"),
        ("&modified_after=yesterday", "invalid_modified_after"),
    ] {
        let (status, body) = world
            .host
            .call(
                Method::GET,
                &format!("/records?integration=microsoft&connection_id=s1&model=Person{query}"),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }

    // Actions run through the same context.
    let person = &all
        .iter()
        .find(|r| r["_metadata"]["deleted_at"].is_null())
        .unwrap();
    let name = person["display_name"].as_str().unwrap().to_owned();
    let (status, output) = world
        .host
        .post(
            "/actions/search-people",
            &json!({"integration": "microsoft", "connection_id": "s1", "input": {"query": name}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(output["output"].to_string().contains(&name), "{output}");

    // The CLI exports what the API lists, and a dry run stores nothing.
    let config = world.dir.0.join("plugboard.toml");
    let cli = |args: &[&str]| {
        plugboard_command(args, &config)
            .env(
                "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET",
                &world.demo.client_secret,
            )
            .env("CLIENT_SECRET", &world.demo.client_secret)
            .env("KEY_K1", crate::support::KEY_1)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let export = cli(&["records", "export", "microsoft", "s1", "Person"]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids(&lines), ids(&all));
    let dry = cli(&["sync", "run", "microsoft", "s1", "people", "--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{dry_out}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(dry_out.contains("dry run: nothing was stored"), "{dry_out}");
    assert!(dry_out.contains("\"display_name\""), "{dry_out}");
    assert_eq!(
        records(&world, "s1", "").await,
        all,
        "the dry run stored nothing"
    );

    // Graph's concurrency limit was respected throughout.
    let counters = world.control.counters().await.unwrap();
    assert!(
        counters
            .max_concurrency_per_mailbox
            .values()
            .all(|n| *n <= 4),
        "{counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_mid_crawl_still_end_with_exactly_the_right_records() {
    let world = World::start_with(250, &syncing("http://127.0.0.1:9/unused")).await;
    // The first page passes (it takes the harmless delay); the second meets a 429 with
    // Retry-After, a 503, a truncated page and a dropped connection, in that order.
    world
        .fault_people_pages([
            FaultKind::Delay { ms: 1 },
            FaultKind::Status {
                status: 429,
                retry_after_secs: Some(1),
            },
            FaultKind::Status {
                status: 503,
                retry_after_secs: None,
            },
            FaultKind::MalformedBody,
            FaultKind::DropConnection,
        ])
        .await;
    world.connect("microsoft", "f1").await;
    let first = finished_run(&world, "f1", "").await;
    assert_eq!(first["status"], "success", "{first}\n{}", world.host.logs());
    assert!(
        world.control.faults().await.unwrap().is_empty(),
        "every fault was met"
    );
    let stored = records(&world, "f1", "").await;
    assert_eq!(stored.len(), 250);
    assert_eq!(ids(&stored), emulator_ids(&world).await);

    // A run that fails half-way (the second page keeps failing) deletes nothing and keeps its
    // checkpoint; the next run resumes there and then deletes exactly the removed people.
    let people: Vec<String> = emulator_ids(&world).await.into_iter().collect();
    world.remove_people(&people[..3]).await;
    fail_the_second_page(&world).await;
    trigger(&world, "f1", "incremental").await;
    let failed = finished_run(&world, "f1", first["started_at"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("500"),
        "{failed}"
    );
    assert_eq!(failed["deleted"], 0);
    assert_eq!(status(&world, "f1").await["state"], "failed");
    assert_eq!(
        live(&records(&world, "f1", "").await).len(),
        250,
        "nothing deleted"
    );

    trigger(&world, "f1", "incremental").await;
    let resumed = finished_run(&world, "f1", failed["started_at"].as_str().unwrap()).await;
    assert_eq!(
        (resumed["status"].as_str(), resumed["deleted"].as_u64()),
        (Some("success"), Some(3)),
        "{resumed}"
    );
    let latest = world.host.latest_run("f1").await;
    assert!(
        latest["logs"]
            .to_string()
            .contains("resuming the crawl after 1 pages"),
        "{latest}"
    );
    let all = records(&world, "f1", "").await;
    assert_eq!(ids(&live(&all)), emulator_ids(&world).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_killed_mid_crawl_resumes_from_its_checkpoint() {
    let mut world = World::start_with(400, &syncing("http://127.0.0.1:9/unused")).await;
    world.connect("microsoft", "k1").await;
    let first = finished_run(&world, "k1", "").await;
    assert_eq!(first["status"], "success", "{first}");
    let clean = records(&world, "k1", "").await;
    assert_eq!(clean.len(), 400);

    // Three people go; pages become slow; a crawl starts and is killed after its first page.
    let people: Vec<String> = emulator_ids(&world).await.into_iter().collect();
    world.remove_people(&people[..3]).await;
    world.set_graph_latency(800).await;
    let pages_before = world.graph_requests("/v1.0/me/people").await;
    trigger(&world, "k1", "full").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    // The second page was asked for: the first is saved and checkpointed.
    while world.graph_requests("/v1.0/me/people").await < pages_before + 2 {
        assert!(Instant::now() < deadline, "the crawl did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    world.kill_and_restart().await;
    world.set_graph_latency(0).await;
    // The killed run's log lines were stored with its first page, not at its end.
    let runs = world.host.runs("k1", 5).await;
    let killed = runs.iter().find(|run| run["mode"] == "full").unwrap();
    let lines = killed["logs"].to_string();
    assert!(
        lines.contains("starting a full crawl") && lines.contains("page 1: "),
        "{lines}"
    );
    let interrupted = records(&world, "k1", "").await;
    assert_eq!(
        live(&interrupted).len(),
        400,
        "the partial run deleted nothing"
    );

    // The restarted host fails the interrupted run and resumes the crawl at once.
    let resumed = finished_run(&world, "k1", first["started_at"].as_str().unwrap()).await;
    let resumed = if resumed["status"] == "failed" {
        assert!(
            resumed["error"].as_str().unwrap().contains("host stopped"),
            "{resumed}"
        );
        finished_run(&world, "k1", resumed["started_at"].as_str().unwrap()).await
    } else {
        resumed
    };
    assert_eq!(
        (resumed["status"].as_str(), resumed["deleted"].as_u64()),
        (Some("success"), Some(3)),
        "{resumed}"
    );
    let latest = world.host.latest_run("k1").await;
    assert!(
        latest["logs"].to_string().contains("resuming the crawl"),
        "{latest}"
    );
    let after = records(&world, "k1", "").await;
    let expected: Vec<Value> = clean
        .iter()
        .filter(|r| !people[..3].contains(&r["id"].as_str().unwrap().to_owned()))
        .cloned()
        .collect();
    assert_eq!(
        contents(&after),
        contents(&expected),
        "the same records as a clean run"
    );
}

/// A frequency is bounded (at most 365 days): an unbounded one such as `1000000000000d` used to
/// be accepted and then overflow the next run's date, panicking the scheduler so that no sync
/// ran for any connection. It is refused with the field and the range named, `365d` is taken,
/// and runs still happen.
#[tokio::test(flavor = "multi_thread")]
async fn a_frequency_out_of_range_is_refused_and_the_scheduler_keeps_running() {
    let world = World::start_with(20, &syncing("http://127.0.0.1:9/unused")).await;
    world.connect("microsoft", "f1").await;
    let first = finished_run(&world, "f1", "").await;
    assert_eq!(first["status"], "success", "{first}");

    let request = |frequency: &str| json!({"integration": "microsoft", "connection_id": "f1", "syncs": ["people"], "frequency": frequency});
    let (status, body) = world
        .host
        .post("/syncs/frequency", &request("1000000000000d"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_frequency", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for expected in ["`frequency`", "`1000000000000d`", "1s to 365d"] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let (status, body) = world.host.post("/syncs/frequency", &request("365d")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    trigger(&world, "f1", "full").await;
    let second = finished_run(&world, "f1", first["started_at"].as_str().unwrap()).await;
    assert_eq!(second["status"], "success", "{second}");
}
