//! The sync benchmark behind `cargo xtask bench sync`: people crawled from the emulator into
//! SQLite, three ways, at two sizes.
//!
//! Usage: `bench_sync --plugboard <path to a release plugboard binary> [--sizes 10000,100000]`.
//! For each size, a fresh emulator (in this process, on its own runtime) is seeded with that many
//! people and a fresh Plugboard store gets one connection; then
//! - (a) the bare pipeline: the same pages Plugboard's sync fetches (the provider's page size),
//!   fetched, parsed and inserted into a fresh SQLite file with plain multi-row inserts, one
//!   transaction per page — the practical limit;
//! - (b) Plugboard's initial sync: `plugboard sync run`, every record new (hashed, encrypted,
//!   stored with its metadata, crawl bookkeeping, a checkpoint per page);
//! - (c) the same sync again with nothing changed.
//!
//! Records/s is people / wall time. Peak memory is the `plugboard sync run` process's peak
//! resident set (VmHWM), sampled from /proc while it runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugboard_emulator::{DemoOptions, Emulator, EmulatorOptions, ThrottleSettings};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use sqlx::{AssertSqlSafe, ConnectOptions};

const API_KEY: &str = "bench-api-key-0123456789-0123456789-abcdef";
const ENCRYPTION_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
/// The people provider's page size (`api.pagination.odata.page_size` in its provider.toml).
const PAGE_SIZE: usize = 100;

fn main() {
    let mut plugboard = None;
    let mut sizes = vec![10_000, 100_000];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plugboard" => plugboard = args.next().map(PathBuf::from),
            "--sizes" => {
                sizes = args
                    .next()
                    .expect("--sizes N,N")
                    .split(',')
                    .map(|n| n.trim().parse().expect("--sizes takes numbers"))
                    .collect()
            }
            other => panic!(
                "unknown argument `{other}`; usage: bench_sync --plugboard PATH [--sizes 10000,100000]"
            ),
        }
    }
    let plugboard = plugboard.expect("--plugboard PATH (cargo xtask bench sync passes it)");
    println!(
        "people, page size {PAGE_SIZE}, {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| people | run | seconds | records/s | vs (a) | peak memory (MiB) |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut peaks = Vec::new();
    for people in sizes {
        let results = bench_size(&plugboard, people);
        let bare = results[0].1;
        for (label, seconds, peak) in &results {
            let rate = people as f64 / seconds;
            println!(
                "| {people} | {label} | {seconds:.2} | {rate:.0} | {:.0}% | {} |",
                100.0 * bare / seconds,
                peak.map_or("–".to_owned(), |kib| format!(
                    "{:.1}",
                    kib as f64 / 1024.0
                ))
            );
        }
        peaks.push((people, results[1].2, results[2].2));
        let (b, c) = (results[1].1, results[2].1);
        println!(
            "| {people} | goals | | | (b) {:.0}% of (a) (goal ≥ 50%); (c) {:.2}× faster than (b) (goal ≥ 2×) | |",
            100.0 * bare / b,
            b / c
        );
    }
    if let [(small, Some(bs), Some(cs)), .., (large, Some(bl), Some(cl))] = peaks.as_slice() {
        println!(
            "\npeak memory {large} vs {small} people: initial sync {:+.0}%, unchanged sync {:+.0}% (goal: within 20%)",
            100.0 * (*bl as f64 / *bs as f64 - 1.0),
            100.0 * (*cl as f64 / *cs as f64 - 1.0)
        );
    }
}

