//! The dashboard benchmark behind `cargo xtask bench console`: how long each dashboard page
//! takes with 10,000 connections and 1,000,000 records in the store, against the goal of
//! 50 ms of server time per page.
//!
//! Usage: `bench_console --plugboard <path to a release plugboard binary> [--store
//! sqlite|postgres] [--requests N]`. The store is filled through the store's own interface
//! (connections with a mix of healths, every record in one of them, sync runs and an activity
//! log), then a release `plugboard serve` on it is signed in to and each page is
//! requested N times in a row over loopback. The times are the client's, from sending the
//! request to the last byte of the page: server time plus a loopback round trip, so a page
//! under the goal here is under it on the server. The floor, measured in the same run, is
//! `GET /health`: what any answer costs on this machine before a page does any work.

// Shared by the benchmarks; this one needs no emulator, so leaves some of it unused.
#[allow(dead_code)]
#[path = "support/mod.rs"]
mod support;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use plugboard_store::crypto::KeyRing;
use plugboard_store::testing::TestDatabase;
use plugboard_store::{
    ActivityKind, ConnectionKey, Location, NewActivity, NewConnection, RecordJson, RunCounts,
    RunStatus, Store, Tokens,
};
use reqwest::header::{COOKIE, SET_COOKIE};
use secrecy::{SecretBox, SecretString};
use serde_json::json;

use support::{API_KEY, ENCRYPTION_KEY, bench_config, bench_env, sqlite_url};

const CONNECTIONS: usize = 10_000;
const RECORDS: usize = 1_000_000;
/// Connections holding the records: one, the worst case for its Records tab.
const RECORD_HOLDERS: usize = 1;
const ACTIVITY: usize = 100_000;
const BATCH: usize = 1_000;
const GOAL: Duration = Duration::from_millis(50);

struct Args {
    plugboard: std::path::PathBuf,
    postgres: bool,
    requests: usize,
}

