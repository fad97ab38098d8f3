//! Log lines on stderr, as text for people or as one JSON object per line for a log pipeline
//! (`[log] format`), filtered by `RUST_LOG` (default `info`).
//!
//! They never carry tokens or secrets: those live in `SecretString`s whose `Debug` is
//! redacted, and request logs name route patterns, not URIs (queries carry session tokens and
//! authorization codes). A request's lines carry its request id ([`with_request_id`]), and a
//! sync run's its run id, through the span they are written in.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderValue;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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
        LogFormat::Text => builder
            .map_event_format(|inner| WithRequestId { inner, json: false })
            .try_init(),
        // The spans' fields (a sync run's id) come with every line, as a list from the
        // outermost span in.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .map_event_format(|inner| WithRequestId { inner, json: true })
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

tokio::task_local! {
    /// The request the running task answers.
    static REQUEST_ID: HeaderValue;
}

/// Runs `future` as the request `id`: every line it logs carries the id.
///
/// A task-local, not a span: a span is made, formatted and entered at every poll for every
/// request, the proxy's included, which cost the proxy a fifth of its throughput at
/// concurrency 16 (BENCHMARKS.md); the task-local costs a swap per poll and is only read by a
/// line actually written. Not an `async fn`: that would be one more state machine around
/// `future`, as large as it and copied into place as it starts.
pub fn with_request_id<F: Future>(
    id: HeaderValue,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<HeaderValue, F> {
    REQUEST_ID.scope(id, future)
}

/// The line format, with the request id of the task that writes the line added: a top-level
/// `request_id` field of a JSON line, or ` request_id=…` at the end of a text line.
struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Ok(id) = REQUEST_ID.try_with(HeaderValue::clone) else {
            return self.inner.format_event(ctx, writer, event);
        };
        // Request ids are letters, digits and `-_.:/+=@` (api/requests.rs): nothing to escape.
        let id = id.to_str().unwrap_or_default();
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        if self.json {
            match line.strip_prefix('{') {
                Some(rest) => write!(writer, "{{\"request_id\":\"{id}\",{rest}"),
                None => writer.write_str(&line),
            }
        } else {
            match line.strip_suffix('\n') {
                Some(text) => writeln!(writer, "{text} request_id={id}"),
                None => write!(writer, "{line} request_id={id}"),
            }
        }
    }
}
