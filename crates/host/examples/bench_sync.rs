//! The sync benchmarks behind `cargo xtask bench sync` and `cargo xtask bench plugin`: people
//! crawled from the emulator into SQLite, or with `--store postgres` into PostgreSQL.
//!
//! Usage: `bench_sync --plugboard <path to a release plugboard binary> [--sizes 10000,100000]
//! [--store sqlite|postgres]`.
//! For each size, a fresh emulator (in this process, on its own runtime) is seeded with that many
//! people and a fresh Plugboard store gets one connection; then
//! - (a) the bare pipeline: the same pages Plugboard's sync fetches (pages of [`PAGE_SIZE`]),
//!   fetched, parsed and inserted into a fresh store of the same backend — a SQLite file with
//!   plain multi-row inserts, or a PostgreSQL database with one `UNNEST` insert per page — one
//!   transaction per page: the practical limit;
//! - (b) Plugboard's initial sync: `plugboard sync run`, every record new (hashed, encrypted,
//!   stored with its metadata, crawl bookkeeping, a checkpoint per page);
//! - (c) the same sync again with nothing changed.
//!
//! Records/s is people / wall time. Peak memory is the `plugboard sync run` process's peak
//! resident set (VmHWM), sampled from /proc while it runs.
//!
//! With `--plugin <path to the people provider's plugin> [--sizes 100000] [--rounds 3]` it
//! measures the cost of the plugin boundary instead: the same connected store, restored before
//! each run, synced by `plugboard sync run` with the provider built in and with it loaded from
//! the plugin (an initial sync, then one with nothing changed), the two alternating within each
//! round so both see the same noise. Pages are of [`PAGE_SIZE`] people, as in the sync
//! benchmark, so both measure the same sync.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugboard_store::testing::TestDatabase;
use serde_json::Value;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

#[path = "support/mod.rs"]
mod support;

use support::{
    BUILTIN_PROVIDER, bench_config, bench_env, connected_token, demo_for_plugboard, sqlite_url,
    unthrottled_emulator,
};

/// Where the benchmark's stores live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    /// Fresh databases on the PostgreSQL of the tests (`PLUGBOARD_TEST_POSTGRES_URL`).
    Postgres,
}

/// People per page, in every run: the bare pipeline asks for it with `$top`, Plugboard's sync
/// through the integration's `[integrations.microsoft.syncs.people] page_size` (the provider's
/// own default is 100; Graph serves up to 1,000).
const PAGE_SIZE: usize = 1_000;
/// Rows per `INSERT` of the bare pipeline, within SQLite's limit on bound parameters.
const ROWS_PER_INSERT: usize = 100;