fn args() -> Args {
    let mut plugboard = None;
    let mut postgres = false;
    let mut requests = 50;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plugboard" => plugboard = args.next().map(Into::into),
            "--store" => {
                postgres = match args.next().as_deref() {
                    Some("sqlite") => false,
                    Some("postgres") => true,
                    other => panic!("--store takes sqlite or postgres, not {other:?}"),
                }
            }
            "--requests" => {
                requests = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--requests N")
            }
            other => panic!(
                "unknown argument `{other}`; usage: bench_console --plugboard PATH [--store sqlite|postgres] [--requests N]"
            ),
        }
    }
    Args {
        plugboard: plugboard.expect("--plugboard PATH (cargo xtask bench console passes it)"),
        postgres,
        requests,
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = std::env::temp_dir().join(format!("plugboard-bench-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let database = if args.postgres {
        Some(TestDatabase::create().await)
    } else {
        None
    };
    let store_url = match &database {
        Some(database) => database.url().to_owned(),
        None => sqlite_url(&dir.join("plugboard.db")),
    };
    let location = Location::from_url(&store_url, 10).unwrap();
    let store = plugboard_store::open(&location, key_ring(), true)
        .await
        .unwrap();
    let started = Instant::now();
    let (busy, records) = fill(store.as_ref()).await;
    println!(
        "filled the {} store in {:.0} s: {CONNECTIONS} connections, {RECORDS} records, {ACTIVITY} activity entries",
        if args.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        started.elapsed().as_secs_f64()
    );
    store.close().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("http://127.0.0.1:{port}");
    let config = dir.join("plugboard.toml");
    std::fs::write(
        &config,
        format!(
            "{}# Nothing runs in the background while pages are timed.\n\
             [integrations.microsoft.syncs.people]\nenabled = false\n",
            bench_config(port, &store_url, "bench-client", "http://127.0.0.1:9")
        ),
    )
    .unwrap();
    let mut child = Command::new(&args.plugboard)
        .args(["serve", "--config"])
        .arg(&config)
        .envs(bench_env("bench-client-secret"))
        .stdout(Stdio::null())
        .spawn()
        .expect("starting plugboard");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{host}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "plugboard did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let session = sign_in(&http, &host).await;

    let connection = |tab: &str, id: &str, extra: &str| {
        format!("/ui/connection/{tab}?integration=microsoft&connection_id={id}{extra}")
    };
    let pages = [
        ("floor: GET /health", "/health".to_owned()),
        ("Overview", "/ui".to_owned()),
        ("Connections, first page", "/ui/connections".to_owned()),
        (
            "Connections, a page deep in the list",
            "/ui/connections?after_integration=microsoft&after_id=c-08000".to_owned(),
        ),
        ("Connections, search", "/ui/connections?q=c-0999".to_owned()),
        (
            "Connections, status filter",
            "/ui/connections?status=sync_failing".to_owned(),
        ),
        ("Connection: Auth", connection("auth", &busy, "")),
        ("Connection: Syncs", connection("syncs", &busy, "")),
        (
            "Connection: Records (1,000,000 held), newest first",
            connection("records", &records, ""),
        ),
        (
            "Connection: Records, deleted only",
            connection("records", &records, "&model=Person&action=DELETED"),
        ),
        (
            "Connection: Records, updated only (none are)",
            connection("records", &records, "&model=Person&action=UPDATED"),
        ),
        (
            "Connection: one record",
            connection("records", &records, "&model=Person&record=p-0050000"),
        ),
        ("Connection: Logs", connection("logs", &busy, "")),
        ("Activity, last 24 hours", "/ui/activity".to_owned()),
        (
            "Activity, failed refreshes of one integration",
            "/ui/activity?kind=token_refresh&status=failed&integration=microsoft&window=30d"
                .to_owned(),
        ),
    ];
    println!(
        "\n{} requests per page, one after the other, on {} cores\n",
        args.requests,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| page | p50 (ms) | p95 (ms) | max (ms) | goal: under 50 ms |");
    println!("|---|---:|---:|---:|---|");
    let mut missed = 0;
    for (name, path) in &pages {
        let times = time(&http, &host, path, &session, args.requests).await;
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let verdict = if name.starts_with("floor") {
            "(floor)"
        } else if at(0.95) < GOAL {
            "met"
        } else {
            missed += 1;
            "missed"
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {verdict} |",
            ms(at(0.5)),
            ms(at(0.95)),
            ms(times[times.len() - 1]),
        );
    }
    println!(
        "\n{}",
        if missed == 0 {
            "every page met the goal at p95".to_owned()
        } else {
            format!("{missed} page(s) missed the goal at p95")
        }
    );
    let _ = child.kill();
    let _ = child.wait();
    if let Some(database) = database {
        database.drop_database().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn key_ring() -> Arc<KeyRing> {
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(ENCRYPTION_KEY)
        .unwrap()
        .try_into()
        .unwrap();
    let keys = BTreeMap::from([("k1".to_owned(), SecretBox::new(Box::new(key)))]);
    Arc::new(KeyRing::new(&keys, "k1").unwrap())
}

/// Fills the store; the ids of a connection with runs and of one holding records.
async fn fill(store: &dyn Store) -> (String, String) {
    let now = Utc::now();
    let mut rows = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let id = format!("c-{i:05}");
        let connection = store
            .save_connection(
                NewConnection {
                    key: ConnectionKey::new("microsoft", &id),
                    provider: "microsoft-people".to_owned(),
                    connection_config: BTreeMap::new(),
                    account: Some(json!({
                        "id": format!("u-{i}"),
                        "display_name": format!("Person {i}"),
                        "email": format!("person{i}@contoso.example"),
                    })),
                    tokens: Tokens {
                        access_token: SecretString::from(format!("access-{i}")),
                        refresh_token: Some(SecretString::from(format!("refresh-{i}"))),
                        id_token: None,
                        expires_at: Some(now + chrono::Duration::days(30)),
                        scopes: vec!["People.Read".to_owned()],
                    },
                },
                now,
            )
            .await
            .unwrap();
        // A mix of health: 1 in 50 needs a reconnect, 1 in 20 has a failing sync, 1 in 25
        // is paused, the rest are healthy; every tenth has a few runs.
        if i % 50 == 0 {
            store
                .mark_needs_reconnect(&connection.key, connection.token_version, "revoked", now)
                .await
                .unwrap();
        }
        if i % 10 == 0 {
            for run in 0..5 {
                let status = if i % 20 == 0 && run == 4 {
                    RunStatus::Failed
                } else {
                    RunStatus::Success
                };
                let at = now - chrono::Duration::minutes(60 - run);
                let run_id = store
                    .start_run(
                        &connection.id,
                        "people",
                        "incremental",
                        at + chrono::Duration::minutes(5),
                        at,
                        None,
                    )
                    .await
                    .unwrap()
                    .unwrap();
                let error = (status == RunStatus::Failed).then_some("the provider answered 503");
                store
                    .finish_run(
                        &run_id,
                        status,
                        RunCounts {
                            added: 10,
                            updated: 2,
                            deleted: 1,
                        },
                        error,
                        at,
                    )
                    .await
                    .unwrap();
            }
        }
        if i % 25 == 1 {
            store
                .set_sync_paused(&connection.id, "people", true)
                .await
                .unwrap();
        }
        rows.push(connection.id);
    }
    let per_holder = RECORDS / RECORD_HOLDERS;
    for holder in 0..RECORD_HOLDERS {
        let row = &rows[holder * 7 + 3];
        for batch in 0..per_holder / BATCH {
            let records: Vec<RecordJson<'static>> = (0..BATCH)
                .map(|n| {
                    let n = batch * BATCH + n;
                    RecordJson {
                        id: Cow::Owned(format!("p-{n:07}")),
                        json: Cow::Owned(
                            json!({"id": format!("p-{n:07}"), "displayName": format!("Person {n}"), "jobTitle": "Engineer", "scoredEmailAddresses": [{"address": format!("p{n}@contoso.example")}]})
                                .to_string(),
                        ),
                    }
                })
                .collect();
            store
                .save_records(row, "Person", records, now)
                .await
                .unwrap();
        }
        let deleted: Vec<String> = (0..1_000).map(|n| format!("p-{:07}", n * 7)).collect();
        store
            .delete_records(row, "Person", &deleted, now)
            .await
            .unwrap();
    }
    for i in 0..ACTIVITY {
        let connection = format!("c-{:05}", i % CONNECTIONS);
        store
            .record_activity(&NewActivity {
                kind: if i % 3 == 0 {
                    ActivityKind::TokenRefresh
                } else {
                    ActivityKind::SyncRun
                },
                succeeded: i % 17 != 0,
                integration: Some("microsoft".to_owned()),
                connection_id: Some(connection),
                summary: "token refreshed".to_owned(),
                reference: None,
                at: now - chrono::Duration::seconds((ACTIVITY - i) as i64 * 20),
            })
            .await
            .unwrap();
    }
    ("c-00010".to_owned(), format!("c-{:05}", 3))
}

/// Signs in as a browser would; the session cookie.
async fn sign_in(http: &reqwest::Client, host: &str) -> String {
    let form = http.get(format!("{host}/ui/sign-in")).send().await.unwrap();
    let form_cookie = form
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .next()
        .unwrap();
    let page = form.text().await.unwrap();
    let start = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    let signed_in = http
        .post(format!("{host}/ui/sign-in"))
        .header(COOKIE, form_cookie)
        .form(&[("csrf", csrf), ("key", API_KEY)])
        .send()
        .await
        .unwrap();
    signed_in
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("plugboard_console="))
        .expect("signed in")
}

/// Each request's time, sorted, after two untimed ones.
async fn time(
    http: &reqwest::Client,
    host: &str,
    path: &str,
    session: &str,
    requests: usize,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(requests);
    for n in 0..requests + 2 {
        let started = Instant::now();
        let response = http
            .get(format!("{host}{path}"))
            .header(COOKIE, session)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.bytes().await.unwrap();
        if n >= 2 {
            times.push(started.elapsed());
        }
    }
    times.sort_unstable();
    times
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
