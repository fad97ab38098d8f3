-- Plugboard's first schema. Times are Unix milliseconds (UTC). Columns holding secrets hold
-- `pb1:<key id>:<base64>` ciphertexts bound to their table, row id and column (see crypto.rs).

CREATE TABLE connections (
    -- Row identity bound into the ciphertexts; never reused, unlike the caller's connection_id.
    id TEXT PRIMARY KEY NOT NULL,
    integration TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    connection_config TEXT NOT NULL,
    account TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    access_token TEXT NOT NULL,
    refresh_token TEXT,
    id_token TEXT,
    expires_at INTEGER,
    scopes TEXT NOT NULL,
    -- Bumped by every credential change: the compare-and-swap that keeps refreshes single.
    token_version INTEGER NOT NULL,
    -- Which process may refresh right now, and until when (a crash frees it by expiry).
    refresh_lease_owner TEXT,
    refresh_lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (integration, connection_id)
);

CREATE TABLE connect_sessions (
    -- SHA-256 of the session token; the token itself is only ever in the caller's hands.
    token_hash TEXT PRIMARY KEY NOT NULL,
    integration TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connection_config TEXT NOT NULL,
    return_url TEXT,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX connect_sessions_expires_at ON connect_sessions (expires_at);

CREATE TABLE oauth_states (
    -- SHA-256 of the `state` parameter. A callback deletes the row it uses: single use.
    state_hash TEXT PRIMARY KEY NOT NULL,
    flow TEXT NOT NULL,
    integration TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connection_config TEXT NOT NULL,
    return_url TEXT,
    pkce_verifier TEXT,
    -- SHA-256 of the cookie value that binds the state to the browser that started the flow.
    browser_hash TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);
