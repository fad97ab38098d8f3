//! Project chores: `cargo xtask <task>`. Only the standard library, so xtask builds in seconds;
//! the heavy lifting runs in the workspace's own crates, built in release mode.
//!
//! [`TASKS`] lists every task with its options and an example; `cargo xtask --help` and
//! `cargo xtask <task> --help` print it ([`help`]). The benchmarks' results belong in
//! `BENCHMARKS.md`.
//!
//! The tasks that change, check or build the sources (`plugins`, `new-provider`, `codegen`,
//! `check-providers`, `fuzz`, `ci`) act on the workspace around the current directory, so
//! `cargo xtask new-provider` in a copy of the repository changes that copy; the benchmarks
//! build the workspace xtask was built from.

mod checks;
mod codegen;
mod fuzz;
mod help;
mod new_provider;
mod soak;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use help::{Opt, Task};

const STORE: Opt = Opt {
    flag: "--store sqlite|postgres",
    help: "the store backend (default sqlite; postgres uses 127.0.0.1:5432, database test)",
};

/// Every task, in the order `cargo xtask --help` lists them.
pub const TASKS: &[Task] = &[
    Task {
        name: "bench proxy",
        summary: "the proxy's throughput and latency against bare floors",
        about: "Requests/s and p50/p99 latency of two Graph calls sent straight to the emulator,\n\
                through a bare TCP relay and a bare hyper reverse proxy (the floors) and through\n\
                Plugboard's proxy, at concurrency 1 and 16. Builds in release mode first.",
        args: "",
        options: &[
            Opt {
                flag: "--seconds N",
                help: "how long each measurement runs (default 3)",
            },
            Opt {
                flag: "--rounds N",
                help: "how many times each measurement runs (default 3)",
            },
        ],
        examples: &["cargo xtask bench proxy --seconds 10 --rounds 2"],
    },
    Task {
        name: "bench sync",
        summary: "sync throughput, CPU and memory against a bare pipeline",
        about: "People synced from the emulator into the store by a bare fetch-parse-insert pipeline\n\
                (the floor), by Plugboard's initial sync and by a sync with nothing changed, with\n\
                records/s, Plugboard's CPU time and peak memory.",
        args: "",
        options: &[
            Opt {
                flag: "--sizes N,N",
                help: "how many people, one measurement each (default 10000,100000)",
            },
            Opt {
                flag: "--rounds N",
                help: "how many times each measurement runs (default 3)",
            },
            STORE,
        ],
        examples: &["cargo xtask bench sync --sizes 10000 --store postgres"],
    },
    Task {
        name: "bench console",
        summary: "the dashboard pages' server time with a large store",
        about: "The server time of each dashboard page with 10,000 connections and 1,000,000 records\n\
                in the store, next to `GET /health`'s.",
        args: "",
        options: &[
            STORE,
            Opt {
                flag: "--requests N",
                help: "requests per page (default 50)",
            },
        ],
        examples: &["cargo xtask bench console --store postgres --requests 100"],
    },
    Task {
        name: "bench plugin",
        summary: "the people sync built in against loaded as a plugin",
        about: "The people sync with its provider built in and loaded from its release plugin,\n\
                alternating, to measure the plugin boundary.",
        args: "",
        options: &[
            Opt {
                flag: "--sizes N",
                help: "how many people (default 100000)",
            },
            Opt {
                flag: "--rounds N",
                help: "how many alternations (default 3)",
            },
        ],
        examples: &["cargo xtask bench plugin --sizes 10000 --rounds 5"],
    },
    Task {
        name: "plugins",
        summary: "builds the providers as plugins into target/plugins/",
        about: "Builds every provider under providers/ that has a `plugin` feature as a plugin, in one\n\
                `cargo build`, and copies the libraries to target/plugins/, where\n\
                `[[providers]] path = \"…\"` can name them.",
        args: "",
        options: &[Opt {
            flag: "--release",
            help: "build in release mode (default: debug)",
        }],
        examples: &["cargo xtask plugins", "cargo xtask plugins --release"],
    },
    new_provider::TASK,
    Task {
        name: "codegen",
        summary: "regenerates the host's list of built-in providers",
        about: "Rewrites the host's generated list of built-in providers\n\
                (crates/host/src/builtin_providers.rs and the marked block of crates/host/Cargo.toml)\n\
                from the crates under providers/.",
        args: "",
        options: &[Opt {
            flag: "--check",
            help: "change nothing; fail if the generated files are not up to date",
        }],
        examples: &["cargo xtask codegen", "cargo xtask codegen --check"],
    },
    Task {
        name: "check-providers",
        summary: "the conformance checks of every provider",
        about: "The conformance checks of every provider: each spec file valid and without blanks\n\
                left by the scaffold, and each provider crate's tests/conformance.rs. Reports every\n\
                problem at once, each naming the provider and the key.",
        args: "",
        options: &[],
        examples: &["cargo xtask check-providers"],
    },
    fuzz::TASK,
    soak::TASK,
    Task {
        name: "ci",
        summary: "runs what CI runs (.ci/run)",
        about: "What CI runs, read from .ci/run: formatting, clippy with warnings denied, cargo deny\n\
                (licenses, duplicate versions, sources), the doc links and `cargo test --workspace`,\n\
                with the services it needs.",
        args: "",
        options: &[],
        examples: &["cargo xtask ci"],
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if args.is_empty() || args == ["help"] || args == ["--help"] || args == ["-h"] {
        print!("{}", help::overview(TASKS));
        return ExitCode::SUCCESS;
    }
    let task = help::find(TASKS, &args);
    if help::wants_help(&args) {
        return match task {
            Some(task) => {
                print!("{}", task.help());
                ExitCode::SUCCESS
            }
            None => {
                eprint!("{}", help::overview(TASKS));
                ExitCode::FAILURE
            }
        };
    }
    let result = match args.as_slice() {
        ["bench", "proxy", rest @ ..] => bench("proxy", rest),
        ["bench", "sync", rest @ ..] => bench("sync", rest),
        ["bench", "console", rest @ ..] => bench("console", rest),
        ["bench", "plugin", rest @ ..] => bench_plugin(rest),
        ["plugins"] => current_workspace().and_then(|root| plugins(&root, false)),
        ["plugins", "--release"] => current_workspace().and_then(|root| plugins(&root, true)),
        ["new-provider", rest @ ..] => new_provider::Options::parse(rest)
            .and_then(|options| new_provider::run(&current_workspace()?, &options)),
        ["codegen"] => current_workspace().and_then(|root| codegen::run(&root, false)),
        ["codegen", "--check"] => current_workspace().and_then(|root| codegen::run(&root, true)),
        ["check-providers"] => current_workspace().and_then(|root| checks::check_providers(&root)),
        ["soak", rest @ ..] => {
            soak::Options::parse(rest).and_then(|options| soak::run_soak(&options))
        }
        ["fuzz", rest @ ..] => fuzz::Options::parse(rest)
            .and_then(|options| fuzz::run_targets(&current_workspace()?, &options)),
        ["ci"] => current_workspace().and_then(|root| checks::ci(&root)),
        _ => Err(match task {
            Some(task) => format!(
                "`cargo xtask {}` does not take those arguments\nusage: {}\n(`cargo xtask {} --help` explains the options)",
                args.join(" "),
                task.usage(),
                task.name
            ),
            None => format!("unknown task `{}`\n\n{}", args[0], help::overview(TASKS)),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace around the current directory: the nearest `Cargo.toml` with `[workspace]`.
fn current_workspace() -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
    find_workspace(&cwd)
}

fn find_workspace(start: &Path) -> Result<PathBuf, String> {
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|text| text.lines().any(|line| line.trim() == "[workspace]"))
        })
        .map(Path::to_owned)
        .ok_or_else(|| {
            format!(
                "no Cargo.toml with [workspace] in {} or above",
                start.display()
            )
        })
}

/// The workspace xtask was built from (benchmarks and plugins build its crates).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Builds `plugboard` and the benchmark example `bench_<name>` in release mode, then runs the
/// example against that binary with the remaining arguments.
fn bench(name: &str, extra: &[&str]) -> Result<(), String> {
    let root = workspace_root();
    let example = format!("bench_{name}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(&cargo).current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "plugboard",
        "--bin",
        "plugboard",
        "--example",
        &example,
    ]))?;
    let release = target_dir(&root).join("release");
    run(Command::new(release.join("examples").join(&example))
        .arg("--plugboard")
        .arg(release.join("plugboard"))
        .args(extra))
}

