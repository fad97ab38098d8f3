//! The proxy benchmark behind `cargo xtask bench proxy`: two workloads, each sent straight to the
//! emulator, through a bare TCP relay, through a bare hyper reverse proxy and through Plugboard's
//! proxy, at concurrency 1 and 16, in one run.
//!
//! Usage: `bench_proxy --plugboard <path to a release plugboard binary> [--seconds N]
//! [--rounds N]`. Everything runs on loopback: the emulator in this process (on its own
//! runtime), Plugboard and the relay ([`relay`]) as child processes, and the load generator
//! here.
//!
//! Two floors: the relay copies bytes and does nothing else, so what the load generator loses
//! through it is what a third process and two more loopback hops cost on this machine, before
//! any proxy work; the hyper proxy ([`hyper_proxy`]) adds HTTP on both sides and a fixed
//! token, the least any HTTP proxy does. Plugboard's goal is measured against the second: at
//! least 90 % of its throughput and at most 0.05 ms more at p50, with metrics, request ids and
//! `info` logs on, as a deployment runs.
//!
//! Small virtual machines are noisy, so the three paths' windows alternate for several rounds:
//! all see the same noise. Requests/s is the median of the rounds; latencies are percentiles
//! over every request of every round.
//!
//! Wall-clock numbers move with whatever else runs on the machine; CPU time per request does
//! much less, so each row also gives the user + system CPU per request of this process (load
//! generator and emulator) and of the process in between (Plugboard or the relay), from
//! `/proc/<pid>/stat` (Linux; `–` elsewhere).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod hyper_proxy;
mod relay;
#[path = "../support/mod.rs"]
mod support;

use support::{
    API_KEY, bench_config, bench_env, connected_token, demo_for_plugboard, sqlite_url,
    unthrottled_emulator,
};

const CONCURRENCY: [usize; 2] = [1, 16];
const WARM_UP: Duration = Duration::from_secs(1);
/// The smallest Graph answer (the proxy's own cost dominates) and the call the product exists
/// for, a page of 100 people (the provider's work dominates).
const WORKLOADS: [&str; 2] = ["/v1.0/me", "/v1.0/me/people?%24top=100"];

struct Args {
    plugboard: PathBuf,
    seconds: u64,
    rounds: usize,
}

fn args() -> Args {
    let mut plugboard = None;
    let mut seconds = 3;
    let mut rounds = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plugboard" => plugboard = args.next().map(PathBuf::from),
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--rounds N")
            }
            other => panic!(
                "unknown argument `{other}`; usage: bench_proxy --plugboard PATH [--seconds N] [--rounds N]"
            ),
        }
    }
    Args {
        plugboard: plugboard.expect("--plugboard PATH (cargo xtask bench proxy passes it)"),
        seconds,
        rounds,
    }
}

fn main() {
    relay::serve_if_asked();
    hyper_proxy::serve_if_asked();
    let args = args();
    let (_emulator_runtime, emulator) = unthrottled_emulator();
    let load_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    load_runtime.block_on(run(args, emulator.url(), emulator.control()));
    drop(emulator);
}

