//! `plugboard sync run`, `plugboard records export` and `plugboard store copy`: syncs, records
//! and the store from the command line, against the same store and configuration as the
//! server.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Subcommand;
use plugboard_core::SyncMode;

use crate::api::{AppState, record_json};
use crate::cli::load;
use crate::server;
use crate::sync::context::Progress;
use crate::sync::runner::{RunRequest, run_sync};
use plugboard_store::{ConnectionKey, RecordQuery, RunStatus, copy};

/// Records per page when exporting: large enough to be fast, small enough to keep memory flat.
const EXPORT_PAGE: u32 = 1_000;

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Runs one sync for one connection in the foreground and prints a summary.
    ///
    /// Uses the configured store, like a run the server's scheduler starts: it continues from
    /// the sync's checkpoint unless `--full`, and saves what it reads unless `--dry-run`.
    /// On a terminal, a status line shows the requests and records so far. Exits with status 1
    /// when the run fails.
    #[command(after_help = "Examples:
  plugboard sync run microsoft alice people --config config/plugboard.toml --dry-run
  plugboard sync run microsoft alice people --config config/plugboard.toml --full")]
    Run {
        /// The configuration file (required).
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
        /// The integration, as `[integrations.<name>]` names it, such as `microsoft`.
        integration: String,
        /// The connection's id in that integration, as the app chose it when connecting.
        connection_id: String,
        /// The sync to run, one of the provider's (`plugboard providers list` shows them).
        sync: String,
        /// Crawl from scratch instead of continuing from the checkpoint (default: continue).
        #[arg(long)]
        full: bool,
        /// Store nothing; print a sample of the records the run would save (default: store).
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Writes a connection's records of a model as JSON lines, oldest modification first.
    ///
    /// Each line is a record as `GET /records` returns it, with its `_metadata`. Reads the
    /// store a page at a time, so memory stays flat however many records there are.
    #[command(after_help = "Examples:
  plugboard records export microsoft alice Person --config config/plugboard.toml
  plugboard records export microsoft alice Person -c config/plugboard.toml -o people.jsonl")]
    Export {
        /// The configuration file (required).
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
        /// The integration, as `[integrations.<name>]` names it, such as `microsoft`.
        integration: String,
        /// The connection's id in that integration.
        connection_id: String,
        /// One of the provider's models, such as `Person`.
        model: String,
        /// Write to this file instead of standard output (the default).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

async fn state(config: &Path) -> Result<AppState, String> {
    let loaded = load(config)?;
    server::state(&loaded.config, &loaded.providers).await
}

pub async fn sync(command: SyncCommand) -> Result<(), String> {
    let SyncCommand::Run {
        config,
        integration,
        connection_id,
        sync,
        full,
        dry_run,
    } = command;
    let state = state(&config).await?;
    let resolved = state
        .integrations
        .get(&integration)
        .ok_or_else(|| format!("no integration `{integration}` in {}", config.display()))?
        .clone();
    let started = Instant::now();
    let ticker: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>> = Default::default();
    let show = |progress: Arc<Progress>| {
        if std::io::stderr().is_terminal() {
            *ticker.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(tokio::spawn(progress_line(progress, started)));
        }
    };
    let report = run_sync(
        &state,
        RunRequest {
            integration: resolved,
            key: ConnectionKey::new(&integration, &connection_id),
            sync: sync.clone(),
            mode: if full {
                SyncMode::Full
            } else {
                SyncMode::Incremental
            },
            dry_run,
            unless_succeeded_since: None,
        },
        Some(&show),
    )
    .await;
    state.connections.store().close().await;
    let report = report.map_err(|e| e.to_string())?;
    if let Some(ticker) = ticker.lock().unwrap_or_else(|e| e.into_inner()).take() {
        ticker.abort();
        eprint!("\r\x1b[2K");
    }
    let seconds = (report.finished_at - report.started_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    let rate = report.records as f64 / seconds.max(0.001);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{integration}/{connection_id} {sync}{}: {} in {seconds:.1}s — {} requests, {} records read ({rate:.0}/s)",
        report
            .run_id
            .map(|id| format!(" (run {id})"))
            .unwrap_or_default(),
        report.status.as_str(),
        report.requests,
        report.records
    );
    if dry_run {
        let _ = writeln!(
            out,
            "dry run: nothing was stored. A sample of the records it would save:"
        );
        for record in &report.sample {
            let line = serde_json::json!({"id": record.id, "data": record.data});
            let _ = writeln!(out, "{line}");
        }
    } else {
        let _ = writeln!(
            out,
            "added {}, updated {}, deleted {}",
            report.counts.added, report.counts.updated, report.counts.deleted
        );
    }
    match (report.status, report.error) {
        (RunStatus::Success, _) => Ok(()),
        (_, error) => Err(format!(
            "the run failed: {}",
            error.unwrap_or_else(|| "no reason given".to_owned())
        )),
    }
}

/// Redraws one status line on the terminal every 200 ms.
async fn progress_line(progress: Arc<Progress>, started: Instant) {
    let mut every = tokio::time::interval(Duration::from_millis(200));
    loop {
        every.tick().await;
        let requests = progress.requests.load(Ordering::Relaxed);
        let records = progress.records.load(Ordering::Relaxed);
        let rate = records as f64 / started.elapsed().as_secs_f64().max(0.001);
        eprint!("\r\x1b[2K{requests} requests, {records} records, {rate:.0} records/s");
        let _ = std::io::stderr().flush();
    }
}

pub async fn records(command: RecordsCommand) -> Result<(), String> {
    let RecordsCommand::Export {
        config,
        integration,
        connection_id,
        model,
        output,
    } = command;
    let state = state(&config).await?;
    let key = ConnectionKey::new(&integration, &connection_id);
    let connection = state
        .connections
        .get(&key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no connection `{connection_id}` in integration `{integration}`"))?;
    let mut sink: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create `{}`: {e}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut after = None;
    let mut count = 0u64;
    loop {
        let page = state
            .connections
            .store()
            .records(&RecordQuery {
                connection: connection.id.clone(),
                model: model.clone(),
                after,
                limit: EXPORT_PAGE,
                modified_after: None,
                actions: Vec::new(),
                ids: Vec::new(),
                newest_first: false,
                scan_limit: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        for record in page.records {
            writeln!(sink, "{}", record_json(record))
                .map_err(|e| format!("writing failed: {e}"))?;
            count += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    sink.flush().map_err(|e| format!("writing failed: {e}"))?;
    if let Some(path) = output {
        eprintln!("{count} record(s) written to {}", path.display());
    }
    Ok(())
}

/// `plugboard store copy`: the configured store into an empty one at `to`.
pub async fn copy_store(config_path: &Path, to: &str) -> Result<(), String> {
    let loaded = load(config_path)?;
    let config = &loaded.config;
    let target = plugboard_store::Location::from_url(to, 4).map_err(|e| format!("--to {e}"))?;
    if target == config.store {
        return Err("--to names the configured store itself".to_owned());
    }
    let from = server::open_store(config).await?;
    let to = server::open_store_at(config, &target).await?;
    eprintln!("copying {} to {}", config.store.display(), target.display());
    let mut shown = Instant::now();
    let copied = copy::copy(&from, &to, |progress| {
        let done = progress.copied == progress.total;
        if done || shown.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "  {}: {}/{}",
                progress.table, progress.copied, progress.total
            );
            shown = Instant::now();
        }
    })
    .await;
    from.close().await;
    to.close().await;
    let copied = copied.map_err(|e| format!("the copy stopped: {e}"))?;
    let rows: u64 = copied.iter().map(|(_, n)| n).sum();
    println!(
        "copied {rows} row(s); the counts of every table match. Point [store] url at the new \
         store and start the servers again."
    );
    Ok(())
}
