//! Crash points: the host killed with SIGKILL at each write point of a token refresh and of a
//! sync (`PLUGBOARD_CRASH_AT`, the host's `crash_point` module), then started again on the same
//! store, on SQLite and on PostgreSQL.
//!
//! A refresh cut short leaves every connection working or marked as needing a reconnect with a
//! reason that says a refresh was interrupted, after exactly one refused token request: never
//! silently broken, never retried into a lock-out at a provider that revokes rotated refresh
//! tokens. With Microsoft's behaviour (old refresh tokens stay valid) every connection recovers
//! by itself. A sync cut short deletes no record a complete crawl would keep, and the resumed
//! run plus one more leave exactly the records of a clean run, with a sane checkpoint.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use plugboard_emulator::RefreshTokenRotation;
use plugboard_store::ConnectionKey;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{SYNCS_OFF, StoreKind, World};
use crate::syncs::{contents, emulator_ids, finished_run, ids, live, records, trigger};

const CRASH_AT: &str = "PLUGBOARD_CRASH_AT";
/// The host's refresh lease: a process killed mid-refresh holds it this long.
const REFRESH_LEASE: Duration = Duration::from_secs(45);

/// Starts the host again with `PLUGBOARD_CRASH_AT=point`.
async fn crash_at(world: &mut World, point: &str) {
    world.restart_with_env(&[(CRASH_AT, point)]).await;
}

/// Waits for the host to die at `point`, and checks it was SIGKILL there.
async fn killed_at(world: &mut World, point: &str) {
    let status = world.host.wait_for_exit().await;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let name = point.split(':').next().unwrap();
    let logs = world.host.logs();
    assert!(
        logs.contains(&format!("crash point {name} reached")),
        "{logs}"
    );
}

/// Forces a refresh of the connection on a host set to die at `point` of it: the answer never
/// comes, and the provider was asked exactly once.
async fn interrupt_refresh(world: &mut World, point: &str, connection_id: &str) {
    crash_at(world, point).await;
    let before = world.token_requests("refresh_token").await;
    let path = format!("/connections/{connection_id}?integration=microsoft&refresh=true");
    let answer = world.host.api(Method::GET, &path).send().await;
    assert!(answer.is_err(), "the host answered: {answer:?}");
    killed_at(world, point).await;
    assert_eq!(world.token_requests("refresh_token").await, before + 1);
}

async fn set_rotation(world: &World, rotation: RefreshTokenRotation) {
    world
        .control
        .set_refresh_token_rotation(rotation)
        .await
        .unwrap();
}

/// The connection as `GET /connections` lists it.
async fn listed(world: &World, connection_id: &str) -> Value {
    let list = world
        .host
        .get_json("/connections?integration=microsoft")
        .await;
    list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["connection_id"] == connection_id)
        .unwrap()
        .clone()
}

