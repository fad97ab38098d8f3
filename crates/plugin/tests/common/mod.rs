//! The plugins the tests load, built once per test binary.
//!
//! Every crate under `crates/plugin/test-plugins/` (the plugins, and `skeleton`, the provider
//! most of them share) plus the Microsoft People provider with its `plugin` feature, in one
//! `cargo build` into a target directory of their own: the `cargo test` that runs us may hold
//! the lock of the main one, and one invocation builds the shared dependencies once.
//!
//! The host's end-to-end tests include this file too (`#[path]`), so both test suites run the
//! same command into the same directory (`CARGO_TARGET_TMPDIR` is the workspace's): whichever
//! runs second finds everything built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The dynamic library of a test plugin (`wrong-abi`) or a provider (`microsoft-people`),
/// built if need be.
pub fn plugin(name: &str) -> PathBuf {
    let file = if name == "microsoft-people" {
        "plugboard_microsoft_people".to_owned()
    } else {
        format!("plugboard_test_plugin_{}", name.replace('-', "_"))
    };
    let path = plugins_dir().join(format!(
        "{}{file}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// Where the built plugins are.
pub fn plugins_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build)
}

fn build() -> PathBuf {
    // The including crate's manifest lies below the workspace root, the directory of the lock
    // file that `--locked` holds the build to.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .expect("the tests run inside the workspace");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-tests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--locked", "--quiet", "--target-dir"])
        .arg(&target_dir)
        .args([
            "--package",
            "plugboard-microsoft-people",
            "--features",
            "plugboard-microsoft-people/plugin",
        ])
        .env_remove("CARGO_TARGET_DIR");
    let test_plugins =
        std::fs::read_dir(root.join("crates/plugin/test-plugins")).expect("test-plugins/");
    for entry in test_plugins {
        let name = entry.expect("a test plugin").file_name();
        let name = name.to_str().expect("test plugin names are UTF-8");
        command.args(["--package", &format!("plugboard-test-plugin-{name}")]);
    }
    // The plugins are built like the tests, so that timings taken with `--release` compare
    // like with like.
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        command.arg("--release");
        "release"
    };
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building the test plugins failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join(profile)
}
