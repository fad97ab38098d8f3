//! Prometheus metrics, recorded through the `metrics` facade wherever things happen and
//! rendered by its Prometheus exporter on the management listener.
//!
//! Every metric is named here, once, with the function that records it, so that the
//! exposition stays one documented set. Labels take only bounded values: route patterns,
//! integration and sync names from the configuration, statuses and outcomes. Never a
//! connection id, a URL or anything a caller chooses freely.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::{
    Counter, Histogram, SharedString, counter, describe_counter, describe_histogram, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use plugboard_store::RunCounts;

const HTTP_REQUESTS: &str = "plugboard_http_requests_total";
const HTTP_DURATION: &str = "plugboard_http_request_duration_seconds";
const PROXY_REQUESTS: &str = "plugboard_proxy_requests_total";
const UPSTREAM_DURATION: &str = "plugboard_proxy_upstream_duration_seconds";
const TOKEN_REFRESHES: &str = "plugboard_token_refreshes_total";
const SYNC_RUNS: &str = "plugboard_sync_runs_total";
const SYNC_DURATION: &str = "plugboard_sync_run_duration_seconds";
const RECORDS_WRITTEN: &str = "plugboard_records_written_total";
const WEBHOOK_DELIVERIES: &str = "plugboard_webhook_deliveries_total";
const RUN_START_DELAY: &str = "plugboard_sync_start_delay_seconds";

/// Histogram buckets for request and upstream latencies: 1 ms to 30 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Histogram buckets for sync runs and how late they start: 1 s to 6 h.
const LONG_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 21600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Makes this process record metrics and answers the handle that renders them. Until it is
/// called (in commands other than `serve` and `dev`), recording does nothing.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(SYNC_DURATION.into()), &LONG_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(RUN_START_DELAY.into()), &LONG_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                })
                .expect("the bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route pattern and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request (to its response head), by method and route pattern."
    );
    describe_counter!(
        PROXY_REQUESTS,
        "Proxied requests that reached the provider, by integration and the provider's final status."
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        metrics::Unit::Seconds,
        "Time the provider took to answer one proxied attempt (to its response head), by integration."
    );
    describe_counter!(
        TOKEN_REFRESHES,
        "Refresh token redemptions, by integration and outcome (success, superseded, transient_error, misconfigured, refused)."
    );
    describe_counter!(
        SYNC_RUNS,
        "Finished sync runs, by integration, sync and outcome (success, failed)."
    );
    describe_histogram!(
        SYNC_DURATION,
        metrics::Unit::Seconds,
        "Duration of sync runs, by integration and sync."
    );
    describe_counter!(
        RECORDS_WRITTEN,
        "Records written by sync runs, by integration and action (added, updated, deleted)."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook events, by outcome once every attempt is made (delivered, failed)."
    );
    describe_histogram!(
        RUN_START_DELAY,
        metrics::Unit::Seconds,
        "How late scheduled sync runs start after they fall due, by integration and sync."
    );
}

/// Standard methods by name; any other is `other`, so callers cannot add label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `"100"` to `"599"`, made once, so that a status label costs no allocation per request.
static STATUS_LABELS: LazyLock<Vec<String>> =
    LazyLock::new(|| (100..600).map(|status: u16| status.to_string()).collect());

fn status_label(status: StatusCode) -> SharedString {
    match STATUS_LABELS.get(usize::from(status.as_u16()).wrapping_sub(100)) {
        Some(label) => SharedString::const_str(label),
        None => SharedString::from(status.as_str().to_owned()),
    }
}

// The metrics of every request — and every proxied one, the hot path — come from handles kept
// per worker thread by their labels: the registry is looked up once per label set and thread,
// instead of a key built (a list of labels, allocated) and hashed on every request. Handles are
// only kept once the recorder is installed; before, the macros hand out ones that do nothing.
/// A method and status's request handles, by route pattern.
type ByRoute = HashMap<String, (Counter, Histogram)>;

