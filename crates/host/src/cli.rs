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
use crate::server;
use crate::telemetry::logs;

#[derive(Debug, Parser)]
#[command(
    name = "plugboard",
    version,
    about = "Plugboard: OAuth connections, token refresh and an authenticated proxy in one binary."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server.
    Serve {
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
    /// Runs a demo on embedded defaults: the Microsoft emulator in-process, a fresh SQLite store
    /// under `--dir`, an integration `microsoft` pointed at the emulator and a demo user. Prints
    /// the connect link and the API key.
    Dev {
        /// Where the demo keeps its SQLite store; recreated on every start.
        #[arg(long, value_name = "DIR", default_value = ".plugboard-dev")]
        dir: PathBuf,
        #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:3003")]
        bind: SocketAddr,
        /// How many people the demo user has.
        #[arg(long, default_value_t = 300)]
        people: usize,
    },
    /// Validates the configuration and prints every problem and warning.
    CheckConfig {
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
    /// Lists the providers the configuration enables, built in or loaded from plugins.
    Providers {
        #[command(subcommand)]
        command: ProvidersCommand,
    },
    /// Moves the store to another database.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Runs syncs by hand.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Reads stored records.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// Manages the encryption keys of stored secrets.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ProvidersCommand {
    /// Prints each provider's id, version, source (built in, or the plugin's library), plugin
    /// ABI version, syncs and actions. Loads the whole configuration, plugins included.
    List {
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
    ///
    /// Example: plugboard store copy --config plugboard.toml --to postgres://plugboard@db/plugboard
    Copy {
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
        /// The target: "postgres://user@host/database" or "sqlite://path/to/plugboard.db".
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
    Rotate {
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
    server::run(listener, management, state, server::shutdown_signal()).await
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
