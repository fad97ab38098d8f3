//! Log lines on stderr, as text for people or as one JSON object per line for a log pipeline
//! (`[log] format`), filtered by `RUST_LOG` (default `info`).
//!
//! They never carry tokens or secrets: those live in `SecretString`s whose `Debug` is
//! redacted, and request logs name route patterns, not URIs (queries carry session tokens and
//! authorization codes). A request's lines carry its request id, and a sync run's its run id,
//! through the spans they are written in.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Whether lines are JSON: then even a failure to start is written as one.
static JSON: AtomicBool = AtomicBool::new(false);

/// Installs the process's subscriber; the first call wins.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        // The spans' fields (a request's id, a run's id) come with every line, as a list from
        // the outermost span in.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
    if installed.is_ok() {
        JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    }
}

/// Why a command failed, as its last line: a log line when logs are JSON, so that every line
/// parses; plain text otherwise.
pub fn failure(message: &str) {
    if JSON.load(Ordering::Relaxed) {
        tracing::error!("{message}");
    } else {
        eprintln!("{message}");
    }
}
