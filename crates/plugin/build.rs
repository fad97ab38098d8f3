//! Records which compiler builds this crate, for the plugin declaration.
//!
//! Rust has no stable ABI, so a plugin and the host must come from the same compiler, for the
//! same target and with the same panic strategy (a plugin built with `panic = "abort"` could not
//! turn a panic into an error). Both embed this string through `plugboard-plugin`, and the
//! loader refuses a plugin whose string differs from its own.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(&rustc)
        .arg("-vV")
        .output()
        .unwrap_or_else(|e| panic!("`{rustc} -vV` could not run: {e}"));
    assert!(
        output.status.success(),
        "`{rustc} -vV` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let version = String::from_utf8(output.stdout).expect("`rustc -vV` prints UTF-8");
    // The first line names release, commit and date: `rustc 1.95.0 (59807616e 2026-04-14)`.
    let release = version.lines().next().unwrap_or_default().trim();
    let target = env::var("TARGET").expect("cargo sets TARGET for build scripts");
    let panic = env::var("CARGO_CFG_PANIC").unwrap_or_else(|_| "unwind".to_owned());
    println!("cargo:rustc-env=PLUGBOARD_PLUGIN_COMPILER={release} for {target}, panic={panic}");
}
