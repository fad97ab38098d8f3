//! The command line: `serve`, `dev`, `check-config`, `providers list`, `keys rotate`, `sync run`
//! and `records export` (the last two in `commands.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::commands::{self, RecordsCommand, SyncCommand};
use crate::config::{self, LoadOptions, Loaded, LogFormat};
use crate::dev::{self, DevOptions};
use crate::registry::{self, Registry};
use crate::reload;
use crate::server;
use crate::telemetry::logs;

/// The help of every command ends with examples (`after_help`); a test snapshots each
/// command's `--help` and checks that it has them and that every argument is described.
#[derive(Debug, Parser)]
#[command(
    name = "plugboard",
    version,
    about = "Plugboard: OAuth connections, token refresh and an authenticated proxy in one binary.",
    long_about = "Plugboard: OAuth connections, token refresh and an authenticated proxy in one \
                  binary.\n\nEvery command but `dev` reads a configuration file \
                  (`--config PATH`; config/plugboard.toml documents every key). \
                  `plugboard <command> --help` explains each command.",
    after_help = "Examples:
  plugboard dev
  plugboard check-config --config config/plugboard.toml
  plugboard serve --config config/plugboard.toml
  plugboard sync run microsoft alice people --config config/plugboard.toml --dry-run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server: the HTTP API, the OAuth flows, the proxy and the sync scheduler.
    ///
    /// Reads and checks the configuration first, and refuses to start on any problem (as
    /// `check-config` prints them). Logs go to standard error in the configuration's
    /// `[log] format`. Stops on Ctrl-C or SIGTERM once the requests in progress are answered.
    /// On SIGHUP reads the configuration again: integrations, sync settings and webhooks change
    /// without a restart; a file with a problem, or one changing the listeners, the store or
    /// the keys, is refused and logged, and the running configuration stays.
    #[command(after_help = "Examples:
  plugboard serve --config config/plugboard.toml
  PLUGBOARD__SECURITY__SECRET_KEY=\"$(cat api-key)\" plugboard serve -c /etc/plugboard/plugboard.toml")]
    Serve {
        /// The configuration file (required); values may also come from PLUGBOARD__… environment
        /// variables.
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
    /// Runs a demo on embedded defaults: the Microsoft emulator, SQLite and a demo account.
    ///
    /// The Microsoft emulator runs in-process, a fresh SQLite store lives under `--dir`, an
    /// integration `microsoft` points at the emulator, and the emulator has a demo user. Prints
    /// the connect link and the API key. Needs no configuration file and no network.
    #[command(after_help = "Examples:
  plugboard dev
  plugboard dev --bind 127.0.0.1:8080 --people 5000 --dir /tmp/plugboard-demo")]
    Dev {
        /// Where the demo keeps its SQLite store; deleted and recreated on every start.
        #[arg(long, value_name = "DIR", default_value = ".plugboard-dev")]
        dir: PathBuf,
        /// The address the demo server listens on, as IP:PORT (port 0 picks a free one).
        #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:3003")]
        bind: SocketAddr,
        /// How many people the demo user has.
        #[arg(long, value_name = "COUNT", default_value_t = 300)]
        people: usize,
    },
    /// Validates the configuration and prints every problem and warning.
    ///
    /// Reads the file and the environment variables it refers to as `serve` would, loads the
    /// providers it enables (plugins included), and prints every problem at once, each naming
    /// its key and where the value came from. Exits with status 1 when there is any problem.
    #[command(after_help = "Examples:
  plugboard check-config --config config/plugboard.toml
  PLUGBOARD__INTEGRATIONS__MICROSOFT__CLIENT_SECRET=\"$(cat ms-secret)\" plugboard check-config -c plugboard.toml")]
    CheckConfig {
        /// The configuration file to check (required).
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
    /// Lists the providers the configuration enables, built in or loaded from plugins.
    #[command(after_help = "Examples:
  plugboard providers list --config config/plugboard.toml")]
    Providers {
        #[command(subcommand)]
        command: ProvidersCommand,
    },
    /// Moves the store to another database.
    #[command(after_help = "Examples:
  plugboard store copy --config plugboard.toml --to postgres://plugboard@db/plugboard")]
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Runs syncs by hand.
    #[command(after_help = "Examples:
  plugboard sync run microsoft alice people --config config/plugboard.toml --dry-run")]
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Reads stored records.
    #[command(after_help = "Examples:
  plugboard records export microsoft alice Person --config config/plugboard.toml")]
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// Manages the encryption keys of stored secrets.
    #[command(after_help = "Examples:
  plugboard keys rotate --config config/plugboard.toml")]
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ProvidersCommand {
    /// Prints each provider's id, version, source, plugin ABI version, syncs and actions.
    ///
    /// The source is "built in", a plugin's library or a spec file. Loads the whole
    /// configuration, plugins included, so a plugin that cannot be used is refused here as
    /// `serve` would refuse it.
    #[command(after_help = "Examples:
  plugboard providers list --config config/plugboard.toml")]
    List {
        /// The configuration file whose `[[providers]]` are listed (required).
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copies everything from the configured store into an empty store at `--to`.
    ///
    /// Connections, secrets (copied sealed, never decrypted: servers on the new store need the
    /// same key ring), records with their metadata and cursors, checkpoints, sync state, runs
    /// and webhook deliveries move row by row, in batches, so memory stays flat however large
    /// the store. The target's schema is created when the database is empty; a target that already
    /// holds data is refused and left as it was. The counts of both are compared at the end.
    /// Stop every server using the store first, then point the configuration at the new URL.
    #[command(after_help = "Examples:
  plugboard store copy --config plugboard.toml --to postgres://plugboard@db/plugboard
  plugboard store copy --config plugboard.toml --to sqlite://backup/plugboard.db")]
    Copy {
        /// The configuration file whose `[store]` is copied (required).
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
        /// The empty target store (required): "postgres://user@host/database" or
        /// "sqlite://path/to/plugboard.db".
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-encrypts every stored secret under `security.active_key`.
    ///
    /// Steps: add the new key to `security.encryption_keys`, make it `active_key`, restart the
    /// server, run this command, then remove the old key and restart again. The server may keep
    /// running during rotation once it runs with the new active key: requests and token
    /// refreshes go on, and rows are rewritten one at a time with a compare-and-swap, so a
    /// concurrent refresh is never lost. A server still running with the old active key must be
    /// stopped (or restarted with the new one) first: this command cannot tell, and that server
    /// keeps writing secrets under the old key, which then cannot be removed.
    #[command(after_help = "Examples:
  plugboard keys rotate --config config/plugboard.toml")]
    Rotate {
        /// The configuration file with the key ring and the store (required).
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` logs as its configuration says, once it has read it.
    if !matches!(cli.command, Command::Serve { .. }) {
        logs::init(LogFormat::Text);
    }
    let result = match cli.command {
        Command::Serve { config } => runtime().block_on(serve(&config)),
        Command::Dev { dir, bind, people } => {
            runtime().block_on(dev::run(DevOptions { dir, bind, people }))
        }
        Command::CheckConfig { config } => check_config(&config),
        Command::Providers {
            command: ProvidersCommand::List { config },
        } => list_providers(&config),
        Command::Sync { command } => foreground_runtime().block_on(commands::sync(command)),
        Command::Records { command } => runtime().block_on(commands::records(command)),
        Command::Keys {
            command: KeysCommand::Rotate { config },
        } => runtime().block_on(rotate_keys(&config)),
        Command::Store {
            command: StoreCommand::Copy { config, to },
        } => runtime().block_on(commands::copy_store(&config, &to)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            logs::failure(&message);
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime must start")
}

/// The runtime of `sync run`: one run in the foreground, whose provider works a page at a time
/// while SQLite works on its own thread (sqlx gives each connection one). Worker threads would
/// only pass the run between them, paying a wake-up and a context switch at every store call,
/// and each thread's allocations its own malloc arena.
fn foreground_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime must start")
}

/// Loads the config file and the providers it enables, printing its warnings.
pub(crate) fn load(path: &Path) -> Result<Loaded, String> {
    let loaded = read_config(path)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(loaded)
}

/// Loads the config file and the providers it enables; the caller says the warnings.
fn read_config(path: &Path) -> Result<Loaded, String> {
    let builtin = Registry::builtin().map_err(|e| e.to_string())?;
    config::load(path, &builtin, &LoadOptions::from_process()).map_err(|e| e.to_string())
}

fn check_config(path: &Path) -> Result<(), String> {
    let loaded = load(path)?;
    let integrations = loaded.config.integrations.len();
    println!("{}: OK ({integrations} integration(s))", path.display());
    Ok(())
}

async fn serve(path: &Path) -> Result<(), String> {
    let loaded = read_config(path)?;
    let config = &loaded.config;
    // From here on every line is in the configured format, the start-up warnings included.
    logs::init(config.log.format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let state = server::state(config, &loaded.providers).await?;
    let listener = TcpListener::bind(config.server.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.server.bind))?;
    let management = server::bind_management(config).await?;
    let reload = reload::spawn(path.to_owned(), state.clone(), config);
    let served = server::run(listener, management, state, server::shutdown_signal()).await;
    reload.abort();
    served
}

fn list_providers(path: &Path) -> Result<(), String> {
    let loaded = load(path)?;
    print!("{}", registry::listing(&loaded.providers));
    Ok(())
}

async fn rotate_keys(path: &Path) -> Result<(), String> {
    let loaded = load(path)?;
    let store = server::open_store(&loaded.config).await?;
    let rotation = store.reencrypt_all().await;
    store.close().await;
    let rotation = rotation.map_err(|e| e.to_string())?;
    println!(
        "re-encrypted {} row(s) under key `{}`; {} already used it. Keys other than `{}` can now be removed from security.encryption_keys.",
        rotation.reencrypted,
        loaded.config.security.active_key,
        rotation.current,
        loaded.config.security.active_key
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::CommandFactory;

    use super::Cli;

    /// The path below `plugboard` of `command` and of every command under it, such as
    /// `["sync", "run"]` (the root's is empty), leaving out clap's own `help` subcommands.
    fn paths(command: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
            let mut below = path.clone();
            below.push(sub.get_name().to_owned());
            paths(sub, below, out);
        }
    }

    /// Every command's `--help`, each a snapshot named after its path (`help_sync_run`), so
    /// that a command without one, or a help that changed, fails here. Each says what the
    /// command does, describes every argument and ends with examples.
    #[test]
    fn every_commands_help_describes_its_arguments_and_shows_examples() {
        // The width of help without a terminal, whatever the terminal running the test.
        let mut root = Cli::command().term_width(100);
        root.build();
        let mut all = Vec::new();
        paths(&root, Vec::new(), &mut all);
        let mut names = Vec::new();
        for path in all {
            let mut command = &mut root;
            for name in &path {
                command = command
                    .find_subcommand_mut(name)
                    .expect("a listed subcommand");
            }
            let shown = format!("plugboard {}", path.join(" "));
            assert!(command.get_about().is_some(), "`{shown}` has no about");
            for arg in command.get_arguments() {
                assert!(
                    arg.get_help().is_some() || arg.get_long_help().is_some(),
                    "`{shown}`: argument `{}` has no help text",
                    arg.get_id()
                );
            }
            let help = command.render_long_help().to_string();
            assert!(
                help.contains("\nExamples:\n  plugboard "),
                "`{shown} --help` shows no examples:\n{help}"
            );
            let name = std::iter::once("help".to_owned())
                .chain(path.iter().map(|p| p.replace('-', "_")))
                .collect::<Vec<_>>()
                .join("_");
            insta::assert_snapshot!(name.clone(), help);
            names.push(format!("plugboard__cli__tests__{name}.snap"));
        }
        // No snapshot is left from a command that is gone.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/snapshots");
        for entry in std::fs::read_dir(dir).expect("the snapshots directory") {
            let file = entry.unwrap().file_name().to_string_lossy().into_owned();
            if file.starts_with("plugboard__cli__tests__help") && file.ends_with(".snap") {
                assert!(
                    names.contains(&file),
                    "{file} is no command's help; remove it"
                );
            }
        }
    }
}
