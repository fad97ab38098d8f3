//! `cargo xtask fuzz`: every fuzz target for a time budget, with fresh seeds.
//!
//! A target is a test `fuzz_<name>` in the crate that owns the parser, driven by
//! `plugboard-fuzz` (crates/fuzz): `cargo test --workspace` runs each for a few hundred cases,
//! and this task runs them for `--seconds` each, one after another so each has a core, by
//! setting `PLUGBOARD_FUZZ_SECONDS`. The build is a debug one unless `--release`: overflow
//! checks stay on, so an arithmetic overflow is found as a panic.

use std::path::Path;
use std::process::Command;

use crate::help::{Opt, Task};
use crate::{cargo, run};

pub const TASK: Task = Task {
    name: "fuzz",
    summary: "runs the fuzz targets for a time budget",
    about: "Runs every fuzz target (the config file, provider specs, the OAuth callback's query,\n\
            token responses, Graph pages, the people reader, webhook payloads, plugin batches)\n\
            with fresh seeds for a time budget each, one after another, and prints the cases run\n\
            per target. An input that fails is shrunk and kept under the crate's\n\
            fuzz-regressions/<target>/, where every later run, and `cargo test`, replays it first.",
    args: "",
    options: &[
        Opt {
            flag: "--seconds N",
            help: "how long each target runs (default 30)",
        },
        Opt {
            flag: "--target NAME",
            help: "only this target: config_file, provider_spec, callback_query,\n\
                   token_response, graph_page, people_page, webhook_payload, plugin_batch",
        },
        Opt {
            flag: "--release",
            help: "build in release mode: more cases, but no overflow checks",
        },
    ],
    examples: &[
        "cargo xtask fuzz --seconds 20",
        "cargo xtask fuzz --target plugin_batch --seconds 600",
    ],
};

/// The crates with fuzz targets: the package, what selects its unit tests, and its targets
/// (tests `fuzz_<target>`). A test checks that this lists every `fn fuzz_` of the workspace.
const CRATES: &[(&str, &[&str], &[&str])] = &[
    (
        "plugboard-core",
        // The OAuth engine's targets need the host-side runtime.
        &["--lib", "--features", "runtime"],
        &[
            "provider_spec",
            "callback_query",
            "token_response",
            "graph_page",
        ],
    ),
    ("plugboard-plugin", &["--lib"], &["plugin_batch"]),
    ("plugboard-microsoft-people", &["--lib"], &["people_page"]),
    (
        "plugboard",
        &["--bin", "plugboard"],
        &["config_file", "webhook_payload"],
    ),
];

const DEFAULT_SECONDS: u64 = 30;

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    seconds: u64,
    target: Option<String>,
    release: bool,
}

