//! Tidy checks: rules of `ARCHITECTURE.md` that the compiler does not enforce, checked on the
//! workspace's own files so that `cargo test` catches a breach.

use std::path::{Path, PathBuf};

/// The crates a provider must never depend on: provider code does its I/O through a `Context`,
/// so that it stays pure logic the host can load as a plugin and drive with its own runtime.
const FORBIDDEN_IN_PROVIDERS: [&str; 2] = ["tokio", "reqwest"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_owned()
}

/// Every `providers/*/Cargo.toml`, with its text.
fn provider_manifests() -> Vec<(PathBuf, String)> {
    let providers = workspace_root().join("providers");
    let mut manifests: Vec<(PathBuf, String)> = std::fs::read_dir(&providers)
        .expect("providers/")
        .filter_map(|entry| {
            let path = entry.expect("a directory entry").path().join("Cargo.toml");
            let text = std::fs::read_to_string(&path).ok()?;
            Some((path, text))
        })
        .collect();
    manifests.sort();
    manifests
}

/// The real crate names in the dependency tables of a manifest: `[dependencies]`,
/// `[dev-dependencies]` and `[build-dependencies]`, also under `[target.…]`, with renames
/// (`name = { package = "…" }`) resolved. Each comes with the table it is in.
fn dependencies(manifest: &toml::Table) -> Vec<(String, String)> {
    const TABLES: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];
    let mut found = Vec::new();
    let mut scan = |prefix: &str, table: &toml::Table| {
        for kind in TABLES {
            let Some(deps) = table.get(kind).and_then(toml::Value::as_table) else {
                continue;
            };
            for (name, spec) in deps {
                let package = spec
                    .get("package")
                    .and_then(toml::Value::as_str)
                    .unwrap_or(name);
                found.push((format!("{prefix}{kind}"), package.to_owned()));
            }
        }
    };
    scan("", manifest);
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for (target, table) in targets {
            if let Some(table) = table.as_table() {
                scan(&format!("target.{target}."), table);
            }
        }
    }
    found
}

/// The breaches of the rule in one manifest, each naming the crate, the table and the crate
/// it must not depend on.
fn forbidden_dependencies(path: &Path, text: &str) -> Vec<String> {
    let manifest: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()));
    let name = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("{} has no package name", path.display()));
    dependencies(&manifest)
        .into_iter()
        .filter(|(_, dependency)| FORBIDDEN_IN_PROVIDERS.contains(&dependency.as_str()))
        .map(|(table, dependency)| {
            format!(
                "provider crate `{name}` ({}) depends on `{dependency}` in [{table}]; providers \
                 reach the world only through their Context",
                path.display()
            )
        })
        .collect()
}

#[test]
fn no_provider_crate_depends_on_tokio_or_reqwest() {
    let manifests = provider_manifests();
    assert!(!manifests.is_empty(), "no provider crates found");
    let breaches: Vec<String> = manifests
        .iter()
        .flat_map(|(path, text)| forbidden_dependencies(path, text))
        .collect();
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

/// The check itself finds every way of writing the dependency.
#[test]
fn the_check_finds_direct_renamed_dev_and_target_dependencies() {
    let manifest = r#"
[package]
name = "plugboard-acme"

[dependencies]
plugboard-core.workspace = true
tokio.workspace = true

[dev-dependencies]
http = { package = "reqwest", version = "0.12" }

[target.'cfg(unix)'.build-dependencies]
tokio = "1"
"#;
    let breaches = forbidden_dependencies(Path::new("providers/acme/Cargo.toml"), manifest);
    assert_eq!(
        breaches,
        [
            "provider crate `plugboard-acme` (providers/acme/Cargo.toml) depends on `tokio` in \
             [dependencies]; providers reach the world only through their Context",
            "provider crate `plugboard-acme` (providers/acme/Cargo.toml) depends on `reqwest` in \
             [dev-dependencies]; providers reach the world only through their Context",
            "provider crate `plugboard-acme` (providers/acme/Cargo.toml) depends on `tokio` in \
             [target.cfg(unix).build-dependencies]; providers reach the world only through \
             their Context",
        ]
    );
}
