-- Several processes writing one store.

-- The records cursor's clock, one per connection and model: every write of records advances it
-- (to the current time in microseconds, or one past its last value) inside the writing
-- transaction, and stamps the records it writes with it. The database, not a counter in one
-- process, decides the order, so stamps follow commit order whichever process writes, and a
-- cursor that has passed a stamp never misses a record committed later. Stamps keep their
-- meaning, so cursors handed out before this migration keep working.
CREATE TABLE record_clocks (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    stamp INTEGER NOT NULL,
    PRIMARY KEY (connection_row, model)
);

INSERT INTO record_clocks (connection_row, model, stamp)
SELECT connection_row, model, MAX(last_modified_at) FROM records GROUP BY connection_row, model;

-- Connections saved, deleted, marked for reconnect or whose syncs were paused, resumed or given
-- a frequency, in the order of their writes: every process reads it a few times a second and
-- drops what it cached of them. Entries are deleted after an hour.
CREATE TABLE connection_changes (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    integration TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    changed_at INTEGER NOT NULL
);

CREATE INDEX connection_changes_by_time ON connection_changes (changed_at);
