-- Expiry notices sent for integrations' client credentials: a row inserted if absent is the
-- claim to send one, so replicas sharing the database send each notice once.
CREATE TABLE credential_notices (
    integration TEXT NOT NULL,
    credential TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    days_ahead INTEGER NOT NULL,
    sent_at INTEGER NOT NULL,
    PRIMARY KEY (integration, credential, expires_on, days_ahead)
) WITHOUT ROWID;

-- Integrations whose own client credential the provider refuses (set and cleared by a
-- compare-and-swap, so the failure and the recovery are each announced once).
CREATE TABLE integration_states (
    integration TEXT PRIMARY KEY NOT NULL,
    credential_failed_at INTEGER,
    credential_failure TEXT
) WITHOUT ROWID;