async fn refreshes_cut_short(kind: StoreKind) {
    let mut world = World::start_on(kind, 10, SYNCS_OFF).await;
    for id in ["rotated", "kept", "stored"] {
        world.connect("microsoft", id).await;
    }
    let stored_before = world.host.access_token("microsoft", "stored").await;

    // A provider that revokes a used refresh token, and its family when one comes back: the
    // host dies with the new tokens in hand, before storing them.
    set_rotation(&world, RefreshTokenRotation::RevokeFamilyOnReuse).await;
    let first_crash = Instant::now();
    interrupt_refresh(&mut world, "refresh.after_answer", "rotated").await;
    // Microsoft's behaviour: the same crash, the old refresh token still valid.
    set_rotation(&world, RefreshTokenRotation::Off).await;
    interrupt_refresh(&mut world, "refresh.after_answer", "kept").await;
    // Rotating again; the host dies after storing the new tokens, its lease never released.
    set_rotation(&world, RefreshTokenRotation::RevokeFamilyOnReuse).await;
    interrupt_refresh(&mut world, "refresh.after_store", "stored").await;
    world.kill_and_restart().await;
    assert_eq!(world.token_requests("refresh_token").await, 3);

    // The stored tokens are the new ones, and work without another refresh.
    let stored = world.host.access_token("microsoft", "stored").await;
    assert_ne!(stored, stored_before);
    let (status, _) = world
        .host
        .proxy_get("microsoft", "stored", "/v1.0/me")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.token_requests("refresh_token").await, 3);

    // The dead processes' leases run out; then each connection's next refresh knows the one
    // before was interrupted.
    tokio::time::sleep_until((first_crash + REFRESH_LEASE + Duration::from_secs(1)).into()).await;
    let (status, body) = world.host.force_refresh("microsoft", "rotated").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "needs_reconnect", "{body}");
    let interrupted = "a refresh was interrupted";
    assert!(body.to_string().contains(interrupted), "{body}");
    let rotated = listed(&world, "rotated").await;
    assert_eq!(rotated["status"], "needs_reconnect", "{rotated}");
    let reason = rotated["status_reason"].as_str().unwrap();
    assert!(reason.contains(interrupted), "{reason}");
    assert!(reason.contains("connect again"), "{reason}");
    assert_eq!(world.token_requests("refresh_token").await, 4, "one try");
    // Never retried: no more token requests for it, whatever is asked.
    let (status, _) = world
        .host
        .proxy_get("microsoft", "rotated", "/v1.0/me")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = world.host.force_refresh("microsoft", "rotated").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(world.token_requests("refresh_token").await, 4);

    // With Microsoft's behaviour the connection recovers by itself, unmarked.
    set_rotation(&world, RefreshTokenRotation::Off).await;
    for id in ["kept", "stored"] {
        let (status, body) = world.host.force_refresh("microsoft", id).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
        let (status, _) = world.host.proxy_get("microsoft", id, "/v1.0/me").await;
        assert_eq!(status, StatusCode::OK, "{id}");
        let connection = listed(&world, id).await;
        assert_eq!(connection["status"], "ok", "{connection}");
    }
    assert_eq!(world.token_requests("refresh_token").await, 6);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshes_cut_short_end_working_or_marked_and_never_retried_on_sqlite() {
    refreshes_cut_short(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshes_cut_short_end_working_or_marked_and_never_retried_on_postgres() {
    refreshes_cut_short(StoreKind::Postgres).await;
}

/// 35 people in pages of 10: four pages, a crash on the second leaves one page saved.
const PEOPLE: usize = 35;
const SYNCING: &str = "
[integrations.microsoft.syncs.people]
enabled = true
frequency = \"1h\"
page_size = 10

[integrations.admin.syncs.people]
enabled = false

[integrations.echo.syncs.people]
enabled = false
";

/// The people sync's checkpoint, read from the store as another process would.
async fn checkpoint(world: &World) -> Value {
    let store = world.store().await;
    let connection = store
        .connection(&ConnectionKey::new("microsoft", "s1"))
        .await
        .unwrap()
        .unwrap();
    let state = store.sync_state(&connection.id, "people").await.unwrap();
    state.checkpoint.unwrap_or(Value::Null)
}

fn deleted_ids(records: &[Value]) -> BTreeSet<String> {
    let live = ids(&live(records));
    ids(records).difference(&live).cloned().collect()
}

/// The run after the one that died: the restarted host fails that one once its lease expires
/// and resumes its crawl.
async fn resumed_run(world: &World, since: &str) -> Value {
    let run = finished_run(world, "s1", since).await;
    if run["status"] != "failed" {
        return run;
    }
    assert!(
        run["error"].as_str().unwrap().contains("host stopped"),
        "{run}"
    );
    finished_run(world, "s1", run["started_at"].as_str().unwrap()).await
}

/// A clean run, three people gone, a full run killed at `point` (`name` or `name:hit`), which
/// stops after `pages_saved` checkpointed pages; then the restarted host's resumed run and one
/// more.
async fn a_sync_killed_at(kind: StoreKind, point: &str, pages_saved: u64) {
    let mut world = World::start_on(kind, PEOPLE, SYNCING).await;
    world.connect("microsoft", "s1").await;
    let clean_run = finished_run(&world, "s1", "").await;
    assert_eq!(clean_run["status"], "success", "{clean_run}");
    let clean = records(&world, "s1", "").await;
    assert_eq!(clean.len(), PEOPLE);
    let people: Vec<String> = emulator_ids(&world).await.into_iter().collect();
    let removed: BTreeSet<String> = people[..3].iter().cloned().collect();
    world.remove_people(&people[..3]).await;

    crash_at(&mut world, point).await;
    trigger(&world, "s1", "full").await;
    killed_at(&mut world, point).await;
    world.kill_and_restart().await;

    // Nothing deleted by the unfinished crawl. Only PostgreSQL's `end_crawl`, which marks the
    // unseen records in transactions of their own, may have marked them before the crash:
    // exactly the people who are gone.
    let after_crash = records(&world, "s1", "").await;
    let marked_early = kind != StoreKind::Sqlite && point == "sync.in_end_crawl";
    let expected = if marked_early {
        removed.clone()
    } else {
        BTreeSet::new()
    };
    assert_eq!(deleted_ids(&after_crash), expected, "deleted by the crash");
    assert_eq!(ids(&after_crash), ids(&clean), "no record lost");
    let saved = checkpoint(&world).await;
    assert_eq!(saved["pages"], pages_saved, "{saved}");
    assert!(saved["next"].is_object(), "a crawl in progress: {saved}");

    let resumed = resumed_run(&world, clean_run["started_at"].as_str().unwrap()).await;
    assert_eq!(resumed["status"], "success", "{resumed}");
    let deletes_left = if marked_early { 0 } else { removed.len() };
    assert_eq!(resumed["deleted"], deletes_left, "{resumed}");
    let logs = world.host.latest_run("s1").await["logs"].to_string();
    assert!(
        logs.contains(&format!("resuming the crawl after {pages_saved} pages")),
        "{logs}"
    );
    trigger(&world, "s1", "incremental").await;
    let more = finished_run(&world, "s1", resumed["started_at"].as_str().unwrap()).await;
    assert_eq!(
        (
            &more["status"],
            &more["added"],
            &more["updated"],
            &more["deleted"]
        ),
        (&json!("success"), &json!(0), &json!(0), &json!(0)),
        "{more}"
    );

    let after = records(&world, "s1", "").await;
    let expected: Vec<Value> = clean
        .iter()
        .filter(|r| !removed.contains(r["id"].as_str().unwrap()))
        .cloned()
        .collect();
    assert_eq!(
        contents(&after),
        contents(&expected),
        "a clean run's records"
    );
    assert_eq!(ids(&live(&after)), emulator_ids(&world).await);
    assert_eq!(deleted_ids(&after), removed);
    let left = PEOPLE - removed.len();
    assert_eq!(
        checkpoint(&world).await,
        json!({"next": null, "pages": left.div_ceil(10), "records": left}),
        "the crawl ended"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_mid_batch_keeps_its_saved_pages_and_repairs_on_sqlite() {
    a_sync_killed_at(StoreKind::Sqlite, "sync.mid_batch:2", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_before_a_checkpoint_rereads_the_page_on_sqlite() {
    a_sync_killed_at(StoreKind::Sqlite, "sync.before_checkpoint:2", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_in_end_crawl_deletes_at_the_next_run_on_sqlite() {
    a_sync_killed_at(StoreKind::Sqlite, "sync.in_end_crawl", 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_in_end_crawl_finishes_its_deletes_on_postgres() {
    a_sync_killed_at(StoreKind::Postgres, "sync.in_end_crawl", 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_mid_batch_keeps_its_saved_pages_and_repairs_on_postgres() {
    a_sync_killed_at(StoreKind::Postgres, "sync.mid_batch:2", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_before_a_checkpoint_rereads_the_page_on_postgres() {
    a_sync_killed_at(StoreKind::Postgres, "sync.before_checkpoint:2", 1).await;
}
