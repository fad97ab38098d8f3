//! Webhooks: sync and connection events POSTed to `[webhooks] url`, signed, retried, recorded.
//!
//! The receiver checks `X-Plugboard-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed
//! with the secret>`; `X-Plugboard-Timestamp` (Unix seconds, also inside the body as
//! `created_at`) lets it refuse old replays. `X-Plugboard-Event-Id` (also the body's `id`) is
//! the same on every attempt at one event, so a receiver drops a retry it already processed;
//! each event is made once, by the process that saw it happen (a refresh failure's by the
//! compare-and-swap that recorded it), so replicas never deliver one twice. Delivery runs in its own task, so a slow receiver
//! never holds up a sync; each attempt's outcome is kept in the store.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::activity;
use crate::config::WebhooksConfig;
use crate::telemetry::metrics;
use plugboard_store::{ActivityKind, ConnectionKey, Store, WebhookDelivery};

/// Attempts per event, and the wait before the second (doubling after each failure).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(10);

pub const SIGNATURE_HEADER: &str = "X-Plugboard-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Plugboard-Timestamp";
pub const EVENT_ID_HEADER: &str = "X-Plugboard-Event-Id";

pub struct Webhooks {
    /// Where events go and the key that signs them: `[webhooks]` as last (re)loaded. A
    /// delivery reads both once, so its attempts all go to one place with one signature.
    target: RwLock<Arc<WebhooksConfig>>,
    http: reqwest::Client,
    store: Arc<dyn Store>,
}

impl Webhooks {
    pub fn new(config: &WebhooksConfig, http: reqwest::Client, store: Arc<dyn Store>) -> Self {
        Webhooks {
            target: RwLock::new(Arc::new(config.clone())),
            http,
            store,
        }
    }

    /// Sends the next events to `[webhooks]` of a reloaded configuration.
    pub fn reconfigure(&self, config: &WebhooksConfig) {
        *self.target.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config.clone());
    }

    /// Queues the event for delivery.
    pub fn send(self: &Arc<Self>, event_type: &str, data: Value) {
        let this = self.clone();
        let event_type = event_type.to_owned();
        tokio::spawn(async move { this.deliver(event_type, data).await });
    }

    /// Sends an event again as it was first sent — the same body, id and signature, so a
    /// receiver that did process it drops it — with a full round of attempts.
    pub fn redeliver(self: &Arc<Self>, mut delivery: WebhookDelivery) {
        let this = self.clone();
        delivery.delivered = false;
        tokio::spawn(async move { this.attempt(delivery).await });
    }

    async fn deliver(&self, event_type: String, data: Value) {
        let created_at = Utc::now();
        let id = uuid::Uuid::new_v4().to_string();
        let body = event_body(&id, &event_type, created_at, data);
        let delivery = WebhookDelivery {
            id,
            event_type,
            created_at,
            attempts: 0,
            status: None,
            error: None,
            delivered: false,
            body,
        };
        self.attempt(delivery).await;
    }

    /// Up to [`ATTEMPTS`] attempts, each recorded, then one activity entry for the outcome.
    async fn attempt(&self, mut delivery: WebhookDelivery) {
        let target = self
            .target
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let signature = format!(
            "sha256={}",
            hex(&hmac_sha256(
                target.secret.expose_secret().as_bytes(),
                delivery.body.as_bytes()
            ))
        );
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            delivery.attempts += 1;
            let sent = self
                .http
                .post(target.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .header(
                    TIMESTAMP_HEADER,
                    delivery.created_at.timestamp().to_string(),
                )
                .header(EVENT_ID_HEADER, &delivery.id)
                .timeout(TIMEOUT)
                .body(delivery.body.clone())
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status();
                    delivery.status = Some(status.as_u16());
                    delivery.delivered = status.is_success();
                    delivery.error =
                        (!status.is_success()).then(|| format!("the receiver answered {status}"));
                }
                Err(error) => {
                    delivery.status = None;
                    delivery.error = Some(if error.is_timeout() {
                        "timed out".to_owned()
                    } else {
                        "could not reach the receiver".to_owned()
                    });
                }
            }
            if let Err(error) = self.store.save_webhook_delivery(&delivery).await {
                tracing::warn!(%error, "recording a webhook delivery failed");
            }
            if delivery.delivered {
                break;
            }
        }
        metrics::webhook_delivery(delivery.delivered);
        if !delivery.delivered {
            tracing::warn!(event = %delivery.event_type, attempts = delivery.attempts, error = ?delivery.error, "a webhook event could not be delivered");
        }
        let attempts = match delivery.attempts {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        let summary = match (&delivery.error, delivery.delivered) {
            (_, true) => format!(
                "`{}` delivered ({}) after {attempts}",
                delivery.event_type,
                delivery.status.unwrap_or_default(),
            ),
            (error, false) => format!(
                "`{}` not delivered after {attempts}: {}",
                delivery.event_type,
                error.as_deref().unwrap_or("no answer")
            ),
        };
        activity::record(
            self.store.as_ref(),
            ActivityKind::WebhookDelivery,
            delivery.delivered,
            event_connection(&delivery.body).as_ref(),
            summary,
            Some(delivery.id.clone()),
        )
        .await;
    }
}

/// An event's body: its id, type and time around the event's data. The receiver checks the
/// signature over exactly this text.
fn event_body(id: &str, event_type: &str, created_at: DateTime<Utc>, data: Value) -> String {
    json!({
        "id": id,
        "type": event_type,
        "created_at": created_at,
        "data": data,
    })
    .to_string()
}

/// The connection an event is about (`data.integration` and `data.connection_id`), if any.
fn event_connection(body: &str) -> Option<ConnectionKey> {
    let event: Value = serde_json::from_str(body).ok()?;
    let data = event.get("data")?;
    Some(ConnectionKey::new(
        data.get("integration")?.as_str()?,
        data.get("connection_id")?.as_str()?,
    ))
}

/// HMAC-SHA256 (RFC 2104) on the workspace's `sha2`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| -> [u8; BLOCK] { block.map(|b| b ^ byte) };
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 2 and 6: a short key, and a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