async fn run(args: Args, emulator: String, control: plugboard_emulator::ControlClient) {
    let (port, host, demo) = demo_for_plugboard(&control, 100).await;
    let dir = std::env::temp_dir().join(format!("plugboard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("plugboard.toml");
    std::fs::write(
        &config,
        bench_config(
            port,
            &sqlite_url(&dir.join("plugboard.db")),
            &demo.client_id,
            &emulator,
        ),
    )
    .unwrap();
    let mut child = Command::new(&args.plugboard)
        .args(["serve", "--config"])
        .arg(&config)
        .envs(bench_env(&demo.client_secret))
        // Request spans exist at `info`, the level a deployment logs at.
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting plugboard");

    let token = connected_token(&host).await;
    let relay = relay::Relay::start(relay::authority(&emulator));
    let hyper_proxy = hyper_proxy::HyperProxy::start(relay::authority(&emulator), &token);

    let window = Duration::from_secs(args.seconds);
    println!(
        "{} rounds of {}s per workload, path and concurrency (after {}s of warm-up), on {} cores",
        args.rounds,
        args.seconds,
        WARM_UP.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut summary = Vec::new();
    for path in WORKLOADS {
        println!("\nGET {path}\n");
        println!(
            "| concurrency | path | requests/s | p50 (ms) | p99 (ms) | CPU µs/request, load + emulator | CPU µs/request, in between |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|");
        let graph_token = vec![("authorization".into(), format!("Bearer {token}"))];
        let targets = [
            Target {
                label: "direct to the emulator",
                url: format!("{emulator}{path}"),
                headers: graph_token.clone(),
                in_between: None,
            },
            Target {
                label: "through a bare TCP relay (the TCP floor)",
                url: format!("{}{path}", relay.url),
                headers: graph_token,
                in_between: Some(relay.child.id()),
            },
            Target {
                label: "through a bare hyper reverse proxy (the HTTP floor)",
                url: format!("{}{path}", hyper_proxy.url),
                headers: Vec::new(),
                in_between: Some(hyper_proxy.child.id()),
            },
            Target {
                label: "through Plugboard's proxy",
                url: format!("{host}/proxy{path}"),
                headers: vec![
                    ("authorization".into(), format!("Bearer {API_KEY}")),
                    ("integration".into(), "microsoft".into()),
                    ("connection-id".into(), "bench".into()),
                ],
                in_between: Some(child.id()),
            },
        ];
        for concurrency in CONCURRENCY {
            for target in &targets {
                run_load(target, concurrency, WARM_UP).await;
            }
            let mut samples: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
            for _ in 0..args.rounds {
                for (target, samples) in targets.iter().zip(&mut samples) {
                    let before = CpuTimes::now(target.in_between);
                    let latencies = run_load(target, concurrency, window).await;
                    samples.add(
                        latencies,
                        window,
                        CpuTimes::since(before, target.in_between),
                    );
                }
            }
            let stats: Vec<Stats> = samples.into_iter().map(Samples::stats).collect();
            for (target, stats) in targets.iter().zip(&stats) {
                println!(
                    "| {concurrency} | {} | {:.0} | {:.3} | {:.3} | {} | {} |",
                    target.label,
                    stats.rps,
                    ms(stats.p50),
                    ms(stats.p99),
                    per_request(stats.cpu.bench),
                    per_request(stats.cpu.in_between),
                );
            }
            let direct = stats[0];
            for (target, stats) in targets.iter().zip(&stats).skip(1) {
                summary.push(format!(
                    "GET {path}, concurrency {concurrency}, {}: adds {:.3} ms at p50 and keeps {:.0}% of the direct throughput",
                    target.label,
                    ms(stats.p50.saturating_sub(direct.p50)),
                    100.0 * stats.rps / direct.rps
                ));
            }
            let (floor, plugboard) = (stats[2], stats[3]);
            let added = ms(plugboard.p50) - ms(floor.p50);
            let kept = 100.0 * plugboard.rps / floor.rps;
            summary.push(format!(
                "GET {path}, concurrency {concurrency}, Plugboard against the hyper proxy: keeps {kept:.0}% of its throughput (goal ≥ 90%: {}), adds {added:.3} ms at p50 (goal ≤ 0.050: {}), CPU µs/request {} against {}",
                if kept >= 90.0 { "met" } else { "missed" },
                if added <= 0.05 { "met" } else { "missed" },
                per_request(plugboard.cpu.in_between),
                per_request(floor.cpu.in_between),
            ));
        }
    }
    println!();
    for line in summary {
        println!("{line}");
    }
    drop(relay);
    drop(hyper_proxy);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One way to the emulator's API.
struct Target {
    label: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    /// The process between the load generator and the emulator, if any.
    in_between: Option<u32>,
}

#[derive(Clone, Copy)]
struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// CPU per request over every round, when `/proc` could be read.
    cpu: CpuPerRequest,
}

#[derive(Clone, Copy, Default)]
struct CpuPerRequest {
    bench: Option<Duration>,
    in_between: Option<Duration>,
}

/// Every latency of every round, each round's requests/s, and the CPU the rounds used.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    rps: Vec<f64>,
    cpu: Vec<Option<CpuTimes>>,
}

impl Samples {
    fn add(&mut self, latencies: Vec<Duration>, window: Duration, cpu: Option<CpuTimes>) {
        self.rps.push(latencies.len() as f64 / window.as_secs_f64());
        self.latencies.extend(latencies);
        self.cpu.push(cpu);
    }

    fn stats(mut self) -> Stats {
        self.latencies.sort_unstable();
        self.rps.sort_by(f64::total_cmp);
        let at =
            |q: f64| self.latencies[((self.latencies.len() as f64 - 1.0) * q).round() as usize];
        let requests = self.latencies.len().max(1) as u32;
        let rounds: Option<Vec<CpuTimes>> = self.cpu.iter().copied().collect();
        Stats {
            rps: self.rps[self.rps.len() / 2],
            p50: at(0.50),
            p99: at(0.99),
            cpu: rounds.map_or_else(CpuPerRequest::default, |rounds| CpuPerRequest {
                bench: Some(rounds.iter().map(|r| r.bench).sum::<Duration>() / requests),
                in_between: rounds
                    .iter()
                    .map(|r| r.in_between)
                    .sum::<Option<Duration>>()
                    .map(|d| d / requests),
            }),
        }
    }
}

/// User + system CPU time used so far by this process and by the one in between, if any.
#[derive(Clone, Copy)]
struct CpuTimes {
    bench: Duration,
    in_between: Option<Duration>,
}

impl CpuTimes {
    /// `None` where `/proc` is not there to read.
    fn now(in_between: Option<u32>) -> Option<CpuTimes> {
        Some(CpuTimes {
            bench: process_cpu("self")?,
            in_between: match in_between {
                Some(pid) => Some(process_cpu(&pid.to_string())?),
                None => None,
            },
        })
    }

    /// The CPU used since `before` (an earlier reading) was taken.
    fn since(before: Option<CpuTimes>, in_between: Option<u32>) -> Option<CpuTimes> {
        let (before, now) = (before?, CpuTimes::now(in_between)?);
        Some(CpuTimes {
            bench: now.bench.saturating_sub(before.bench),
            in_between: now
                .in_between
                .zip(before.in_between)
                .map(|(now, before)| now.saturating_sub(before)),
        })
    }
}

/// `utime + stime` of `/proc/<pid>/stat`, all threads of the process. Linux reports them in
/// clock ticks of `USER_HZ`, which is 100 on every architecture it exposes to user space.
fn process_cpu(pid: &str) -> Option<Duration> {
    const TICK: Duration = Duration::from_millis(10);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after it do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `fields[0]` is field 3.
    let ticks: u32 = fields.get(11)?.parse::<u32>().ok()? + fields.get(12)?.parse::<u32>().ok()?;
    Some(TICK * ticks)
}

fn per_request(cpu: Option<Duration>) -> String {
    cpu.map_or_else(
        || "–".to_owned(),
        |d| format!("{:.0}", d.as_secs_f64() * 1e6),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `concurrency` workers, each sending one request after the other for `window`, on one
/// shared client (one connection pool, like a real caller). Every request's latency.
async fn run_load(target: &Target, concurrency: usize, window: Duration) -> Vec<Duration> {
    let http = reqwest::Client::new();
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &target.headers {
        headers.insert(
            reqwest::header::HeaderName::try_from(name.as_str()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let shared = Arc::new((http, headers, target.url.clone()));
    let until = Instant::now() + window;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let (http, headers, url) = &*shared;
                let mut latencies = Vec::new();
                loop {
                    let started = Instant::now();
                    if started >= until {
                        return latencies;
                    }
                    let response = http.get(url).headers(headers.clone()).send().await.unwrap();
                    assert!(
                        response.status().is_success(),
                        "{url}: {}",
                        response.status()
                    );
                    response.bytes().await.unwrap();
                    latencies.push(started.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    latencies
}
