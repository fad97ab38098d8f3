//! The store's disk fills up, or the store turns read-only, under a running host (issue #14,
//! crash points): every write answers 503 `store_unavailable` with `Retry-After` and the
//! reason, reads keep answering, nothing is half written, a sync that hit it runs again by the
//! schedule, and once the disk has room or the database takes writes again everything works
//! without a restart.
//!
//! Tests cannot mount a small or read-only file system (no root), so on SQLite the host runs
//! with `store_faults/fail_writes.c` preloaded, which fails the host's writes to the
//! database's files with `ENOSPC` or `EROFS` while a switch file exists. On PostgreSQL the
//! test's database turns read-only and its sessions are cut, as a failover to a standby does;
//! PostgreSQL's own disk cannot be filled here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use plugboard_emulator::{FaultKind, RefreshTokenRotation};
use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, Executor};

use crate::support::{Browser, Host, SYNCS_OFF, StoreKind, World, reply};
use crate::syncs::{emulator_ids, finished_run, ids, live, records, syncing};

/// Webhooks that nobody receives.
const NO_RECEIVER: &str = "http://127.0.0.1:9/unused";

/// The demo user's people: three pages of the people sync (100 a page).
const PEOPLE: usize = 250;

/// How the store stops taking writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SQLite's disk is full: its writes fail with `ENOSPC`.
    DiskFull,
    /// SQLite's file system was remounted read-only: its writes fail with `EROFS`.
    ReadOnlyFileSystem,
    /// The PostgreSQL database turned read-only (`default_transaction_read_only`, every
    /// session cut, as a failover to a standby does).
    ReadOnlyDatabase,
}

impl Fault {
    fn store(self) -> StoreKind {
        match self {
            Fault::DiskFull | Fault::ReadOnlyFileSystem => StoreKind::Sqlite,
            Fault::ReadOnlyDatabase => StoreKind::Postgres,
        }
    }

    /// Why the store refused, as the host's answers say it.
    fn reason(self) -> &'static str {
        match self {
            Fault::DiskFull => "the disk is full",
            Fault::ReadOnlyFileSystem => {
                "the disk failed a write (the file system may be read-only)"
            }
            Fault::ReadOnlyDatabase => "the database is read-only (a standby, or set to read-only)",
        }
    }
}

/// `fail_writes.c` built into a shared library, once per test process.
fn preload() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/store_faults/fail_writes.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("store-faults");
        std::fs::create_dir_all(&dir).unwrap();
        // Built under a name of this process's own, then renamed into place: a test process
        // starting a host meanwhile never loads a half-written library.
        let building = dir.join(format!("fail_writes.{}.so", std::process::id()));
        let output = Command::new("cc")
            .args([
                "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
            ])
            .arg(&building)
            .arg(&source)
            .arg("-ldl")
            .output()
            .expect("a C compiler (`cc`) builds the store-fault tests' preloaded library");
        assert!(
            output.status.success(),
            "building {}:\n{}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let library = dir.join("fail_writes.so");
        std::fs::rename(&building, &library).unwrap();
        library
    })
}

/// The file whose presence makes the preloaded library fail the host's writes.
fn switch_file(world: &World) -> PathBuf {
    world.dir.0.join("store-fault-switch")
}

/// A world whose host config ends with `extra` and whose host can be given `fault`: on
/// SQLite the host is started again with the library preloaded.
async fn start(fault: Fault, extra: &str) -> World {
    let mut world = World::start_on(fault.store(), PEOPLE, extra).await;
    if fault.store() == StoreKind::Sqlite {
        // As the library reads the database's paths back from the kernel: resolved.
        let dir = world.dir.0.canonicalize().unwrap();
        let switch = switch_file(&world);
        let env = [
            ("LD_PRELOAD", preload().to_str().unwrap()),
            ("STORE_FAULT_DIR", dir.to_str().unwrap()),
            ("STORE_FAULT_SWITCH", switch.to_str().unwrap()),
        ];
        world.restart_with_env(&env).await;
    }
    world
}

