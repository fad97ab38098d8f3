//! Project chores: `cargo xtask <task>`. Only the standard library, so xtask builds in seconds;
//! the heavy lifting runs in the workspace's own crates, built in release mode.
//!
//! Tasks:
//! - `bench proxy [--seconds N]`: requests/s and p50/p99 latency of `GET /v1.0/me` sent
//!   straight to the emulator and through Plugboard's proxy, at concurrency 1 and 16. The
//!   results belong in `BENCHMARKS.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["bench", "proxy", rest @ ..] => bench_proxy(rest),
        _ => Err("usage: cargo xtask bench proxy [--seconds N]".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn bench_proxy(extra: &[&str]) -> Result<(), String> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(&cargo).current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "plugboard",
        "--bin",
        "plugboard",
        "--example",
        "bench_proxy",
    ]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let release = target.join("release");
    run(Command::new(release.join("examples").join("bench_proxy"))
        .arg("--plugboard")
        .arg(release.join("plugboard"))
        .args(extra))
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {status}"))
    }
}
