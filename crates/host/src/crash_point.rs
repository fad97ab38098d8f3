//! Crash points: a test hook that kills the process (SIGKILL, no shutdown of any kind) at a
//! named point of a write, so end-to-end tests can show what a crash there leaves behind and
//! that the next process repairs it. Nothing else uses it.
//!
//! `PLUGBOARD_CRASH_AT=<point>` kills the process the first time it reaches the point;
//! `<point>:<n>` the `n`th time (from 1), e.g. `sync.mid_batch:2` for a crash in the second
//! page's write, after the first page was saved. The points:
//!
//! - `refresh.after_answer`: the provider answered a refresh with new tokens, nothing of them
//!   is stored (`refresh.rs`). A provider that revokes a used refresh token leaves the
//!   connection with a dead one; the refresh lease stays held until it expires.
//! - `refresh.after_store`: the new tokens are stored, the refresh lease is not released.
//! - `sync.mid_batch`: inside a batch of records' write transaction, every statement sent,
//!   before its commit (the store's `save_records`).
//! - `sync.before_checkpoint`: a batch committed, the checkpoint after it not written
//!   (`sync/context.rs`).
//! - `sync.in_end_crawl`: inside `end_crawl`, the unseen records marked deleted and the crawl
//!   not yet ended: before the commit of SQLite's one transaction; on PostgreSQL, which marks
//!   them a thousand per transaction, after the last of those and before the one that ends the
//!   crawl.
//!
//! The store's points reach here through the hook [`install`] gives it. Unset, as in
//! production, a point costs a look at an environment variable read once per process.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the point to stop at.
pub const VARIABLE: &str = "PLUGBOARD_CRASH_AT";

/// Every crash point, as `PLUGBOARD_CRASH_AT` names them.
pub const POINTS: &[&str] = &[
    "refresh.after_answer",
    "refresh.after_store",
    "sync.mid_batch",
    "sync.before_checkpoint",
    "sync.in_end_crawl",
];

/// The point this process stops at, and at which of its hits.
struct Target {
    point: &'static str,
    hit: u64,
}

static TARGET: LazyLock<Option<Target>> = LazyLock::new(|| {
    let value = std::env::var(VARIABLE).ok()?;
    match parse(&value) {
        Ok(target) => Some(target),
        Err(problem) => {
            tracing::error!("{VARIABLE} is ignored: {problem}");
            None
        }
    }
});

/// Times the target point was reached.
static HITS: AtomicU64 = AtomicU64::new(0);

/// Reads `<point>` or `<point>:<n>`.
fn parse(value: &str) -> Result<Target, String> {
    let (name, hit) = match value.split_once(':') {
        None => (value, 1),
        Some((name, n)) => match n.parse::<u64>() {
            Ok(n) if n > 0 => (name, n),
            _ => {
                return Err(format!(
                    "`{value}`: after the `:` comes the hit to stop at, a whole number from 1"
                ));
            }
        },
    };
    let point = POINTS.iter().find(|point| **point == name).ok_or_else(|| {
        format!(
            "`{name}` is not a crash point; the points are {}",
            POINTS.join(", ")
        )
    })?;
    Ok(Target { point, hit })
}

/// Lets the store's writes reach their crash points, and reports a `PLUGBOARD_CRASH_AT` that
/// names none. Called once the logs are set up, before the store is written.
pub fn install() {
    plugboard_store::crash_hook::install_crash_hook(reached);
    if let Some(target) = &*TARGET {
        tracing::warn!(
            point = target.point,
            hit = target.hit,
            "{VARIABLE} is set: this process kills itself at that crash point (a test hook)"
        );
    }
}

/// The process reached the crash point `point`: killed here if `PLUGBOARD_CRASH_AT` names it
/// (and this is the hit it names).
pub fn reached(point: &'static str) {
    debug_assert!(POINTS.contains(&point), "unknown crash point {point}");
    let Some(target) = &*TARGET else {
        return;
    };
    if target.point != point || HITS.fetch_add(1, Ordering::SeqCst) + 1 != target.hit {
        return;
    }
    eprintln!("crash point {point} reached: killing the process");
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // SIGKILL cannot be caught; were it refused, stop without cleanup all the same.
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_hits_are_read_and_mistakes_named() {
        let target = parse("sync.mid_batch:2").unwrap();
        assert_eq!((target.point, target.hit), ("sync.mid_batch", 2));
        let target = parse("refresh.after_answer").unwrap();
        assert_eq!((target.point, target.hit), ("refresh.after_answer", 1));
        let unknown = parse("sync.somewhere").err().unwrap();
        assert!(
            unknown.contains("`sync.somewhere` is not a crash point"),
            "{unknown}"
        );
        assert!(unknown.contains("sync.in_end_crawl"), "{unknown}");
        for bad in ["sync.mid_batch:0", "sync.mid_batch:x", "sync.mid_batch:"] {
            let problem = parse(bad).err().unwrap();
            assert!(
                problem.contains("a whole number from 1"),
                "{bad}: {problem}"
            );
        }
    }
}
