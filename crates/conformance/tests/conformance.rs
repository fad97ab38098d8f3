//! The workspace's providers conform: every spec file (`providers/*/provider.toml` and
//! `providers/specs/*.toml`) checks clean, and every Rust provider crate runs the harness in a
//! `tests/conformance.rs` of its own (that test runs its syncs and actions; this one makes sure
//! it exists). `cargo xtask check-providers` runs this test with those.

use std::path::{Path, PathBuf};

use plugboard_conformance::{BLANK, check_spec};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Files of `dir` (sorted) with the given extension; none when the directory is missing.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_provider_of_the_workspace_conforms() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let mut checked = 0;
    for dir in files(&root.join("providers")) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "specs" {
            for file in files(&dir) {
                if file.extension().is_some_and(|e| e == "toml") {
                    let source = format!(
                        "providers/specs/{}",
                        file.file_name().unwrap().to_string_lossy()
                    );
                    let text = std::fs::read_to_string(&file).unwrap();
                    problems.extend(check_spec(&source, &text, true));
                    checked += 1;
                }
            }
            continue;
        }
        if !dir.join("Cargo.toml").is_file() {
            continue;
        }
        let source = format!("providers/{name}/provider.toml");
        match std::fs::read_to_string(dir.join("provider.toml")) {
            Ok(text) => problems.extend(check_spec(&source, &text, false)),
            Err(e) => problems.push(format!("{source}: a provider crate needs its spec: {e}")),
        }
        problems.extend(source_blanks(
            &dir.join("src"),
            &format!("providers/{name}/src"),
        ));
        if !dir.join("tests/conformance.rs").is_file() {
            problems.push(format!(
                "providers/{name}: no tests/conformance.rs running the conformance harness on \
                 its syncs and actions"
            ));
        }
        checked += 1;
    }
    assert!(
        checked >= 5,
        "only {checked} providers found under {}",
        root.display()
    );
    assert!(
        problems.is_empty(),
        "providers do not conform:\n  - {}",
        problems.join("\n  - ")
    );
}

/// A problem per line of a provider's Rust sources that still holds a scaffold blank (the
/// list path the sync reads, say), named by file and line.
fn source_blanks(dir: &Path, shown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for path in files(dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            problems.extend(source_blanks(&path, &format!("{shown}/{name}")));
        } else if name.ends_with(".rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.contains(BLANK) {
                    problems.push(format!(
                        "{shown}/{name}:{}: `{}` is a blank left by the scaffold; fill it in",
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    problems
}

/// Provider crates use the harness in their tests, which must stay free of tokio and reqwest
/// (tests/tidy.rs checks the provider crates' own tables; this checks what they pull in here).
#[test]
fn the_harness_needs_no_runtime() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for forbidden in ["tokio", "reqwest", "features"] {
        assert!(
            !manifest
                .lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains(forbidden)),
            "crates/conformance/Cargo.toml mentions `{forbidden}`"
        );
    }
}