/// (label, seconds, peak KiB) for (a), (b) and (c).
fn bench_size(plugboard: &Path, people: usize) -> Vec<(&'static str, f64, Option<u64>)> {
    let emulator_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let emulator = emulator_runtime
        .block_on(Emulator::start(EmulatorOptions {
            throttling: ThrottleSettings {
                max_concurrent_per_mailbox: 1_000,
                requests_per_window: u32::MAX,
                ..ThrottleSettings::default()
            },
            ..EmulatorOptions::default()
        }))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime.block_on(async {
        let emulator_url = emulator.url();
        let control = emulator.control();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("http://127.0.0.1:{port}");
        let demo = control
            .setup_demo(DemoOptions {
                redirect_uris: vec![format!("{host}/oauth/callback")],
                people,
                seed: 1,
            })
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "plugboard-bench-sync-{}-{people}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("plugboard.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[server]
bind = "127.0.0.1:{port}"
public_url = "{host}"
[store]
url = "sqlite://{db}"
[security]
encryption_keys = {{ k1 = "{ENCRYPTION_KEY}" }}
active_key = "k1"
[[providers]]
builtin = "microsoft-people"
[integrations.microsoft]
provider = "microsoft-people"
client_id = "{client_id}"
[integrations.microsoft.overrides]
authorization_url = "{emulator_url}/{{tenant}}/oauth2/v2.0/authorize"
token_url = "{emulator_url}/{{tenant}}/oauth2/v2.0/token"
api_base_url = "{emulator_url}"
# The benchmark runs the sync itself, with `plugboard sync run`.
[integrations.microsoft.syncs.people]
enabled = false
"#,
                db = dir.join("plugboard.db").display(),
                client_id = demo.client_id,
            ),
        )
        .unwrap();
        let env = [
            ("PLUGBOARD__SECURITY__SECRET_KEY", API_KEY.to_owned()),
            (
                "PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET",
                demo.client_secret.clone(),
            ),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let mut server = Command::new(plugboard)
            .args(["serve", "--config"])
            .arg(&config)
            .envs(env.clone())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting plugboard");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        wait_healthy(&http, &host).await;
        connect(&http, &host).await;
        let detail: Value = http
            .get(format!("{host}/connections/bench?integration=microsoft"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = detail["credentials"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let _ = server.kill();
        let _ = server.wait();

        let started = Instant::now();
        let inserted = bare_pipeline(&http, &emulator_url, &token, &dir.join("bare.db")).await;
        let bare = started.elapsed().as_secs_f64();
        assert_eq!(inserted, people, "the bare pipeline read everyone");

        let mut results = vec![("(a) bare pipeline", bare, None)];
        for label in [
            "(b) Plugboard, initial sync",
            "(c) Plugboard, nothing changed",
        ] {
            let (seconds, peak, summary) = sync_run(plugboard, &config, &env);
            assert!(summary.contains("success"), "{summary}");
            results.push((label, seconds, peak));
        }
        let _ = std::fs::remove_dir_all(&dir);
        results
    });
    drop(emulator);
    results
}

/// Fetches every page, parses it, and inserts its people with plain multi-row inserts.
async fn bare_pipeline(http: &reqwest::Client, emulator: &str, token: &str, db: &Path) -> usize {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE people (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut next = Some(format!("{emulator}/v1.0/me/people?$top={PAGE_SIZE}"));
    let mut count = 0;
    while let Some(url) = next.take() {
        let body = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let page: Value = serde_json::from_slice(&body).unwrap();
        let people = page["value"].as_array().unwrap();
        let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
        for chunk in people.chunks(100) {
            let sql = format!(
                "INSERT INTO people (id, data) VALUES {}",
                vec!["(?, ?)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for person in chunk {
                query = query
                    .bind(person["id"].as_str().unwrap().to_owned())
                    .bind(person.to_string());
            }
            query.execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        count += people.len();
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    count
}

/// Runs `plugboard sync run`; wall seconds, peak resident KiB and its summary line.
fn sync_run(plugboard: &Path, config: &Path, env: &[(&str, String)]) -> (f64, Option<u64>, String) {
    let started = Instant::now();
    let mut child = Command::new(plugboard)
        .args(["sync", "run", "--config"])
        .arg(config)
        .args(["microsoft", "bench", "people"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting plugboard sync run");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = None;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path)
            && let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        {
            peak = Some(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let seconds = started.elapsed().as_secs_f64();
    let output = child.wait_with_output().unwrap();
    (
        seconds,
        peak,
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

async fn wait_healthy(http: &reqwest::Client, host: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{host}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "plugboard did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects the demo account through the real OAuth flow, like a browser would.
async fn connect(http: &reqwest::Client, host: &str) {
    let session: Value = http
        .post(format!("{host}/connect/sessions"))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({"integration": "microsoft", "connection_id": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut cookies: HashMap<String, String> = HashMap::new();
    let mut url = session["connect_url"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let mut request = http.get(&url);
        if url.starts_with(host) && !cookies.is_empty() {
            let header: Vec<String> = cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
            request = request.header(COOKIE, header.join("; "));
        }
        let response = request.send().await.unwrap();
        for value in response.headers().get_all(SET_COOKIE) {
            let (name, value) = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap();
            cookies.insert(name.to_owned(), value.to_owned());
        }
        match response.headers().get(LOCATION) {
            Some(next) => url = next.to_str().unwrap().to_owned(),
            None => {
                assert!(
                    response.status().is_success(),
                    "connecting failed: {}",
                    response.text().await.unwrap()
                );
                return;
            }
        }
    }
    panic!("the connect flow did not finish");
}