thread_local! {
    static HTTP_HANDLES: RefCell<HashMap<(&'static str, u16), ByRoute>> = RefCell::default();
    static PROXY_HANDLES: RefCell<HashMap<u16, HashMap<String, Counter>>> = RefCell::default();
    static UPSTREAM_HANDLES: RefCell<HashMap<String, Histogram>> = RefCell::default();
}

fn installed() -> bool {
    HANDLE.get().is_some()
}

/// One answered API request; `route` is its pattern (`/connections/{connection_id}`).
pub fn http_request(method: &Method, route: SharedString, status: StatusCode, elapsed: Duration) {
    let method = method_label(method);
    let make = || {
        (
            counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status_label(status)),
            histogram!(HTTP_DURATION, "method" => method, "route" => route.clone()),
        )
    };
    let record = |(counter, histogram): &(Counter, Histogram)| {
        counter.increment(1);
        histogram.record(elapsed);
    };
    if !installed() {
        return record(&make());
    }
    HTTP_HANDLES.with_borrow_mut(|handles| {
        let by_route = handles.entry((method, status.as_u16())).or_default();
        match by_route.get(&*route) {
            Some(handles) => record(handles),
            None => record(by_route.entry(route.to_string()).or_insert_with(make)),
        }
    });
}

/// A proxied request answered by the provider, with the status the caller got.
pub fn proxied(integration: &str, status: StatusCode) {
    let make = || counter!(PROXY_REQUESTS, "integration" => integration.to_owned(), "status" => status_label(status));
    if !installed() {
        return make().increment(1);
    }
    PROXY_HANDLES.with_borrow_mut(|handles| {
        let by_integration = handles.entry(status.as_u16()).or_default();
        match by_integration.get(integration) {
            Some(counter) => counter.increment(1),
            None => by_integration
                .entry(integration.to_owned())
                .or_insert_with(make)
                .increment(1),
        }
    });
}

/// One attempt at the provider, from sending to its response head.
pub fn upstream_latency(integration: &str, elapsed: Duration) {
    let make = || histogram!(UPSTREAM_DURATION, "integration" => integration.to_owned());
    if !installed() {
        return make().record(elapsed);
    }
    UPSTREAM_HANDLES.with_borrow_mut(|handles| match handles.get(integration) {
        Some(histogram) => histogram.record(elapsed),
        None => handles
            .entry(integration.to_owned())
            .or_insert_with(make)
            .record(elapsed),
    });
}

/// One redemption of a refresh token at the provider.
pub fn token_refresh(integration: &str, outcome: &'static str) {
    counter!(TOKEN_REFRESHES, "integration" => integration.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// A sync run that finished, with what it wrote.
pub fn sync_run(
    integration: &str,
    sync: &str,
    succeeded: bool,
    elapsed: Duration,
    counts: RunCounts,
) {
    let outcome = if succeeded { "success" } else { "failed" };
    counter!(SYNC_RUNS, "integration" => integration.to_owned(), "sync" => sync.to_owned(), "outcome" => outcome)
        .increment(1);
    histogram!(SYNC_DURATION, "integration" => integration.to_owned(), "sync" => sync.to_owned())
        .record(elapsed);
    for (action, count) in [
        ("added", counts.added),
        ("updated", counts.updated),
        ("deleted", counts.deleted),
    ] {
        counter!(RECORDS_WRITTEN, "integration" => integration.to_owned(), "action" => action)
            .increment(count);
    }
}

/// A webhook event after its last attempt.
pub fn webhook_delivery(delivered: bool) {
    let outcome = if delivered { "delivered" } else { "failed" };
    counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// A scheduled run starting `late` after it fell due.
pub fn run_start_delay(integration: &str, sync: &str, late: Duration) {
    histogram!(RUN_START_DELAY, "integration" => integration.to_owned(), "sync" => sync.to_owned())
        .record(late);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_the_codes_digits() {
        for status in [
            StatusCode::OK,
            StatusCode::NOT_FOUND,
            StatusCode::from_u16(599).unwrap(),
        ] {
            assert_eq!(&*status_label(status), status.as_str());
        }
    }
}
