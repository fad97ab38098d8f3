//! The `xtask` binary run as people run it, in a workspace of its own: `ci` runs a fixture's
//! `.ci/run` (never the real test suite, which would run this test again), `plugins` builds a
//! fixture's provider into its `target/plugins/`, and `check-providers` passes on the real
//! workspace, and every task answers `--help`. (`check-providers` failing on blanks, and the
//! scaffold's crates building and passing their tests, are run by the guide's walk in
//! `crates/host/tests/e2e/guide.rs`, on its copy of the workspace.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository this test belongs to.
fn real_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A fresh directory under the real target directory, unique to `name`.
fn scratch(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| real_workspace().join("target"), PathBuf::from);
    let dir = target.join("tmp/xtask-commands").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A workspace with one dependency-free provider crate that has a `plugin` feature, its lock
/// file, and a `.ci/run` made of `ci_steps`.
fn fixture(name: &str, ci_steps: &str) -> PathBuf {
    let root = scratch(name);
    write(
        &root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"providers/*\"]\nresolver = \"2\"\n",
    );
    write(
        &root.join("providers/tiny/Cargo.toml"),
        "[package]\nname = \"plugboard-tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [lib]\ncrate-type = [\"rlib\", \"cdylib\"]\n\n[features]\nplugin = []\n",
    );
    write(
        &root.join("providers/tiny/src/lib.rs"),
        "/// The fixture's provider.\npub fn tiny() -> u32 {\n    1\n}\n",
    );
    write(
        &root.join(".ci/run"),
        &format!(
            "#!/usr/bin/env bash\nset -euo pipefail\ncd \"$(dirname \"$0\")/..\"\n\n{ci_steps}"
        ),
    );
    let lock = cargo(&root)
        .args(["generate-lockfile", "--offline"])
        .output()
        .unwrap();
    assert!(lock.status.success(), "{}", text(&lock));
    root
}

/// `cargo` in `dir`, with the outer test's target directory out of the way.
fn cargo(dir: &Path) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TERM_COLOR", "never");
    command
}

/// `cargo xtask <args>` in `dir`: the built binary, as the alias runs it.
fn xtask(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(dir)
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `ci` runs the steps of the workspace's own `.ci/run` in order, with its exports, from the
/// workspace root whatever the current directory inside it.
#[test]
fn ci_runs_the_workspaces_ci_script() {
    let root = fixture(
        "ci-ok",
        "export CARGO_TARGET_DIR=ci-target\n\ncargo --version\ncargo build --offline\n",
    );
    let output = xtask(&root.join("providers/tiny/src"), &["ci"]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("==> cargo --version\n"), "{printed}");
    assert!(printed.contains("==> cargo build --offline\n"), "{printed}");
    assert!(printed.contains("CI passed: 2 steps"), "{printed}");
    assert!(
        root.join("ci-target/debug/libplugboard_tiny.rlib").exists(),
        "the build ran in the workspace with the script's CARGO_TARGET_DIR"
    );
}

/// A failing step stops CI, naming it; later steps do not run.
#[test]
fn ci_stops_at_the_first_failing_step_and_names_it() {
    let root = fixture(
        "ci-failing",
        "export CARGO_TARGET_DIR=ci-target\ncargo no-such-command\ncargo build --offline\n",
    );
    let output = xtask(&root, &["ci"]);
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains("CI step `cargo no-such-command` failed"),
        "{printed}"
    );
    assert!(!printed.contains("==> cargo build"), "{printed}");
    assert!(!root.join("ci-target/debug").exists());
}

/// A `.ci/run` line xtask cannot run is refused before any step runs.
#[test]
fn ci_refuses_a_script_it_cannot_follow() {
    let root = fixture("ci-unknown", "cargo --version\nmake all\n");
    let output = xtask(&root, &["ci"]);
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains(".ci/run line 6: `make all` is not an `export`, a `cargo` command"),
        "{printed}"
    );
    assert!(!printed.contains("==> cargo --version"), "{printed}");
}

/// `plugins` builds the current workspace's plugin crates into its `target/plugins/`.
#[test]
fn plugins_builds_the_current_workspaces_providers() {
    let root = fixture("plugins", "");
    let output = xtask(&root, &["plugins"]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    let library = format!(
        "{}plugboard_tiny{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let built = root.join("target/plugins").join(&library);
    assert!(built.is_file(), "{printed}");
    assert!(
        printed.contains(&format!("plugboard-tiny -> {}", built.display())),
        "{printed}"
    );
}

/// `check-providers` passes on the repository as it is: every spec and provider conforms.
#[test]
fn check_providers_passes_on_the_real_workspace() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(real_workspace().join("providers"))
        .arg("check-providers")
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .unwrap();
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("test every_provider_of_the_workspace_conforms ... ok"),
        "{printed}"
    );
}

/// `--help` after any task prints that task's help with an example and succeeds, and changes
/// nothing: `new-provider --help` scaffolds no provider called `--help`.
#[test]
fn every_task_answers_help() {
    let root = scratch("help");
    for task in [
        &["new-provider", "--help"][..],
        &["new-provider", "acme", "-h"],
        &["bench", "sync", "--help"],
        &["codegen", "--help"],
    ] {
        let output = xtask(&root, task);
        let printed = text(&output);
        assert!(output.status.success(), "{task:?}: {printed}");
        assert!(
            printed.contains(&format!(
                "Usage: cargo xtask {}",
                task[..task.len() - 1].join(" ").trim_end_matches(" acme")
            )) && printed.contains("Examples:"),
            "{task:?}: {printed}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "help wrote files"
    );
    let overview = xtask(&root, &["--help"]);
    assert!(
        text(&overview).contains("new-provider"),
        "{}",
        text(&overview)
    );
    let unknown = xtask(&root, &["frobnicate"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).starts_with("unknown task `frobnicate`"),
        "{}",
        text(&unknown)
    );
}
