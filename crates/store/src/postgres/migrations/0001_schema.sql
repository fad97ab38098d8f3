-- Plugboard's schema on PostgreSQL: the SQLite schema after its migrations, in PostgreSQL's
-- types. Times are integers as there (Unix milliseconds for connections and OAuth flows,
-- microseconds for records and runs), so rows move between the backends unchanged. Columns
-- holding secrets hold `pb1:<key id>:<base64>` ciphertexts bound to their table, row id and
-- column. Names callers choose sort by their bytes (`COLLATE "C"`), as in SQLite, so both
-- backends list them in one order.

CREATE TABLE connections (
    -- Row identity bound into the ciphertexts; never reused, unlike the caller's connection_id.
    id TEXT PRIMARY KEY,
    integration TEXT COLLATE "C" NOT NULL,
    connection_id TEXT COLLATE "C" NOT NULL,
    provider TEXT NOT NULL,
    connection_config TEXT NOT NULL,
    account TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    access_token TEXT NOT NULL,
    refresh_token TEXT,
    id_token TEXT,
    expires_at BIGINT,
    scopes TEXT NOT NULL,
    -- Bumped by every credential change: the compare-and-swap that keeps refreshes single.
    token_version BIGINT NOT NULL,
    -- Which replica may refresh right now, and until when (a crash frees it by expiry).
    refresh_lease_owner TEXT,
    refresh_lease_until BIGINT,
    -- When refreshing started failing; NULL while it works.
    refresh_failed_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (integration, connection_id)
);

CREATE TABLE connect_sessions (
    token_hash TEXT PRIMARY KEY,
    integration TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connection_config TEXT NOT NULL,
    return_url TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX connect_sessions_expires_at ON connect_sessions (expires_at);

CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    integration TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connection_config TEXT NOT NULL,
    return_url TEXT,
    pkce_verifier TEXT,
    browser_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

CREATE TABLE records (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT COLLATE "C" NOT NULL,
    -- The provider's id as UTF-8 bytes: byte for byte (PostgreSQL text cannot hold NUL), and
    -- ordered by its bytes as SQLite orders text.
    record_id BYTEA NOT NULL,
    -- The JSON payload: a `pb1:` ciphertext bound to this record when `sealed`, else plain JSON.
    payload TEXT NOT NULL,
    sealed BOOLEAN NOT NULL,
    -- SHA-256 of model, id and JSON payload: an unchanged record is found without decrypting.
    hash BYTEA NOT NULL,
    first_seen_at BIGINT NOT NULL,
    -- The stamp of the record_clocks write that last changed the record.
    last_modified_at BIGINT NOT NULL,
    last_action TEXT NOT NULL,
    deleted_at BIGINT,
    -- The hash and deletion mark ride in the key's index, so comparing a batch with what is
    -- stored reads the index alone, not the rows with their payloads.
    PRIMARY KEY (connection_row, model, record_id) INCLUDE (hash, deleted_at)
);

-- The records cursor: keyset on (last_modified_at, record_id) within a connection's model.
CREATE INDEX records_by_modification ON records (connection_row, model, last_modified_at, record_id);

-- The records cursor's clock per connection and model, advanced under its row lock by every
-- write of records, so stamps follow commit order across replicas.
CREATE TABLE record_clocks (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    stamp BIGINT NOT NULL,
    PRIMARY KEY (connection_row, model)
);

CREATE TABLE crawls (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    generation BIGINT NOT NULL,
    in_progress BOOLEAN NOT NULL,
    PRIMARY KEY (connection_row, model)
);

-- The ids each saved batch of the crawl in progress carried, one row per batch.
CREATE TABLE crawl_seen (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    generation BIGINT NOT NULL,
    ids BYTEA[] NOT NULL
);

CREATE INDEX crawl_seen_by_crawl ON crawl_seen (connection_row, model, generation);

CREATE TABLE sync_states (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    sync_name TEXT NOT NULL,
    checkpoint TEXT,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    frequency_secs BIGINT,
    -- The run lease: the run (by id) that may run this sync for this connection, and until when.
    run_lease_owner TEXT,
    run_lease_until BIGINT,
    PRIMARY KEY (connection_row, sync_name)
);

CREATE INDEX sync_states_by_run_lease ON sync_states (run_lease_owner);

CREATE TABLE sync_runs (
    id TEXT PRIMARY KEY,
    -- Insertion order, for runs started within the same microsecond.
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY,
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    sync_name TEXT NOT NULL,
    mode TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    status TEXT NOT NULL,
    added BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    deleted BIGINT NOT NULL DEFAULT 0,
    error TEXT
);

CREATE INDEX sync_runs_by_sync ON sync_runs (connection_row, sync_name, started_at);

CREATE TABLE sync_run_logs (
    run_id TEXT NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    status BIGINT,
    error TEXT,
    delivered BOOLEAN NOT NULL
);

CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at);

-- Connections changed, in commit order: positions come from the one row of
-- connection_change_clock, advanced under its row lock inside each changing transaction, so a
-- replica that has read up to a position never misses an earlier one committed later.
CREATE TABLE connection_change_clock (
    single BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),
    position BIGINT NOT NULL
);

INSERT INTO connection_change_clock (single, position) VALUES (TRUE, 0);

CREATE TABLE connection_changes (
    position BIGINT PRIMARY KEY,
    integration TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);

CREATE INDEX connection_changes_by_time ON connection_changes (changed_at);
