-- Several `plugboard serve` replicas sharing one database.

-- When refreshing the connection's token started failing (Unix milliseconds), NULL while it
-- works: set and cleared by compare-and-swap, so each replica's failure or recovery is
-- announced once, not once per request or per replica.
ALTER TABLE connections ADD COLUMN refresh_failed_at INTEGER;

-- The run lease: which run may run this sync for this connection, and until when (Unix
-- microseconds). The owner is the run's id; the run renews the lease while it runs, so a
-- replica that dies frees it by expiry and a live replica's run is never taken over.
ALTER TABLE sync_states ADD COLUMN run_lease_owner TEXT;
ALTER TABLE sync_states ADD COLUMN run_lease_until INTEGER;

CREATE INDEX sync_states_by_run_lease ON sync_states (run_lease_owner);
