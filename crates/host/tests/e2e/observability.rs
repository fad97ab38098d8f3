//! What the operator sees: Prometheus metrics and health checks on the management listener,
//! JSON log lines with request ids, and never a secret in them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::secrets::{secrets, token_shaped};
use crate::support::{StoreKind, World, webhook_receiver};
use crate::syncs::{finished_run, syncing};

/// A connection id no label may carry.
const CONNECTION: &str = "conn-7f3a9c";

/// `/metrics`, read by [`parse_exposition`]: each sample by its name and sorted labels, e.g.
/// `plugboard_sync_runs_total{integration=microsoft,outcome=success,sync=people}`.
async fn scrape(world: &World) -> (String, HashMap<String, f64>) {
    let (status, text) = management_get(world, "/metrics").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    (text, samples)
}

/// A strict reader of Prometheus' text exposition format (version 0.0.4): every line is a
/// `# HELP`/`# TYPE` comment or a sample `name{label="value",…} value`, with `\\`, `\"` and
/// `\n` escapes in label values (which may hold any other character, braces included), and
/// every sample belongs to a family declared by `# TYPE` (a histogram's `_bucket`, `_sum` and
/// `_count` to its histogram). The crates that parse it drop lines they misread, so a broken
/// exposition would pass unnoticed.
fn parse_exposition(text: &str) -> Result<HashMap<String, f64>, String> {
    let mut families: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    families.insert(name.to_owned(), kind.to_owned());
                }
                (Some("HELP"), Some(_), Some(_)) => {}
                _ => return Err(format!("a comment that is neither HELP nor TYPE: {line}")),
            }
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .ok_or_else(|| format!("a sample without a value: {line}"))?;
        let name = &line[..name_end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| families.get(*base).is_some_and(|kind| kind == "histogram"))
            .unwrap_or(name);
        if !families.contains_key(family) {
            return Err(format!("a sample of no declared family: {line}"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            rest = inner;
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (label, after) = rest
                    .split_once("=\"")
                    .ok_or_else(|| format!("a label without a quoted value: {line}"))?;
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            _ => return Err(format!("a bad escape: {line}")),
                        },
                        Some((_, c)) => value.push(c),
                        None => return Err(format!("an unterminated label value: {line}")),
                    }
                };
                labels.push(format!("{}={value}", label.trim_start_matches(',')));
                rest = &after[end + 1..];
            }
        }
        let value = rest
            .trim()
            .split(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("a sample without a number: {line}"))?;
        if name.ends_with("_bucket") && family != name {
            continue;
        }
        labels.sort();
        let key = format!("{name}{{{}}}", labels.join(","));
        if samples.insert(key, value).is_some() {
            return Err(format!("a sample given twice: {line}"));
        }
    }
    Ok(samples)
}

