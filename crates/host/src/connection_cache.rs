//! The connections read recently, by integration and then connection id.
//!
//! Two levels rather than one map keyed by [`ConnectionKey`], so that a lookup borrows the
//! names it is given instead of building a key: the proxy looks a connection up on every
//! request, and building the key's two strings cost two allocations each time
//! (BENCHMARKS.md, "Proxy overhead").

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use plugboard_store::{Connection, ConnectionKey};

#[derive(Default)]
pub struct ConnectionCache {
    by_integration: RwLock<HashMap<String, HashMap<String, Cached>>>,
}

struct Cached {
    connection: Arc<Connection>,
    read_at: Instant,
}

impl ConnectionCache {
    /// The connection, if it was put here less than `ttl` ago.
    pub fn get(
        &self,
        integration: &str,
        connection_id: &str,
        ttl: Duration,
    ) -> Option<Arc<Connection>> {
        self.by_integration
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(integration)?
            .get(connection_id)
            .filter(|cached| cached.read_at.elapsed() < ttl)
            .map(|cached| cached.connection.clone())
    }

    /// Keeps `connection` as read now.
    pub fn put(&self, connection: Arc<Connection>) {
        let key = &connection.key;
        let mut by_integration = self
            .by_integration
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let connections = match by_integration.get_mut(&key.integration) {
            Some(connections) => connections,
            None => by_integration.entry(key.integration.clone()).or_default(),
        };
        connections.insert(
            key.connection_id.clone(),
            Cached {
                connection,
                read_at: Instant::now(),
            },
        );
    }

    pub fn remove(&self, key: &ConnectionKey) {
        let mut by_integration = self
            .by_integration
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(connections) = by_integration.get_mut(&key.integration) {
            connections.remove(&key.connection_id);
            if connections.is_empty() {
                by_integration.remove(&key.integration);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_store::testing;

    fn connection(integration: &str, id: &str) -> Arc<Connection> {
        Arc::new(testing::connection(integration, id))
    }

    #[test]
    fn connections_are_found_by_both_names_until_removed_or_stale() {
        let cache = ConnectionCache::default();
        let ttl = Duration::from_secs(60);
        cache.put(connection("m", "a"));
        cache.put(connection("m", "b"));
        cache.put(connection("n", "a"));
        assert_eq!(cache.get("m", "a", ttl).unwrap().id, "row-a");
        assert_eq!(
            cache.get("n", "a", ttl).unwrap().key,
            ConnectionKey::new("n", "a")
        );
        assert!(cache.get("m", "c", ttl).is_none());
        assert!(cache.get("m", "a", Duration::ZERO).is_none(), "stale");

        cache.remove(&ConnectionKey::new("m", "a"));
        assert!(cache.get("m", "a", ttl).is_none());
        assert!(cache.get("m", "b", ttl).is_some(), "only the one removed");
        cache.remove(&ConnectionKey::new("n", "a"));
        let by_integration = cache.by_integration.read().unwrap();
        assert!(
            !by_integration.contains_key("n"),
            "an empty integration leaves no entry"
        );
    }
}
