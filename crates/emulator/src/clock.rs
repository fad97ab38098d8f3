//! The virtual clock.
//!
//! Every expiry the emulator enforces (codes, access tokens, refresh-token inactivity, client
//! secrets, throttling windows) reads this clock, so a test can jump 90 days ahead with one
//! control call instead of waiting.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Moves the clock forward; returns the new virtual time.
    pub fn advance(&self, seconds: i64) -> DateTime<Utc> {
        self.offset_secs.fetch_add(seconds, Ordering::Relaxed);
        self.now()
    }

    pub fn offset_secs(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }
}
