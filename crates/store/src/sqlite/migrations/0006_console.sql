-- The operator dashboard.

-- Dashboard sign-ins, by the SHA-256 of the session cookie (the cookie itself is only ever in
-- the operator's browser). In the database, so every process knows a sign-in and signing out
-- ends it everywhere. Times are Unix milliseconds, as for connect sessions.
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);

-- Whether the latest finished run of the sync failed, kept by every write that finishes or
-- fails a run, in its transaction: a connection's health is then a probe of its sync states
-- (through the partial indexes below, which hold only the failing and paused ones) instead of
-- a search of its runs, so the dashboard lists and counts 10,000 connections cheaply.
ALTER TABLE sync_states ADD COLUMN last_run_failed INTEGER NOT NULL DEFAULT 0;

UPDATE sync_states SET last_run_failed = COALESCE((
    SELECT runs.status = 'failed' FROM sync_runs AS runs
    WHERE runs.connection_row = sync_states.connection_row
        AND runs.sync_name = sync_states.sync_name AND runs.status <> 'running'
    ORDER BY runs.started_at DESC, runs.rowid DESC LIMIT 1), 0);

CREATE INDEX sync_states_failing ON sync_states (connection_row) WHERE last_run_failed = TRUE;
CREATE INDEX sync_states_paused ON sync_states (connection_row) WHERE paused = TRUE;

-- One log of operations across the deployment (token refreshes, sync runs, actions, webhook
-- deliveries, connections created and deleted), newest first by id: AUTOINCREMENT never reuses
-- an id, so ids follow insertion and page the log. Summaries never hold a secret, so nothing
-- here is sealed. Times are Unix microseconds, as for runs; entries older than 30 days are
-- purged.
CREATE TABLE activity (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    succeeded INTEGER NOT NULL,
    integration TEXT,
    connection_id TEXT,
    summary TEXT NOT NULL,
    -- What the entry is about, to look it up: a run's or a delivery's id.
    reference TEXT,
    at INTEGER NOT NULL
);

-- The dashboard's filters page through the log by id within an integration or a connection.
CREATE INDEX activity_by_integration ON activity (integration, id);
CREATE INDEX activity_by_connection ON activity (connection_id, id);
CREATE INDEX activity_by_time ON activity (at);

-- The event as signed and sent, so the dashboard can deliver it again unchanged. Deliveries
-- recorded before have none (empty).
ALTER TABLE webhook_deliveries ADD COLUMN body TEXT NOT NULL DEFAULT '';