/// Turns `fault` on or off.
async fn set(world: &World, fault: Fault, on: bool) {
    match fault {
        Fault::DiskFull | Fault::ReadOnlyFileSystem => {
            let switch = switch_file(world);
            if on {
                let errno = if fault == Fault::DiskFull {
                    "ENOSPC"
                } else {
                    "EROFS"
                };
                std::fs::write(switch, errno).unwrap();
            } else {
                std::fs::remove_file(switch).unwrap();
            }
        }
        Fault::ReadOnlyDatabase => {
            // A failover to a standby and back: every session is cut, and the new ones find
            // the database read-only (or writable again).
            let url = url::Url::parse(world.database.as_ref().unwrap().url()).unwrap();
            let name = url.path().trim_start_matches('/');
            let mut admin = sqlx::PgConnection::connect(&plugboard_store::testing::postgres_url())
                .await
                .unwrap();
            let setting = if on {
                format!("ALTER DATABASE {name} SET default_transaction_read_only = on")
            } else {
                format!("ALTER DATABASE {name} RESET default_transaction_read_only")
            };
            admin.execute(sqlx::AssertSqlSafe(setting)).await.unwrap();
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(name)
            .execute(&mut admin)
            .await
            .unwrap();
            admin.close().await.unwrap();
        }
    }
}

