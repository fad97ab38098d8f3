-- Live and deleted records per connection and model, kept on the model's clock row by every
-- write of records in its transaction (see the SQLite migration 0007), so the dashboard's
-- records tab reads them instead of counting a connection's records.
ALTER TABLE record_clocks
    ADD COLUMN live BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN deleted BIGINT NOT NULL DEFAULT 0;

-- Counted from the records stored. The `ALTER` above holds every write of records off until
-- this migration commits (each write's first statement advances its clock), so no write slips
-- between the count and the counters. A clock keeps its stamp.
INSERT INTO record_clocks (connection_row, model, stamp, live, deleted)
SELECT connection_row, model, MAX(last_modified_at),
    COUNT(*) FILTER (WHERE deleted_at IS NULL), COUNT(*) FILTER (WHERE deleted_at IS NOT NULL)
FROM records GROUP BY connection_row, model
ON CONFLICT (connection_row, model) DO UPDATE SET live = EXCLUDED.live, deleted = EXCLUDED.deleted;