/// `bench sync`'s benchmark in its plugin mode, given the people provider's release plugin as
/// `cargo xtask plugins --release` builds it.
fn bench_plugin(extra: &[&str]) -> Result<(), String> {
    plugins(&workspace_root(), true)?;
    let library = target_dir(&workspace_root()).join("plugins").join(format!(
        "{}plugboard_microsoft_people{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let library = library
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", library.display()))?;
    let mut args = vec!["--plugin", library];
    args.extend_from_slice(extra);
    bench("sync", &args)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// A provider crate that can be built as a plugin.
struct PluginCrate {
    package: String,
    /// The library's file name, e.g. `libplugboard_microsoft_people.so` on Linux.
    library: String,
}

/// Builds the plugins of the workspace at `root` into its `target/plugins/`.
fn plugins(root: &Path, release: bool) -> Result<(), String> {
    let crates = plugin_crates(&root.join("providers"))?;
    if crates.is_empty() {
        return Err("no crate under providers/ has a `plugin` feature".to_owned());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(&cargo);
    build.current_dir(root).args(["build", "--locked"]);
    if release {
        build.arg("--release");
    }
    for krate in &crates {
        build.args(["--package", &krate.package]);
        build.args(["--features", &format!("{}/plugin", krate.package)]);
    }
    run(&mut build)?;

    let target = target_dir(root);
    let built = target.join(if release { "release" } else { "debug" });
    let plugins = target.join("plugins");
    std::fs::create_dir_all(&plugins)
        .map_err(|e| format!("cannot create {}: {e}", plugins.display()))?;
    for krate in &crates {
        let from = built.join(&krate.library);
        let to = plugins.join(&krate.library);
        // Replaced, not overwritten in place: a running server may have the old file mapped.
        let _ = std::fs::remove_file(&to);
        std::fs::copy(&from, &to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
        println!("{} -> {}", krate.package, to.display());
    }
    Ok(())
}

/// Every directory under `providers/` whose `Cargo.toml` declares a `plugin` feature, by name.
fn plugin_crates(providers: &Path) -> Result<Vec<PluginCrate>, String> {
    let entries = std::fs::read_dir(providers)
        .map_err(|e| format!("cannot read {}: {e}", providers.display()))?;
    let mut crates = Vec::new();
    for entry in entries {
        let manifest = entry.map_err(|e| e.to_string())?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if let Some(package) = plugin_package(&text) {
            let library = format!(
                "{}{}{}",
                std::env::consts::DLL_PREFIX,
                package.replace('-', "_"),
                std::env::consts::DLL_SUFFIX
            );
            crates.push(PluginCrate { package, library });
        }
    }
    crates.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(crates)
}

/// The package name of a manifest that declares a `plugin` feature. xtask has only the
/// standard library, so this reads the two facts line by line: `name = "…"` in `[package]` and
/// `plugin = …` in `[features]`, as the workspace's manifests write them.
fn plugin_package(manifest: &str) -> Option<String> {
    let mut section = "";
    let mut name = None;
    let mut plugin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match (section, key.trim()) {
            ("[package]", "name") => name = Some(value.trim().trim_matches('"').to_owned()),
            ("[features]", "plugin") => plugin = true,
            _ => {}
        }
    }
    name.filter(|_| plugin)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every task's `--help`, pinned: a change in a task's options shows in review.
    #[test]
    fn help_texts() {
        insta::assert_snapshot!("overview", help::overview(TASKS));
        for task in TASKS {
            insta::assert_snapshot!(format!("help_{}", task.name.replace(' ', "_")), task.help());
        }
    }

    /// Every task `main` dispatches is in the table `--help` is written from.
    #[test]
    fn every_task_has_help() {
        let source = include_str!("main.rs");
        let dispatch = &source[source.find("let result = match").unwrap()
            ..source.find("_ => Err(match task").unwrap()];
        for arm in dispatch.lines().filter_map(|l| l.trim().strip_prefix('[')) {
            let words: Vec<&str> = arm
                .split(']')
                .next()
                .unwrap()
                .split(", ")
                .filter_map(|w| w.strip_prefix('"')?.strip_suffix('"'))
                .filter(|w| !w.starts_with("--"))
                .collect();
            let task = help::find(TASKS, &words);
            assert!(
                task.is_some_and(|t| t.name == words.join(" ")),
                "`{}` has no entry in TASKS",
                words.join(" ")
            );
        }
    }

    #[test]
    fn a_manifest_with_a_plugin_feature_names_its_package() {
        let manifest = "[package]\nname = \"plugboard-acme\"\nversion.workspace = true\n\n\
                        [features]\n# Exports the provider.\nplugin = [\"dep:plugboard-plugin\"]\n";
        assert_eq!(plugin_package(manifest), Some("plugboard-acme".to_owned()));
        let without = "[package]\nname = \"plugboard-acme\"\n\n[dependencies]\nplugin = \"1\"\n";
        assert_eq!(plugin_package(without), None);
    }

    #[test]
    fn every_provider_of_the_workspace_is_found() {
        let crates = plugin_crates(&workspace_root().join("providers")).unwrap();
        let packages: Vec<&str> = crates.iter().map(|c| c.package.as_str()).collect();
        assert!(
            packages.contains(&"plugboard-microsoft-people"),
            "{packages:?}"
        );
    }
}