/// A new connect session: a write of the store, answering what it answered, with its
/// `Retry-After`.
async fn create_session(host: &Host) -> (StatusCode, Option<String>, Value) {
    let response = host
        .api(Method::POST, "/connect/sessions")
        .json(&json!({"integration": "microsoft", "connection_id": "later"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

/// How many of the connection's live records carry the job title every person was given.
async fn changed(world: &World) -> usize {
    live(&records(world, "f1", "").await)
        .iter()
        .filter(|record| record["job_title"] == "Changed")
        .count()
}

async fn writes_are_refused_reads_answer_and_it_recovers(fault: Fault) {
    let world = start(fault, &syncing(NO_RECEIVER)).await;
    world.connect("microsoft", "f1").await;
    let first = finished_run(&world, "f1", "").await;
    assert_eq!(first["status"], "success", "{first}");
    let token = world.host.access_token("microsoft", "f1").await;
    let link = world.host.connect_link("microsoft", "f2", None).await;

    // At the provider everyone's job title changes and two people go; the next run rewrites
    // the records page by page, and it is on its way when the store stops taking writes.
    let user = &world.demo.user_id;
    let people = world.control.people(user).await.unwrap();
    for person in &people {
        world
            .control
            .update_person(user, &person.id, &json!({"jobTitle": "Changed"}))
            .await
            .unwrap();
    }
    world
        .remove_people(&[people[0].id.clone(), people[1].id.clone()])
        .await;
    world.set_graph_latency(300).await;
    let pages_before = world.graph_requests("/v1.0/me/people").await;
    world.host.trigger("f1", "full").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.graph_requests("/v1.0/me/people").await < pages_before + 1 {
        assert!(Instant::now() < deadline, "the crawl did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    set(&world, fault, true).await;

    // A write answers 503 with the reason and when to try again. (On PostgreSQL the first
    // answers may find the sessions cut: the store could not be reached.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let (retry_after, body) = loop {
        let (status, retry_after, body) = create_session(&world.host).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        let message = body["error"]["message"].as_str().unwrap().to_owned();
        if message.contains(fault.reason()) {
            break (retry_after, message);
        }
        assert!(Instant::now() < deadline, "never refused the write: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        body,
        format!(
            "the store refused to write: {}; reads still work; try again later",
            fault.reason()
        )
    );
    assert_eq!(retry_after.as_deref(), Some("30"));
    let (status, body) = world
        .host
        .call(Method::DELETE, "/connections/f1?integration=microsoft")
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    // A refresh cannot record that it is under way, so it asks the provider for nothing: no
    // new refresh token is redeemed and then lost.
    let refreshes = world.token_requests("refresh_token").await;
    let (status, body) = world.host.force_refresh("microsoft", "f1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert_eq!(world.token_requests("refresh_token").await, refreshes);

    // An end user pressing Continue on a connect page is told to try again; the session,
    // which pressing Continue takes, stays for then.
    let (response, _) = Browser::new().press_continue(&link).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = response.text().await.unwrap();
    assert!(page.contains("Try again in a moment"), "{page}");

    // Reads keep answering, and the server stays ready: it still serves them.
    let changed_while_refused = changed(&world).await;
    for _ in 0..3 {
        let listed = world.host.get_json("/connections").await;
        assert_eq!(listed["connections"][0]["connection_id"], "f1", "{listed}");
        assert_eq!(world.host.access_token("microsoft", "f1").await, token);
        let (status, me) = world.host.proxy_get("microsoft", "f1", "/v1.0/me").await;
        assert_eq!(status, StatusCode::OK, "{me}");
        let management = world.host.management_url.as_ref().unwrap();
        let ready = reqwest::get(format!("{management}/health/ready"))
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        // The run's pages were written whole or not at all, and nothing more is written.
        assert_eq!(changed(&world).await, changed_while_refused);
        assert!(
            [0, 100, 200].contains(&changed_while_refused),
            "a page was half written: {changed_while_refused} records changed"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Space (or write access) is back: writes work again at once, without a restart.
    set(&world, fault, false).await;
    world.set_graph_latency(0).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = create_session(&world.host).await;
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(Instant::now() < deadline, "writes did not recover: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.connect_with_link(&link).await;
    let (status, body) = world.host.force_refresh("microsoft", "f1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = world.host.proxy_get("microsoft", "f1", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The interrupted sync was not lost: the schedule runs it again, and it ends with exactly
    // the provider's people, every one changed, the two who went deleted.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let runs = world.host.runs("f1", 10).await;
        if runs.iter().any(|run| {
            run["status"] == "success" && run["deleted"] == 2 && run["id"] != first["id"]
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
    let all = records(&world, "f1", "").await;
    assert_eq!(all.len(), PEOPLE);
    assert_eq!(ids(&live(&all)), emulator_ids(&world).await);
    assert_eq!(changed(&world).await, PEOPLE - 2);

    let logs = world.host.logs();
    assert!(
        logs.contains(&format!("the store refused a write: {}", fault.reason())),
        "{logs}"
    );
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(!logs.contains(&token), "a token in the logs");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_a_full_disk_refuses_writes_keeps_reads_and_recovers_without_a_restart() {
    writes_are_refused_reads_answer_and_it_recovers(Fault::DiskFull).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_a_read_only_file_system_refuses_writes_keeps_reads_and_recovers() {
    writes_are_refused_reads_answer_and_it_recovers(Fault::ReadOnlyFileSystem).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_a_read_only_database_refuses_writes_keeps_reads_and_recovers() {
    writes_are_refused_reads_answer_and_it_recovers(Fault::ReadOnlyDatabase).await;
}

/// Tokens that a refresh redeemed while the disk filled up cannot be stored: the answer is a
/// 503 and the host keeps them in memory, so once there is room the next refresh stores them
/// instead of redeeming a refresh token the provider has revoked, and nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_refreshed_tokens_the_store_refuses_are_kept_and_stored_later() {
    let world = start(Fault::DiskFull, SYNCS_OFF).await;
    // A provider that revokes a refresh token once it is used: losing the tokens it gave in
    // exchange would leave the connection dead.
    world
        .control
        .set_refresh_token_rotation(RefreshTokenRotation::RevokeUsed)
        .await
        .unwrap();
    world.connect("microsoft", "f1").await;
    let token = world.host.access_token("microsoft", "f1").await;

    // The token endpoint answers slowly; the disk fills up while the host waits for it, after
    // it took the refresh lease.
    world
        .add_fault(
            Some("POST"),
            "/common/oauth2/v2.0/token",
            1,
            FaultKind::Delay { ms: 1_500 },
        )
        .await;
    let refresh = tokio::spawn(reply(world.host.api(
        Method::GET,
        "/connections/f1?integration=microsoft&refresh=true",
    )));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !world.control.faults().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no token request came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    set(&world, Fault::DiskFull, true).await;
    let (status, body) = refresh.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert_eq!(world.token_requests("refresh_token").await, 1);
    assert_eq!(world.host.access_token("microsoft", "f1").await, token);

    // Space is back: the next refresh stores the tokens kept in memory without redeeming the
    // (now revoked) refresh token again, and the rotated refresh token it stored works.
    set(&world, Fault::DiskFull, false).await;
    let (status, body) = world.host.force_refresh("microsoft", "f1").await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", world.host.logs());
    assert_ne!(body["credentials"]["access_token"], token.as_str());
    assert_eq!(world.token_requests("refresh_token").await, 1);
    let (status, body) = world.host.force_refresh("microsoft", "f1").await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", world.host.logs());
    assert_eq!(world.token_requests("refresh_token").await, 2);
    let (status, body) = world.host.proxy_get("microsoft", "f1", "/v1.0/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let logs = world.host.logs();
    assert!(logs.contains("storing refreshed tokens failed"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    world.finish().await;
}
