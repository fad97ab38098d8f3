-- Syncs and their records. Times are Unix microseconds (UTC). Rows hang off the connection's
-- row identity, so deleting a connection deletes its records, crawls, sync state and runs.

CREATE TABLE records (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    -- The provider's id, byte for byte.
    record_id TEXT NOT NULL,
    -- The JSON payload: a `pb1:` ciphertext bound to this record when `sealed`, else plain JSON.
    payload TEXT NOT NULL,
    sealed INTEGER NOT NULL,
    -- SHA-256 of the record's identity and its JSON payload: an unchanged record is detected
    -- without decrypting anything and is never rewritten.
    hash BLOB NOT NULL,
    first_seen_at INTEGER NOT NULL,
    -- Strictly increasing from one write transaction to the next (see the store), so the
    -- keyset cursor on (last_modified_at, record_id) never skips a record written later.
    last_modified_at INTEGER NOT NULL,
    last_action TEXT NOT NULL,
    deleted_at INTEGER,
    -- The crawl generation that last saw the record (0: none).
    seen_generation INTEGER NOT NULL,
    PRIMARY KEY (connection_row, model, record_id)
);

CREATE INDEX records_by_modification ON records (connection_row, model, last_modified_at, record_id);

-- One crawl per connection and model at a time; `generation` counts crawls begun.
CREATE TABLE crawls (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    generation INTEGER NOT NULL,
    in_progress INTEGER NOT NULL,
    PRIMARY KEY (connection_row, model)
);

CREATE TABLE sync_states (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    sync_name TEXT NOT NULL,
    checkpoint TEXT,
    paused INTEGER NOT NULL DEFAULT 0,
    -- A per-connection frequency in seconds, overriding the integration's.
    frequency_secs INTEGER,
    PRIMARY KEY (connection_row, sync_name)
);

CREATE TABLE sync_runs (
    id TEXT PRIMARY KEY NOT NULL,
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    sync_name TEXT NOT NULL,
    mode TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    -- running, success or failed; a run left `running` by a crash is failed at the next start.
    status TEXT NOT NULL,
    added INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    error TEXT
);

CREATE INDEX sync_runs_by_sync ON sync_runs (connection_row, sync_name, started_at);

CREATE TABLE sync_run_logs (
    run_id TEXT NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    -- The last attempt's HTTP status, if it got one; and its error otherwise.
    status INTEGER,
    error TEXT,
    delivered INTEGER NOT NULL
);
