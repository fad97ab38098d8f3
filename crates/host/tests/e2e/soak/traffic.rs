//! Steady proxy traffic: a few clients calling `/v1.0/me` through the proxy for the fleet's
//! connections in turn for the whole run, each answer sorted into the provider's own (passed
//! through, whatever its status) and Plugboard's, whose error codes must be ones the faults
//! explain.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::fleet::Fleet;
use super::schedule::Revoked;
use crate::support::World;

/// Clients calling at once, and each one's pause between calls.
const CLIENTS: usize = 4;
const PAUSE: Duration = Duration::from_millis(40);

/// Plugboard's own answers that the faults explain: a refresh that failed while the token
/// endpoint was down, a connection whose grant was revoked, a provider that dropped the
/// connection or did not answer in time.
const EXPECTED_OWN: [(u16, &str); 4] = [
    (503, "refresh_failed"),
    (409, "needs_reconnect"),
    (502, "upstream_unreachable"),
    (504, "upstream_timeout"),
];

#[derive(Default)]
pub struct Proxied {
    /// `200`, `provider 503`, `plugboard 409 needs_reconnect`, … and how many.
    counts: BTreeMap<String, u64>,
    problems: Vec<String>,
}

impl Proxied {
    pub fn describe(&self) -> String {
        let total: u64 = self.counts.values().sum();
        let each: Vec<String> = self
            .counts
            .iter()
            .map(|(outcome, count)| format!("{count} {outcome}"))
            .collect();
        format!("{total}: {}", each.join(", "))
    }

    /// What the traffic saw that no fault explains.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.problems.clone();
        if self.counts.get("200").copied().unwrap_or_default() == 0 {
            problems.push("no proxy call succeeded during the run".to_owned());
        }
        problems
    }

    /// Sorts one answer; `revoked`: whether the connection's grant was revoked before the call.
    fn record(
        &mut self,
        connection: &str,
        user: &str,
        revoked: bool,
        outcome: Result<(StatusCode, Value), String>,
    ) {
        let (status, body) = match outcome {
            Ok(answer) => answer,
            Err(error) => {
                *self.counts.entry("no answer".to_owned()).or_default() += 1;
                self.problems
                    .push(format!("{connection}: the host did not answer: {error}"));
                return;
            }
        };
        if status == StatusCode::OK {
            *self.counts.entry("200".to_owned()).or_default() += 1;
            if body["id"] != user {
                self.problems.push(format!(
                    "{connection}: /v1.0/me answered another account: {}",
                    body["id"]
                ));
            }
            return;
        }
        // Graph's error bodies carry `innerError`; Plugboard's never do.
        if body["error"]["innerError"].is_object() {
            *self
                .counts
                .entry(format!("provider {}", status.as_u16()))
                .or_default() += 1;
            return;
        }
        let code = body["error"]["code"].as_str().unwrap_or("(no code)");
        *self
            .counts
            .entry(format!("plugboard {} {code}", status.as_u16()))
            .or_default() += 1;
        if code == "needs_reconnect" && !revoked {
            self.problems.push(format!(
                "{connection}: answered needs_reconnect, but its grant was not revoked: {body}"
            ));
        }
        if !EXPECTED_OWN.contains(&(status.as_u16(), code)) {
            self.problems.push(format!(
                "{connection}: Plugboard answered {status} that no fault explains: {body}"
            ));
        }
    }
}

pub struct Traffic {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    proxied: Arc<Mutex<Proxied>>,
}

impl Traffic {
    pub fn start(world: Arc<World>, fleet: Arc<Fleet>, revoked: Revoked) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let proxied: Arc<Mutex<Proxied>> = Arc::default();
        let clients = (0..CLIENTS)
            .map(|client| {
                let (world, fleet, stop) = (world.clone(), fleet.clone(), stop.clone());
                let (proxied, revoked) = (proxied.clone(), revoked.clone());
                tokio::spawn(async move {
                    let mut next = client * fleet.len() / CLIENTS;
                    while !stop.load(Ordering::SeqCst) {
                        let member = &fleet.members[next % fleet.len()];
                        next += 1;
                        let request = world.host.proxy(
                            Method::GET,
                            "microsoft",
                            &member.connection_id,
                            "/v1.0/me",
                        );
                        let outcome = reply_or_error(request).await;
                        // Read after the call: a grant revoked during it may be refused too
                        // (the schedule marks a grant before revoking it).
                        let revoked = revoked.lock().unwrap().contains(&member.connection_id);
                        proxied.lock().unwrap().record(
                            &member.connection_id,
                            &member.user_id,
                            revoked,
                            outcome,
                        );
                        tokio::time::sleep(PAUSE).await;
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            clients,
            proxied,
        }
    }

    pub async fn stop(self) -> Proxied {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.await.unwrap();
        }
        Arc::into_inner(self.proxied).unwrap().into_inner().unwrap()
    }
}

/// `support::reply`, with a transport error as an error rather than a panic: the host not answering
/// is something the soak counts and reports.
async fn reply_or_error(request: reqwest::RequestBuilder) -> Result<(StatusCode, Value), String> {
    let request = request.timeout(Duration::from_secs(60));
    match request.send().await {
        Err(error) => Err(error.to_string()),
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            Ok((
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ))
        }
    }
}
