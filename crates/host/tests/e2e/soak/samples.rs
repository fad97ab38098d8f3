//! The host's resident memory (`VmRSS` in `/proc/<pid>/status`) and open file descriptors
//! (entries of `/proc/<pid>/fd`), sampled every few seconds through the run: a leak shows as
//! the last third of the run above the first.
//!
//! Descriptors are counted in two parts. The host's HTTP client (reqwest's defaults) keeps
//! every connection a burst opened to the provider or the webhook receiver for 90 seconds of
//! idleness, without a cap, so those sockets follow the busiest moment of the last 90 seconds
//! (a slow window has a hundred requests in flight; a token outage has the fleet refresh at
//! once), which varies by tens from one cycle to the next: they are held to a bound only a leak
//! would pass (a socket per request, refresh or run would add thousands). Every other
//! descriptor — the store's files and connections, listeners, accepted connections — is held
//! to the first third's mean plus 10 % and 10: the proxy clients' and the checks' connections
//! come and go with what is in flight at the instant of a sample.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(2);

/// How much the last third's mean resident memory may exceed the first third's.
const RSS_GROWTH: f64 = 0.10;
/// The same for descriptors other than pooled client connections, plus an absolute slack.
const FD_GROWTH: f64 = 0.10;
const FD_SLACK: f64 = 10.0;
/// The bound on pooled client connections: the last third's mean at most twice the first's
/// and 50.
const POOLED_GROWTH: f64 = 1.0;
const POOLED_SLACK: f64 = 50.0;

#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_kib: f64,
    /// Descriptors other than the pooled client connections.
    fds: f64,
    /// TCP connections to the provider or the webhook receiver.
    pooled: f64,
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

/// The process to sample, and the ports its HTTP client's pools connect to.
#[derive(Clone)]
pub struct Target {
    pub pid: u32,
    pub pooled_ports: Vec<u16>,
}

impl Sampler {
    pub fn start(target: Target) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                samples.push(sample(&target));
                tokio::time::sleep(EVERY).await;
            }
            samples
        });
        Sampler { stop, task }
    }

    pub async fn stop(self) -> Samples {
        self.stop.store(true, Ordering::SeqCst);
        Samples(self.task.await.unwrap())
    }
}

fn sample(target: &Target) -> Sample {
    let pid = target.pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"));
    let pooled_sockets = sockets_to(pid, &target.pooled_ports);
    let (mut fds, mut pooled) = (0.0, 0.0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .flatten()
    {
        // `socket:[<inode>]`; a descriptor closed meanwhile reads as nothing.
        let link = std::fs::read_link(entry.path()).unwrap_or_default();
        let inode = link
            .to_str()
            .and_then(|l| l.strip_prefix("socket:["))
            .and_then(|l| l.strip_suffix(']'));
        if inode.is_some_and(|inode| pooled_sockets.contains(inode)) {
            pooled += 1.0;
        } else {
            fds += 1.0;
        }
    }
    Sample {
        rss_kib,
        fds,
        pooled,
    }
}

/// The inodes of the process's TCP sockets connected to one of `ports` on loopback, from
/// `/proc/<pid>/net/tcp`: `sl local rem st … inode`, addresses as `HEXIP:HEXPORT`.
fn sockets_to(pid: u32, ports: &[u16]) -> BTreeSet<String> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields.get(2)?.rsplit(':').next()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            ports
                .contains(&port)
                .then(|| fields.get(9).map(|inode| (*inode).to_owned()))
                .flatten()
        })
        .collect()
}

/// One sample now, in words: after the run, whether what grew during it went back down.
pub fn describe_now(target: &Target) -> String {
    let now = sample(target);
    format!(
        "{:.1} MiB, {} fds + {} pooled client connections",
        now.rss_kib / 1024.0,
        now.fds,
        now.pooled
    )
}

pub struct Samples(Vec<Sample>);

impl Samples {
    /// The means of the first and the last third of the samples, of the figure `of` picks.
    fn thirds(&self, of: impl Fn(&Sample) -> f64) -> (f64, f64) {
        let third = (self.0.len() / 3).max(1);
        let mean =
            |samples: &[Sample]| samples.iter().map(&of).sum::<f64>() / samples.len().max(1) as f64;
        (
            mean(&self.0[..third.min(self.0.len())]),
            mean(&self.0[self.0.len().saturating_sub(third)..]),
        )
    }

    pub fn describe_rss(&self) -> String {
        let (first, last) = self.thirds(|s| s.rss_kib / 1024.0);
        format!(
            "{first:.1} / {last:.1} ({:+.1} %, {} samples)",
            (last / first - 1.0) * 100.0,
            self.0.len()
        )
    }

    pub fn describe_fds(&self) -> String {
        let (first, last) = self.thirds(|s| s.fds);
        let (pooled_first, pooled_last) = self.thirds(|s| s.pooled);
        format!(
            "{first:.1} / {last:.1}, and {pooled_first:.1} / {pooled_last:.1} pooled client connections"
        )
    }

    /// Growth beyond the bounds. A fall is no leak (the allocator gave memory back), so only
    /// growth counts.
    pub fn problems(&self) -> Vec<String> {
        if self.0.len() < 6 {
            return vec![format!(
                "only {} samples of memory and descriptors: the run is too short to compare thirds",
                self.0.len()
            )];
        }
        let bounds = [
            ("resident memory (KiB)", RSS_GROWTH, 0.0),
            (
                "open descriptors but pooled client connections",
                FD_GROWTH,
                FD_SLACK,
            ),
            ("pooled client connections", POOLED_GROWTH, POOLED_SLACK),
        ];
        let figures: [fn(&Sample) -> f64; 3] = [|s| s.rss_kib, |s| s.fds, |s| s.pooled];
        bounds
            .iter()
            .zip(figures)
            .filter_map(|((what, growth, slack), of)| {
                let (first, last) = self.thirds(of);
                (last > first * (1.0 + growth) + slack).then(|| {
                    format!(
                        "{what} grew from {first:.1} to {last:.1} (mean of the first and last third), more than {:.0} % + {slack}",
                        growth * 100.0
                    )
                })
            })
            .collect()
    }
}
