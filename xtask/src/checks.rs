//! `cargo xtask check-providers` and `cargo xtask ci`: checks that run as tests in CI, runnable
//! on their own.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::{cargo, codegen, run};

/// Every provider's conformance in one `cargo test`: the workspace-wide spec checks of
/// `plugboard-conformance` and each provider crate's own `tests/conformance.rs`, all run
/// (`--no-fail-fast`) so every problem is reported at once.
pub fn check_providers(root: &Path) -> Result<(), String> {
    let mut command = Command::new(cargo());
    command
        .current_dir(root)
        .args(["test", "--no-fail-fast", "-p", "plugboard-conformance"]);
    for krate in codegen::provider_crates(root)? {
        command.args(["-p", &krate.package]);
    }
    command.args(["--test", "conformance"]);
    run(&mut command)
        .map_err(|e| format!("{e}\nthe providers do not conform; see the test output above"))
}

/// What `.ci/run` does, as steps: the environment it exports and the commands it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiSteps {
    pub env: Vec<(String, String)>,
    /// Each command with its program first: `cargo`, or `bash` running a helper script of
    /// `.ci/`.
    pub commands: Vec<Vec<String>>,
}

/// Reads `.ci/run`, which stays the source of truth. A line this reader does not understand is
/// an error rather than skipped, so `cargo xtask ci` never silently runs less than CI.
pub fn ci_steps(script: &str) -> Result<CiSteps, String> {
    let mut steps = CiSteps {
        env: Vec::new(),
        commands: Vec::new(),
    };
    for (n, line) in script.lines().enumerate() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line == "set -euo pipefail"
            || line == r#"cd "$(dirname "$0")/..""#
        {
            continue;
        }
        if let Some((name, value)) = line.strip_prefix("export ").and_then(|a| a.split_once('=')) {
            steps.env.push((name.to_owned(), value.to_owned()));
        } else if line.starts_with("cargo ") || line.starts_with("bash .ci/") {
            steps
                .commands
                .push(line.split_whitespace().map(str::to_owned).collect());
        } else {
            return Err(format!(
                ".ci/run line {}: `{line}` is not an `export`, a `cargo` command or a \
                 `bash .ci/…` script; teach xtask/src/checks.rs to run it",
                n + 1
            ));
        }
    }
    Ok(steps)
}

/// Runs `.ci/run`'s steps in order, stopping at the first that fails and naming it.
pub fn ci(root: &Path) -> Result<(), String> {
    let path = root.join(".ci/run");
    let script = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let steps = ci_steps(&script)?;
    for step in &steps.commands {
        let started = Instant::now();
        let line = step.join(" ");
        println!("==> {line}");
        let program = match step[0].as_str() {
            "cargo" => cargo(),
            other => other.to_owned(),
        };
        let mut command = Command::new(program);
        command
            .current_dir(root)
            .args(&step[1..])
            .envs(steps.env.iter().cloned());
        run(&mut command).map_err(|e| format!("CI step `{line}` failed: {e}"))?;
        println!("==> ok in {:.0?}", started.elapsed());
    }
    println!("CI passed: {} steps", steps.commands.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo xtask ci` runs exactly what `.ci/run` runs, and the README's test command is one
    /// of those steps.
    #[test]
    fn the_ci_script_is_read_step_by_step() {
        let root = crate::workspace_root();
        let steps = ci_steps(&std::fs::read_to_string(root.join(".ci/run")).unwrap()).unwrap();
        let commands: Vec<String> = steps.commands.iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            commands,
            [
                "bash .ci/postgres-ready",
                "bash .ci/chromium-ready",
                "cargo fmt --all -- --check",
                "cargo clippy --workspace --all-targets -- -D warnings",
                "bash .ci/cargo-deny",
                "cargo doc --workspace --no-deps",
                "cargo test --workspace",
            ]
        );
        assert!(
            steps
                .env
                .contains(&("INSTA_UPDATE".to_owned(), "no".to_owned()))
        );
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let test_command = readme
            .lines()
            .find_map(|l| {
                l.strip_prefix("cargo test").map(|rest| {
                    format!(
                        "cargo test{}",
                        rest.split('#').next().unwrap_or_default().trim_end()
                    )
                })
            })
            .expect("the README names its test command");
        assert!(commands.contains(&test_command), "{test_command}");
    }

    #[test]
    fn the_workspace_is_found_from_any_directory_inside_it() {
        let root = crate::workspace_root();
        assert_eq!(
            crate::find_workspace(&root.join("xtask/src")).unwrap(),
            root
        );
        assert_eq!(crate::find_workspace(&root).unwrap(), root);
    }

    #[test]
    fn a_line_it_cannot_run_is_refused() {
        let error = ci_steps("set -euo pipefail\nexport A=b\ncargo test\nmake all\n").unwrap_err();
        assert_eq!(
            error,
            ".ci/run line 4: `make all` is not an `export`, a `cargo` command or a `bash .ci/…` script; teach xtask/src/checks.rs to run it"
        );
    }
}
