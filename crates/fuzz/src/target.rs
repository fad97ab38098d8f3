//! Running one target: its kept regression cases first, then generated cases for a number of
//! cases or a time budget, and a failure shrunk, kept and reported.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::case::Case;

/// Seconds each target runs for, fresh seeds batch after batch, instead of the default
/// thousand cases from a fixed seed. Set by `cargo xtask fuzz --seconds N`.
pub const SECONDS_VAR: &str = "PLUGBOARD_FUZZ_SECONDS";

/// Cases per batch: the whole run without a time budget. A thousand keep every target well
/// under a second in a debug build, so `cargo test --workspace` runs them all.
const DEFAULT_CASES: u32 = 1000;

/// One fuzz target: its name, and where its regression cases are kept.
pub struct Target {
    name: &'static str,
    regressions: PathBuf,
}

impl Target {
    /// The target `name` of the crate at `manifest_dir` (pass `env!("CARGO_MANIFEST_DIR")`):
    /// its regression cases live in `<manifest_dir>/fuzz-regressions/<name>/`.
    pub fn new(manifest_dir: &str, name: &'static str) -> Self {
        Target {
            name,
            regressions: Path::new(manifest_dir).join("fuzz-regressions").join(name),
        }
    }

    /// Replays the kept cases, then runs generated ones through `check`, which must not panic
    /// and returns `Err` with what is wrong when a result is malformed. Panics, naming the
    /// input and the file it is now kept in, on the first failure.
    pub fn run<S>(self, inputs: S, check: impl Fn(&S::Value) -> Result<(), String>)
    where
        S: Strategy,
        S::Value: Case,
    {
        let started = Instant::now();
        let kept = self.replay(&check);
        let budget = budget();
        let ran = AtomicU64::new(0);
        let mut batch = 0u64;
        loop {
            let config = Config {
                cases: DEFAULT_CASES,
                failure_persistence: None,
                ..Config::default()
            };
            let rng = match budget {
                None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
                Some(_) => TestRng::from_seed(RngAlgorithm::ChaCha, &fresh_seed(self.name, batch)),
            };
            let mut runner = TestRunner::new_with_rng(config, rng);
            let outcome = runner.run(&inputs, |input| {
                ran.fetch_add(1, Ordering::Relaxed);
                check(&input).map_err(TestCaseError::fail)
            });
            match outcome {
                Ok(()) => {}
                Err(TestError::Fail(reason, input)) => self.fail(&reason.to_string(), &input),
                Err(TestError::Abort(reason)) => {
                    panic!("fuzz {}: the run was aborted: {reason}", self.name)
                }
            }
            batch += 1;
            if budget.is_none_or(|budget| started.elapsed() >= budget) {
                break;
            }
        }
        // `cargo xtask fuzz` reads this line (with `--nocapture`).
        eprintln!(
            "fuzz {}: {} cases and {kept} kept in {:.1}s, no failure",
            self.name,
            ran.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64()
        );
    }

    /// Runs every kept case; returns how many there are.
    fn replay<T: Case>(&self, check: &impl Fn(&T) -> Result<(), String>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.regressions) else {
            return 0;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        files.sort();
        for file in &files {
            let bytes = std::fs::read(file).unwrap_or_else(|e| {
                panic!("fuzz {}: cannot read {}: {e}", self.name, file.display())
            });
            let input = T::from_bytes(&bytes);
            let failure = match catch_unwind(AssertUnwindSafe(|| check(&input))) {
                Ok(Ok(())) => continue,
                Ok(Err(problem)) => problem,
                Err(panic) => panic_message(panic.as_ref()),
            };
            panic!(
                "fuzz {}: the kept case {} fails again: {failure}\ninput: {input:?}",
                self.name,
                file.display()
            );
        }
        files.len()
    }

    /// Keeps the (shrunk) failing input and fails the test.
    fn fail<T: Case>(&self, reason: &str, input: &T) -> ! {
        let bytes = input.to_bytes();
        let file = self.regressions.join(format!("{:016x}", fnv1a(&bytes)));
        let kept = std::fs::create_dir_all(&self.regressions)
            .and_then(|()| std::fs::write(&file, &bytes))
            .map_or_else(
                |e| format!("could not be kept in {}: {e}", file.display()),
                |()| {
                    format!(
                        "kept in {}; commit it: it is replayed first on every run",
                        file.display()
                    )
                },
            );
        panic!(
            "fuzz {}: {reason}\nminimal input: {input:?}\nThe input {kept}",
            self.name
        );
    }
}

/// The time budget `PLUGBOARD_FUZZ_SECONDS` sets, if any.
fn budget() -> Option<Duration> {
    let value = std::env::var(SECONDS_VAR).ok()?;
    let seconds: f64 = value
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .unwrap_or_else(|| panic!("{SECONDS_VAR} is `{value}`, not a number of seconds"));
    Some(Duration::from_secs_f64(seconds))
}

/// A seed no earlier run used: the time, the target and the batch.
fn fresh_seed(name: &str, batch: u64) -> [u8; 32] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut seed = [0; 32];
    seed[..16].copy_from_slice(&nanos.to_le_bytes());
    seed[16..24].copy_from_slice(&fnv1a(name.as_bytes()).to_le_bytes());
    seed[24..].copy_from_slice(&batch.to_le_bytes());
    seed
}

/// FNV-1a: names a kept case by its bytes, the same on every machine and Rust version.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3)
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs;

    /// A failing input is shrunk, kept as a file, and replayed first by the next run, which
    /// fails on it before generating anything.
    #[test]
    fn a_failing_input_is_kept_and_replayed_first() {
        let dir = std::env::temp_dir().join(format!("plugboard-fuzz-{}", std::process::id()));
        let manifest = dir.to_str().unwrap();
        let buggy = |input: &String| {
            if input.contains("bug") {
                Err(format!("{} bytes with a bug", input.len()))
            } else {
                Ok(())
            }
        };
        let strategy = || inputs::text(inputs::mutated(&["a bug", "fine"], &[]));

        let first = catch_unwind(|| Target::new(manifest, "t").run(strategy(), buggy));
        let message = panic_message(first.unwrap_err().as_ref());
        assert!(
            message.contains("fuzz t: ") && message.contains("with a bug"),
            "{message}"
        );
        let kept: Vec<PathBuf> = std::fs::read_dir(dir.join("fuzz-regressions/t"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(
            message.contains(&kept[0].display().to_string()),
            "{message}"
        );
        assert!(std::fs::read_to_string(&kept[0]).unwrap().contains("bug"));

        // Fixed: the kept case passes.
        Target::new(manifest, "t").run(strategy(), |_| Ok(()));
        // Broken again: the kept case is what fails, before any generated one.
        let again = catch_unwind(|| {
            Target::new(manifest, "t").run(inputs::text(inputs::mutated(&["x"], &[])), buggy)
        });
        let message = panic_message(again.unwrap_err().as_ref());
        assert!(message.contains("the kept case"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_panic_is_a_failure_naming_its_message() {
        let dir = std::env::temp_dir().join(format!("plugboard-fuzz-panic-{}", std::process::id()));
        let outcome = catch_unwind(|| {
            Target::new(dir.to_str().unwrap(), "p").run(inputs::bytes(8), |input: &Vec<u8>| {
                assert!(input.len() < 3, "too long");
                Ok(())
            })
        });
        let message = panic_message(outcome.unwrap_err().as_ref());
        assert!(message.contains("too long"), "{message}");
        // Shrunk to the shortest input that fails.
        assert!(message.contains("minimal input: [0, 0, 0]"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
