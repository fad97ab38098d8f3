//! Request counters, so tests can assert how a client behaved (retries, concurrency, grants).

use std::sync::{Mutex, PoisonError};

use crate::control::types::Counters;

#[derive(Default)]
pub struct CounterSet {
    counters: Mutex<Counters>,
}

impl CounterSet {
    fn update(&self, change: impl FnOnce(&mut Counters)) {
        change(&mut self.counters.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn token_request(&self, grant_type: &str) {
        self.update(|c| *c.token_requests.entry(grant_type.to_owned()).or_default() += 1);
    }

    pub fn token_error(&self, aadsts: u32) {
        self.update(|c| *c.token_errors.entry(aadsts.to_string()).or_default() += 1);
    }

    pub fn client_credential(&self, credential: &str) {
        self.update(|c| {
            *c.client_credentials
                .entry(credential.to_owned())
                .or_default() += 1
        });
    }

    pub fn graph_request(&self, path: &str) {
        self.update(|c| *c.graph_requests.entry(path.to_owned()).or_default() += 1);
    }

    pub fn throttled(&self) {
        self.update(|c| c.throttled += 1);
    }

    /// Records the in-flight counts a Graph request arrived to (itself included).
    pub fn concurrency(&self, mailbox: &str, for_mailbox: u32, overall: u32) {
        self.update(|c| {
            let seen = c
                .max_concurrency_per_mailbox
                .entry(mailbox.to_owned())
                .or_default();
            *seen = (*seen).max(for_mailbox);
            c.max_concurrency = c.max_concurrency.max(overall);
        });
    }

    pub fn snapshot(&self) -> Counters {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn reset(&self) {
        self.update(|c| *c = Counters::default());
    }
}