fn main() {
    let mut plugboard = None;
    let mut plugin = None;
    let mut sizes = None;
    let mut rounds = 3;
    let mut backend = Backend::Sqlite;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plugboard" => plugboard = args.next().map(PathBuf::from),
            "--plugin" => plugin = args.next().map(PathBuf::from),
            "--sizes" => {
                sizes = Some(
                    args.next()
                        .expect("--sizes N,N")
                        .split(',')
                        .map(|n| n.trim().parse().expect("--sizes takes numbers"))
                        .collect::<Vec<usize>>(),
                )
            }
            "--store" => {
                backend = match args.next().as_deref() {
                    Some("sqlite") => Backend::Sqlite,
                    Some("postgres") => Backend::Postgres,
                    other => panic!("--store takes sqlite or postgres, not {other:?}"),
                }
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--rounds takes a number")
            }
            other => panic!(
                "unknown argument `{other}`; usage: bench_sync --plugboard PATH [--sizes 10000,100000] [--store sqlite|postgres] \
                 | bench_sync --plugboard PATH --plugin PATH [--sizes 100000] [--rounds 3]"
            ),
        }
    }
    let plugboard = plugboard.expect("--plugboard PATH (cargo xtask bench sync passes it)");
    if let Some(plugin) = plugin {
        assert_eq!(
            backend,
            Backend::Sqlite,
            "the plugin benchmark runs on SQLite"
        );
        for people in sizes.unwrap_or_else(|| vec![100_000]) {
            bench_plugin(&plugboard, &plugin, people, rounds);
        }
        return;
    }
    let sizes = sizes.unwrap_or_else(|| vec![10_000, 100_000]);
    println!(
        "people, page size {PAGE_SIZE}, {} cores, store {backend:?}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| people | run | seconds | records/s | vs (a) | Plugboard CPU (s) | peak memory (MiB) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let mut peaks = Vec::new();
    for people in sizes {
        let [bare, initial, unchanged] = bench_size(&plugboard, people, backend);
        for run in [&bare, &initial, &unchanged] {
            let rate = people as f64 / run.seconds;
            let (cpu, peak) = match &run.sync {
                Some(sync) => (
                    format!("{:.2}", sync.cpu),
                    format!("{:.1}", sync.peak.unwrap_or(0) as f64 / 1024.0),
                ),
                None => ("–".to_owned(), "–".to_owned()),
            };
            println!(
                "| {people} | {} | {:.2} | {rate:.0} | {:.0}% | {cpu} | {peak} |",
                run.label,
                run.seconds,
                100.0 * bare.seconds / run.seconds,
            );
        }
        let (b, c) = (initial.sync.unwrap(), unchanged.sync.unwrap());
        println!(
            "| {people} | goals | | | (b) {:.0}% of (a) (goal ≥ 50%); (c) {:.2}× faster than (b) (goal ≥ 2×), {:.2}× in CPU | | |",
            100.0 * bare.seconds / b.seconds,
            b.seconds / c.seconds,
            b.cpu / c.cpu
        );
        peaks.push((people, b.peak, c.peak));
    }
    if let [(small, Some(bs), Some(cs)), .., (large, Some(bl), Some(cl))] = peaks.as_slice() {
        println!(
            "\npeak memory {large} vs {small} people: initial sync {:+.0}%, unchanged sync {:+.0}% (goal: within 20%)",
            100.0 * (*bl as f64 / *bs as f64 - 1.0),
            100.0 * (*cl as f64 / *cs as f64 - 1.0)
        );
    }
}

/// One measured run of [`bench_size`].
struct Measured {
    label: &'static str,
    seconds: f64,
    /// The `plugboard sync run` process, for (b) and (c).
    sync: Option<SyncRun>,
}

/// (a), (b) and (c).
fn bench_size(plugboard: &Path, people: usize, backend: Backend) -> [Measured; 3] {
    with_connected(plugboard, people, backend, async |setup| {
        let pages = Pages {
            http: &setup.http,
            emulator: &setup.emulator_url,
            token: &setup.token,
        };
        let (inserted, bare) = match backend {
            Backend::Sqlite => {
                let started = Instant::now();
                let inserted = bare_pipeline(pages, &setup.dir.join("bare.db")).await;
                (inserted, started.elapsed().as_secs_f64())
            }
            Backend::Postgres => {
                let database = TestDatabase::create().await;
                let started = Instant::now();
                let inserted = bare_pipeline_postgres(pages, database.url()).await;
                let seconds = started.elapsed().as_secs_f64();
                database.drop_database().await;
                (inserted, seconds)
            }
        };
        assert_eq!(inserted, people, "the bare pipeline read everyone");

        let sync = |label| {
            let run = sync_run(plugboard, &setup.config, &setup.env);
            assert!(run.summary.contains("success"), "{}", run.summary);
            Measured {
                label,
                seconds: run.seconds,
                sync: Some(run),
            }
        };
        let bare = Measured {
            label: "(a) bare pipeline",
            seconds: bare,
            sync: None,
        };
        let initial = sync("(b) Plugboard, initial sync");
        [bare, initial, sync("(c) Plugboard, nothing changed")]
    })
}

/// An initial sync and one with nothing changed.
struct PluginRun {
    initial: SyncRun,
    unchanged: SyncRun,
}

/// One measure of a [`PluginRun`].
type Measure = fn(&PluginRun) -> f64;

