//! `cargo xtask soak`: the soak run for as long as asked.
//!
//! The soak itself is an end-to-end test (`crates/host/tests/e2e/soak.rs`, one per store
//! backend) that reads its length and fleet from the environment; `cargo test --workspace` runs
//! it for a minute per backend. This task sets those variables, runs the chosen backends one
//! after another (each has the machine to itself) and shows the figures the test prints.

use std::process::Command;

use crate::help::{Opt, Task};
use crate::{cargo, run};

pub const TASK: Task = Task {
    name: "soak",
    summary: "the soak run: a fleet under faults, then every invariant checked",
    about: "A fleet of connections synced every minute with steady proxy traffic while the\n\
            emulator throttles, fails with 5xx, drops connections, answers slowly, loses its\n\
            token endpoint and has grants revoked on a schedule; then the faults stop and it\n\
            checks that each connection works or is marked, records equal the emulator's data,\n\
            each webhook event arrived once, and memory and open files stayed flat. Prints the\n\
            figures as a markdown table (for RELIABILITY.md). Setting the fleet up and a\n\
            warm-up come before the measured minutes.",
    args: "",
    options: &[
        Opt {
            flag: "--minutes N",
            help: "how long the measured run lasts per backend (default 30; fractions allowed)",
        },
        Opt {
            flag: "--connections N",
            help: "how many connections (default 1000)",
        },
        Opt {
            flag: "--store sqlite|postgres|both",
            help: "the store backend (default both; postgres uses 127.0.0.1:5432, database test)",
        },
    ],
    examples: &[
        "cargo xtask soak --minutes 30",
        "cargo xtask soak --minutes 5 --connections 200 --store sqlite",
    ],
};

#[derive(Debug, PartialEq)]
pub struct Options {
    minutes: f64,
    connections: usize,
    stores: Vec<&'static str>,
}

impl Options {
    pub fn parse(args: &[&str]) -> Result<Options, String> {
        let usage = TASK.usage();
        let mut options = Options {
            minutes: 30.0,
            connections: 1000,
            stores: vec!["sqlite", "postgres"],
        };
        let mut args = args.iter();
        while let Some(&arg) = args.next() {
            let value = args.next().copied().ok_or_else(|| {
                format!("{arg} needs a value\nusage: {usage} (--help explains the options)")
            });
            match arg {
                "--minutes" => {
                    let text = value?;
                    options.minutes = text
                        .parse()
                        .ok()
                        .filter(|m: &f64| m.is_finite() && *m > 0.0)
                        .ok_or_else(|| {
                            format!("--minutes {text}: expected a number of minutes above 0")
                        })?;
                }
                "--connections" => {
                    let text = value?;
                    options.connections =
                        text.parse().ok().filter(|n| *n >= 4).ok_or_else(|| {
                            format!("--connections {text}: expected a whole number, at least 4")
                        })?;
                }
                "--store" => {
                    options.stores = match value? {
                        "sqlite" => vec!["sqlite"],
                        "postgres" => vec!["postgres"],
                        "both" => vec!["sqlite", "postgres"],
                        other => {
                            return Err(format!(
                                "--store {other}: expected sqlite, postgres or both"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "`{other}` is not an option of `cargo xtask soak`\nusage: {usage} (--help explains the options)"
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// Runs the soak test on each chosen backend, one after another.
pub fn run_soak(options: &Options) -> Result<(), String> {
    let root = crate::workspace_root();
    for store in &options.stores {
        println!(
            "soak on {store}: {} connections, {} minute(s) after set-up and warm-up",
            options.connections, options.minutes
        );
        run(Command::new(cargo())
            .current_dir(&root)
            .env("PLUGBOARD_SOAK_MINUTES", options.minutes.to_string())
            .env(
                "PLUGBOARD_SOAK_CONNECTIONS",
                options.connections.to_string(),
            )
            .args(["test", "-p", "plugboard", "--test", "e2e", "--"])
            .arg(format!("soak::on_{store}"))
            .args(["--exact", "--nocapture"]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Options;

    #[test]
    fn options_are_read_and_bad_ones_named() {
        assert_eq!(
            Options::parse(&["--minutes", "0.5", "--store", "sqlite"]),
            Ok(Options {
                minutes: 0.5,
                connections: 1000,
                stores: vec!["sqlite"],
            })
        );
        let refused = |args: &[&str]| Options::parse(args).unwrap_err();
        assert!(refused(&["--minutes", "0"]).starts_with("--minutes 0:"));
        assert!(refused(&["--connections", "3"]).starts_with("--connections 3:"));
        assert!(refused(&["--store", "mysql"]).starts_with("--store mysql:"));
        assert!(refused(&["--minutes"]).starts_with("--minutes needs a value"));
        assert!(refused(&["--fast"]).starts_with("`--fast` is not an option"));
    }
}
