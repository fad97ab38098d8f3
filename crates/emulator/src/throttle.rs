//! Graph throttling per (app, mailbox), like Outlook's: a cap on concurrent requests and a
//! request budget per window. Windows follow the virtual clock, so advancing it refills them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

use crate::control::types::ThrottleSettings;
use crate::counters::CounterSet;

#[derive(Default, Clone)]
pub struct Throttle {
    loads: Arc<Mutex<Loads>>,
}

#[derive(Default)]
struct Loads {
    per_mailbox: HashMap<(String, String), MailboxLoad>,
    in_flight: u32,
}

struct MailboxLoad {
    in_flight: u32,
    window_start: DateTime<Utc>,
    requests: u32,
}

/// Why a request was refused, and when to come back.
#[derive(Debug)]
pub enum Throttled {
    Concurrency { retry_after_secs: u64 },
    Budget { retry_after_secs: u64 },
}

/// A request in flight; dropping it frees its concurrency slot.
pub struct Admission {
    throttle: Throttle,
    key: (String, String),
}

impl Throttle {
    fn loads(&self) -> MutexGuard<'_, Loads> {
        self.loads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn admit(
        &self,
        client_id: &str,
        mailbox: &str,
        settings: &ThrottleSettings,
        now: DateTime<Utc>,
        counters: &CounterSet,
    ) -> Result<Admission, Throttled> {
        let key = (client_id.to_owned(), mailbox.to_owned());
        let mut loads = self.loads();
        let overall = loads.in_flight + 1;
        let load = loads.per_mailbox.entry(key.clone()).or_insert(MailboxLoad {
            in_flight: 0,
            window_start: now,
            requests: 0,
        });
        counters.concurrency(mailbox, load.in_flight + 1, overall);
        if load.in_flight >= settings.max_concurrent_per_mailbox {
            let retry_after_secs = settings.retry_after_secs.unwrap_or(1);
            return Err(Throttled::Concurrency { retry_after_secs });
        }
        let window = TimeDelta::seconds(settings.window_secs as i64);
        if now - load.window_start >= window {
            load.window_start = now;
            load.requests = 0;
        }
        if load.requests >= settings.requests_per_window {
            let remaining = (load.window_start + window - now).num_milliseconds();
            let retry_after_secs = settings
                .retry_after_secs
                .unwrap_or_else(|| (remaining as u64).div_ceil(1000).max(1));
            return Err(Throttled::Budget { retry_after_secs });
        }
        load.requests += 1;
        load.in_flight += 1;
        loads.in_flight += 1;
        Ok(Admission {
            throttle: self.clone(),
            key,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut loads = self.throttle.loads();
        loads.in_flight -= 1;
        if let Some(load) = loads.per_mailbox.get_mut(&self.key) {
            load.in_flight -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ThrottleSettings {
        ThrottleSettings {
            max_concurrent_per_mailbox: 2,
            requests_per_window: 3,
            window_secs: 60,
            retry_after_secs: None,
        }
    }

    #[test]
    fn concurrency_slots_free_on_drop() {
        let (throttle, counters, now) = (Throttle::default(), CounterSet::default(), Utc::now());
        let first = throttle
            .admit("app", "mbx", &settings(), now, &counters)
            .unwrap();
        let _second = throttle
            .admit("app", "mbx", &settings(), now, &counters)
            .unwrap();
        assert!(matches!(
            throttle.admit("app", "mbx", &settings(), now, &counters),
            Err(Throttled::Concurrency {
                retry_after_secs: 1
            })
        ));
        assert!(
            throttle
                .admit("other-app", "mbx", &settings(), now, &counters)
                .is_ok()
        );
        drop(first);
        assert!(
            throttle
                .admit("app", "mbx", &settings(), now, &counters)
                .is_ok()
        );
        assert_eq!(counters.snapshot().max_concurrency_per_mailbox["mbx"], 3);
    }

    #[test]
    fn budget_refills_with_the_next_window() {
        let (throttle, counters, now) = (Throttle::default(), CounterSet::default(), Utc::now());
        for _ in 0..3 {
            throttle
                .admit("app", "mbx", &settings(), now, &counters)
                .unwrap();
        }
        let later = now + TimeDelta::seconds(20);
        assert!(matches!(
            throttle.admit("app", "mbx", &settings(), later, &counters),
            Err(Throttled::Budget {
                retry_after_secs: 40
            })
        ));
        assert!(
            throttle
                .admit(
                    "app",
                    "mbx",
                    &settings(),
                    now + TimeDelta::seconds(60),
                    &counters
                )
                .is_ok()
        );
    }
}