async fn management_get(world: &World, path: &str) -> (StatusCode, String) {
    let base = world
        .host
        .management_url
        .as_ref()
        .expect("a management listener");
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_one_refresh_three_proxied_calls_and_one_sync_run() {
    let (hook_url, received) = webhook_receiver().await;
    let world = World::start_with(40, &syncing(&hook_url)).await;
    world.connect("microsoft", CONNECTION).await;
    let run = finished_run(&world, CONNECTION, "").await;
    assert_eq!(run["status"], "success", "{run}");

    let (refreshed, body) = world.host.force_refresh("microsoft", CONNECTION).await;
    assert_eq!(refreshed, StatusCode::OK, "{body}");
    for _ in 0..3 {
        let (status, body) = world
            .host
            .proxy_get("microsoft", CONNECTION, "/v1.0/me")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let (text, samples) = scrape(&world).await;
    let value = |key: &str| samples.get(key).copied();
    assert_eq!(
        value("plugboard_token_refreshes_total{integration=microsoft,outcome=success}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("plugboard_proxy_requests_total{integration=microsoft,status=200}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value("plugboard_proxy_upstream_duration_seconds_count{integration=microsoft}"),
        Some(3.0),
        "three attempts timed:\n{text}"
    );
    assert_eq!(
        value("plugboard_http_requests_total{method=GET,route=/proxy/{*path},status=200}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value("plugboard_http_requests_total{method=POST,route=/connect/sessions,status=201}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("plugboard_sync_runs_total{integration=microsoft,outcome=success,sync=people}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("plugboard_sync_run_duration_seconds_count{integration=microsoft,sync=people}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("plugboard_records_written_total{action=added,integration=microsoft}"),
        Some(run["added"].as_f64().unwrap()),
        "{text}"
    );
    assert_eq!(
        value("plugboard_records_written_total{action=deleted,integration=microsoft}"),
        Some(0.0),
        "{text}"
    );
    // Each event the receiver took (the connection's, the run's) is counted once delivered.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (text, samples) = scrape(&world).await;
        let received = received.lock().unwrap().len() as f64;
        let delivered = samples.get("plugboard_webhook_deliveries_total{outcome=delivered}");
        if received >= 2.0 && delivered == Some(&received) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{received} events received, deliveries counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !text.contains(CONNECTION),
        "a label carries the connection id:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_follow_the_store() {
    let world = World::start_on(
        StoreKind::PostgresThroughRelay,
        10,
        crate::support::SYNCS_OFF,
    )
    .await;
    let (status, body) = management_get(&world, "/health/live").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = management_get(&world, "/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["integrations"], 3, "{ready}");
    // The public API does not serve them.
    let (status, _) = world.host.call(reqwest::Method::GET, "/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    world.relay.as_ref().unwrap().cut();
    let (status, body) = management_get(&world, "/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let not_ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(not_ready["status"], "not_ready", "{not_ready}");
    let (status, _) = management_get(&world, "/health/live").await;
    assert_eq!(status, StatusCode::OK, "alive while the store is away");

    world.relay.as_ref().unwrap().restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    while management_get(&world, "/health/ready").await.0 != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "not ready again after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    world.finish().await;
}

/// An integration without `offline_access`, whose start-up warning must be a JSON line too.
const JSON_LOGS: &str = r#"
[integrations.microsoft.syncs.people]
enabled = true
frequency = "1h"

[integrations.admin.syncs.people]
enabled = false

[integrations.echo.syncs.people]
enabled = false

[integrations.short]
provider = "microsoft-people"
client_id = "00000000-0000-0000-0000-000000000001"
client_secret = "not-used-anywhere-0123456789"
scopes = ["People.Read"]

[log]
format = "json"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_parse_carry_the_request_id_and_no_secret() {
    let world = World::start_with(20, JSON_LOGS).await;
    world.connect("microsoft", CONNECTION).await;
    finished_run(&world, CONNECTION, "").await;
    let (refreshed, _) = world.host.force_refresh("microsoft", CONNECTION).await;
    assert_eq!(refreshed, StatusCode::OK);

    // A caller's id is kept and echoed, on a routed request and on a proxied one.
    let response = world
        .host
        .api(reqwest::Method::GET, "/connections?integration=microsoft")
        .header("x-request-id", "caller-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "caller-id-1");
    let response = world
        .host
        .proxy(reqwest::Method::GET, "microsoft", CONNECTION, "/v1.0/me")
        .header("x-request-id", "caller-id-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], "caller-id-2");
    // Without one, or with one that is not a plain token, the server makes one.
    let response = world
        .host
        .api(reqwest::Method::GET, "/connections?integration=microsoft")
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(made.len(), 32, "{made}");

    let secrets = secrets(&world, &[("microsoft", CONNECTION)]).await;
    let logs = world.host.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let spans_of = |line: &Value, name: &str, field: &str| -> Vec<String> {
        line["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|span| span["name"] == name)
            .filter_map(|span| span[field].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        lines.iter().any(|line| line["level"] == "WARN"
            && line["message"].as_str().is_some_and(
                |m| m.contains("integrations.short.scopes") && m.contains("offline_access")
            )),
        "the start-up warning is a JSON line:\n{logs}"
    );
    for id in ["caller-id-1", "caller-id-2", made.as_str()] {
        assert!(
            lines
                .iter()
                .any(|line| line["request_id"] == id && line["message"] == "request"),
            "no line of request {id}:\n{logs}"
        );
    }
    // A line written deep inside a request carries its id too: the forced refresh's.
    assert!(
        lines.iter().any(|line| line["message"] == "token refreshed"
            && line["request_id"].as_str().is_some_and(|id| id.len() == 32)),
        "the refresh's line has no request id:\n{logs}"
    );
    let run_id = world.host.latest_run(CONNECTION).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        lines.iter().any(
            |line| spans_of(line, "sync_run", "run_id") == [run_id.as_str()]
                && line["message"] == "sync run finished"
        ),
        "the run's lines carry its id:\n{logs}"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
    }
    for shape in ["0.A", "1.A"] {
        assert!(
            !token_shaped(logs.as_bytes(), shape),
            "a `{shape}…` token is in the logs"
        );
    }
}