/// The provider built in versus loaded from `library`, `rounds` times, alternating.
fn bench_plugin(plugboard: &Path, library: &Path, people: usize, rounds: usize) {
    // The config lives in a temporary directory, against which a relative path would resolve.
    let library = std::fs::canonicalize(library)
        .unwrap_or_else(|e| panic!("plugin {}: {e}", library.display()));
    with_connected(plugboard, people, Backend::Sqlite, async |setup| {
        let built_in = std::fs::read_to_string(&setup.config).unwrap();
        assert!(built_in.contains(BUILTIN_PROVIDER), "{built_in}");
        let plugin_config = setup.dir.join("plugin.toml");
        std::fs::write(
            &plugin_config,
            built_in.replace(
                BUILTIN_PROVIDER,
                &format!("[[providers]]\npath = {:?}", library.display().to_string()),
            ),
        )
        .unwrap();
        // The connected store before any sync, restored before each measured pair of runs.
        let pristine = setup.dir.join("pristine");
        std::fs::create_dir_all(&pristine).unwrap();
        copy_store(&setup.dir, &pristine);

        let variants = [
            ("built in", setup.config.clone()),
            ("plugin", plugin_config),
        ];
        println!(
            "people {people}, page size {PAGE_SIZE}, {} cores, {rounds} rounds\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "| round | provider | initial sync: wall (CPU) s | nothing changed: wall (CPU) s | peak memory (MiB) |"
        );
        println!("|---:|---|---:|---:|---:|");
        let mut runs: [Vec<PluginRun>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for variant in order {
                let (label, config) = &variants[variant];
                copy_store(&pristine, &setup.dir);
                let initial = sync_run(plugboard, config, &setup.env);
                assert!(
                    initial.summary.contains("success"),
                    "{label}: {}",
                    initial.summary
                );
                let unchanged = sync_run(plugboard, config, &setup.env);
                assert!(
                    unchanged.summary.contains("success"),
                    "{label}: {}",
                    unchanged.summary
                );
                println!(
                    "| {} | {label} | {:.2} ({:.2}) | {:.2} ({:.2}) | {} |",
                    round + 1,
                    initial.seconds,
                    initial.cpu,
                    unchanged.seconds,
                    unchanged.cpu,
                    initial.peak.map_or("–".to_owned(), |kib| format!(
                        "{:.1}",
                        kib as f64 / 1024.0
                    ))
                );
                runs[variant].push(PluginRun { initial, unchanged });
            }
        }
        let median = |variant: usize, pick: Measure| {
            let mut values: Vec<f64> = runs[variant].iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        println!("\n| run | built in (s, median) | plugin (s, median) | plugin vs built in |");
        println!("|---|---:|---:|---:|");
        let picks: [(&str, Measure); 4] = [
            ("initial sync, wall", |r| r.initial.seconds),
            ("initial sync, CPU", |r| r.initial.cpu),
            ("nothing changed, wall", |r| r.unchanged.seconds),
            ("nothing changed, CPU", |r| r.unchanged.cpu),
        ];
        for (label, pick) in picks {
            let (built_in, plugin) = (median(0, pick), median(1, pick));
            println!(
                "| {label} | {built_in:.2} | {plugin:.2} | {:+.1}% (goal: within 5%) |",
                100.0 * (plugin / built_in - 1.0)
            );
        }
    });
}

/// Copies the store's SQLite files (database, WAL, shared memory) from one directory to
/// another, removing those the source does not have.
fn copy_store(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("plugboard.db{suffix}");
        let _ = std::fs::remove_file(to.join(&name));
        if from.join(&name).exists() {
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
}

/// A fresh emulator seeded with `people` people, and a fresh Plugboard store in a temporary
/// directory with the demo account connected through the real OAuth flow; the server that
/// connected it is stopped before `measure` runs. The config sets the people sync's
/// `page_size` to [`PAGE_SIZE`].
struct Connected {
    dir: PathBuf,
    config: PathBuf,
    env: Vec<(&'static str, String)>,
    emulator_url: String,
    /// The connection's access token, for requests straight to the emulator.
    token: String,
    http: reqwest::Client,
}

fn with_connected<R>(
    plugboard: &Path,
    people: usize,
    backend: Backend,
    measure: impl AsyncFnOnce(&Connected) -> R,
) -> R {
    let (_emulator_runtime, emulator) = unthrottled_emulator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime.block_on(async {
        let emulator_url = emulator.url();
        let control = emulator.control();
        let (port, host, demo) = demo_for_plugboard(&control, people).await;
        let dir = std::env::temp_dir().join(format!(
            "plugboard-bench-sync-{}-{people}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("plugboard.toml");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        let store_url = match &database {
            Some(database) => database.url().to_owned(),
            None => sqlite_url(&dir.join("plugboard.db")),
        };
        let common = bench_config(port, &store_url, &demo.client_id, &emulator_url);
        std::fs::write(
            &config,
            format!(
                r#"{common}# The benchmark runs the sync itself, with `plugboard sync run`.
[integrations.microsoft.syncs.people]
enabled = false
page_size = {PAGE_SIZE}
"#
            ),
        )
        .unwrap();
        let env = bench_env(&demo.client_secret);
        let mut server = Command::new(plugboard)
            .args(["serve", "--config"])
            .arg(&config)
            .envs(env.clone())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting plugboard");
        let token = connected_token(&host).await;
        let _ = server.kill();
        let _ = server.wait();

        let setup = Connected {
            dir,
            config,
            env,
            emulator_url,
            token,
            http: reqwest::Client::new(),
        };
        let results = measure(&setup).await;
        let _ = std::fs::remove_dir_all(&setup.dir);
        if let Some(database) = database {
            database.drop_database().await;
        }
        results
    });
    drop(emulator);
    results
}

/// Where the bare pipelines read the people from.
#[derive(Clone, Copy)]
struct Pages<'a> {
    http: &'a reqwest::Client,
    emulator: &'a str,
    token: &'a str,
}

impl Pages<'_> {
    /// Fetches and parses every page in turn, handing each page's people to `store`.
    async fn each(self, mut store: impl AsyncFnMut(&[Value])) -> usize {
        let mut next = Some(format!("{}/v1.0/me/people?$top={PAGE_SIZE}", self.emulator));
        let mut count = 0;
        while let Some(url) = next.take() {
            let body = self
                .http
                .get(&url)
                .bearer_auth(self.token)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let page: Value = serde_json::from_slice(&body).unwrap();
            let people = page["value"].as_array().unwrap();
            store(people).await;
            count += people.len();
            next = page["@odata.nextLink"].as_str().map(str::to_owned);
        }
        count
    }
}

/// Fetches every page, parses it, and inserts its people with plain multi-row inserts.
async fn bare_pipeline(pages: Pages<'_>, db: &Path) -> usize {
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
    let count = pages
        .each(async |people| {
            let mut tx = conn.begin().await.unwrap();
            for chunk in people.chunks(ROWS_PER_INSERT) {
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
        })
        .await;
    // Closed within the timing, like the `plugboard sync run` process closes its store: SQLite
    // then copies its write-ahead log into the database file.
    conn.close().await.unwrap();
    count
}

/// Fetches every page, parses it, and inserts its people into PostgreSQL with one `UNNEST`
/// insert per page, in a transaction of its own.
async fn bare_pipeline_postgres(pages: Pages<'_>, url: &str) -> usize {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("CREATE TABLE people (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    let count = pages
        .each(async |people| {
            let ids: Vec<&str> = people.iter().map(|p| p["id"].as_str().unwrap()).collect();
            let data: Vec<String> = people.iter().map(Value::to_string).collect();
            let mut tx = conn.begin().await.unwrap();
            sqlx::query(
                "INSERT INTO people (id, data) SELECT * FROM UNNEST($1::text[], $2::text[])",
            )
            .bind(&ids)
            .bind(&data)
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
        })
        .await;
    conn.close().await.unwrap();
    count
}

/// One `plugboard sync run`.
struct SyncRun {
    /// Wall time.
    seconds: f64,
    /// Peak resident KiB.
    peak: Option<u64>,
    /// User and system CPU seconds of the process, as last sampled (within 5 ms of its end):
    /// less disturbed than wall time by other work competing for the cores.
    cpu: f64,
    /// Its output.
    summary: String,
}

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 a second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// Runs `plugboard sync run`.
fn sync_run(plugboard: &Path, config: &Path, env: &[(&str, String)]) -> SyncRun {
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
    let stat_path = format!("/proc/{}/stat", child.id());
    let mut peak = None;
    let mut ticks = 0;
    loop {
        // utime and stime are the 14th and 15th fields; the 2nd (the name) may hold spaces.
        if let Ok(stat) = std::fs::read_to_string(&stat_path)
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let fields: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|n| n.parse().ok())
                .collect();
            if let [user, system] = fields[..] {
                ticks = user + system;
            }
        }
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
    SyncRun {
        seconds,
        peak,
        cpu: ticks as f64 / TICKS_PER_SECOND,
        summary: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}
