//! Changes made through other replicas, seen here within a second.
//!
//! Each process caches connections (the proxy's hot path) and keeps its scheduler's view of
//! every sync in memory. The store keeps a log of connections changed through any process
//! (saved, deleted, marked for reconnect, a sync paused, resumed or re-timed); this task reads
//! it a few times a second and drops or reloads what it holds of each changed connection, so
//! a connection deleted through one replica is refused by every other one at once, not after
//! the cache's lifetime.

use std::time::Duration;

use crate::state::AppState;

/// How often the change log is read: well inside the one second a change may take to show.
const POLL: Duration = Duration::from_millis(250);

/// Follows the change log until the process ends.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let store = state.connections.store().clone();
        let mut position = 0;
        let mut every = tokio::time::interval(POLL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let changes = match store.connection_changes(position).await {
                Ok(changes) => changes,
                Err(error) => {
                    tracing::debug!(%error, "reading the connection change log failed");
                    continue;
                }
            };
            for key in &changes.keys {
                state.connections.forget(key);
                if let Err(error) = state.syncs.schedule.reload(&state, key).await {
                    tracing::debug!(%error, "reloading a changed connection's syncs failed");
                }
            }
            position = changes.position;
        }
    })
}