impl Options {
    pub fn parse(args: &[&str]) -> Result<Options, String> {
        let usage = TASK.usage();
        let mut options = Options {
            seconds: DEFAULT_SECONDS,
            target: None,
            release: false,
        };
        let mut args = args.iter();
        while let Some(&arg) = args.next() {
            let mut value = |name: &str| {
                args.next().copied().ok_or_else(|| {
                    format!("{name} needs a value\nusage: {usage} (--help explains the options)")
                })
            };
            match arg {
                "--seconds" => {
                    let text = value(arg)?;
                    options.seconds = text.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("--seconds {text}: expected a whole number of seconds above 0")
                    })?;
                }
                "--target" => {
                    let name = value(arg)?;
                    if !targets().any(|(_, target)| target == name) {
                        let known: Vec<&str> = targets().map(|(_, t)| t).collect();
                        return Err(format!(
                            "--target {name}: no such fuzz target; the targets are {}",
                            known.join(", ")
                        ));
                    }
                    options.target = Some(name.to_owned());
                }
                "--release" => options.release = true,
                other => {
                    return Err(format!(
                        "`{other}` is not an option of `cargo xtask fuzz`\nusage: {usage} (--help explains the options)"
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// Every target with its package.
fn targets() -> impl Iterator<Item = (&'static str, &'static str)> {
    CRATES
        .iter()
        .flat_map(|(package, _, targets)| targets.iter().map(move |t| (*package, *t)))
}

/// Runs the targets, crate by crate, and prints each target's cases; fails when one failed.
pub fn run_targets(root: &Path, options: &Options) -> Result<(), String> {
    let mut report = Vec::new();
    let mut failed = Vec::new();
    for (package, select, targets) in CRATES {
        let chosen: Vec<&str> = targets
            .iter()
            .copied()
            .filter(|t| options.target.as_deref().is_none_or(|only| only == *t))
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let filter = options
            .target
            .as_ref()
            .map_or_else(|| "fuzz_".to_owned(), |only| format!("fuzz_{only}"));
        let test = |command: &mut Command| {
            command
                .current_dir(root)
                .args(["test", "-p", package])
                .args(*select);
            if options.release {
                command.arg("--release");
            }
        };
        // The build first, with its output as it goes; then the run, read for the figures.
        let mut build = Command::new(cargo());
        test(&mut build);
        run(build.arg("--no-run"))?;
        println!(
            "fuzzing {} for {}s each: {}",
            package,
            options.seconds,
            chosen.join(", ")
        );
        let mut fuzz = Command::new(cargo());
        test(&mut fuzz);
        fuzz.env(SECONDS_VAR, options.seconds.to_string()).args([
            "--",
            "--nocapture",
            "--test-threads",
            "1",
            &filter,
        ]);
        let output = fuzz
            .output()
            .map_err(|e| format!("cannot run {fuzz:?}: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for target in &chosen {
            match figures(&text, target) {
                Some(line) => report.push(format!("  {target:<16} {line}")),
                None => {
                    report.push(format!("  {target:<16} FAILED"));
                    failed.push(*target);
                }
            }
        }
        if !output.status.success() {
            // The failing target's message: the input, and where it is now kept.
            eprintln!("{text}");
            if !chosen.iter().any(|target| failed.contains(target)) {
                failed.push(package);
            }
        }
    }
    println!("fuzz targets:\n{}", report.join("\n"));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzzing failed: {} (the output above names each input and where it is kept)",
            failed.join(", ")
        ))
    }
}

/// What the driver reports for a target that passed: `N cases and K kept in Ts, no failure`,
/// anywhere in a line (libtest writes the test's name before it when tests run one by one).
fn figures(output: &str, target: &str) -> Option<String> {
    let prefix = format!("fuzz {target}: ");
    output
        .lines()
        .filter_map(|line| Some(&line[line.find(&prefix)? + prefix.len()..]))
        .find(|rest| rest.ends_with(", no failure"))
        .map(str::to_owned)
}

/// `plugboard_fuzz::SECONDS_VAR`: xtask has only the standard library.
const SECONDS_VAR: &str = "PLUGBOARD_FUZZ_SECONDS";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_have_defaults_and_refuse_what_they_cannot_use() {
        let defaults = Options::parse(&[]).unwrap();
        assert_eq!(
            defaults,
            Options {
                seconds: 30,
                target: None,
                release: false
            }
        );
        let chosen = Options::parse(&["--seconds", "5", "--target", "plugin_batch", "--release"]);
        assert_eq!(
            chosen.unwrap(),
            Options {
                seconds: 5,
                target: Some("plugin_batch".to_owned()),
                release: true
            }
        );
        let error = Options::parse(&["--target", "nope"]).unwrap_err();
        assert!(
            error.contains("no such fuzz target; the targets are provider_spec"),
            "{error}"
        );
        for bad in [
            &["--seconds", "0"][..],
            &["--seconds", "soon"],
            &["--seconds"],
            &["--fast"],
        ] {
            assert!(Options::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn figures_are_read_from_the_drivers_line() {
        let output = "running 2 tests\ntest pagination::fuzz::fuzz_graph_page ... \
                      fuzz graph_page: 512 cases and 1 kept in 2.0s, no failure\n\
                      test pagination::fuzz::fuzz_graph_page ... ok\n\
                      fuzz token_response: no such line\n";
        assert_eq!(
            figures(output, "graph_page").as_deref(),
            Some("512 cases and 1 kept in 2.0s, no failure")
        );
        assert_eq!(figures(output, "token_response"), None);
    }

    /// The table lists every fuzz target of the workspace, in the crate that has it, and no
    /// other: a new target is run by `cargo xtask fuzz` once it is listed here.
    #[test]
    fn the_table_lists_every_fuzz_target_of_the_workspace() {
        let root = crate::workspace_root();
        let mut found = Vec::new();
        for dir in ["crates", "providers"] {
            find_targets(&root.join(dir), &mut found);
        }
        let package_of = |file: &Path| {
            let manifest = file
                .ancestors()
                .map(|dir| dir.join("Cargo.toml"))
                .find(|manifest| manifest.exists())
                .unwrap();
            let text = std::fs::read_to_string(manifest).unwrap();
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .unwrap();
            name.trim_end_matches('"').to_owned()
        };
        let mut found: Vec<(String, String)> = found
            .into_iter()
            .map(|(file, target)| (package_of(&file), target))
            .collect();
        found.sort();
        let mut listed: Vec<(String, String)> = targets()
            .map(|(p, t)| (p.to_owned(), t.to_owned()))
            .collect();
        listed.sort();
        assert_eq!(found, listed);
        let help = TASK.help();
        for (_, target) in targets() {
            assert!(help.contains(target), "--help does not name {target}");
        }
    }

    /// Every `fn fuzz_<target>()` under `dir`, but the driver's own crate.
    fn find_targets(dir: &Path, found: &mut Vec<(std::path::PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if !matches!(name.as_ref(), "target" | "fuzz-regressions")
                    && !path.ends_with("crates/fuzz")
                {
                    find_targets(&path, found);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines() {
                    if let Some(rest) = line.trim().strip_prefix("fn fuzz_") {
                        let target = rest.split('(').next().unwrap().to_owned();
                        found.push((path.clone(), target));
                    }
                }
            }
        }
    }
}
