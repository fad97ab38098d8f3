-- How many records of each connection and model are live and how many deleted, on the model's
-- clock row: every write of records already advances that row in its transaction, and now
-- moves these counts by what it changed, so the dashboard's records tab reads a few rows per
-- connection instead of counting its records (a count grows with them: about 130 ms for a
-- connection of a million records).
ALTER TABLE record_clocks ADD COLUMN live INTEGER NOT NULL DEFAULT 0;
ALTER TABLE record_clocks ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;

-- Counted from the records stored. A model's records without a clock row (none are written
-- without one since migration 5) get one as migration 5 made them; a clock keeps its stamp.
INSERT INTO record_clocks (connection_row, model, stamp, live, deleted)
SELECT connection_row, model, MAX(last_modified_at),
    COUNT(*) FILTER (WHERE deleted_at IS NULL), COUNT(*) FILTER (WHERE deleted_at IS NOT NULL)
FROM records WHERE TRUE GROUP BY connection_row, model
ON CONFLICT (connection_row, model) DO UPDATE SET live = excluded.live, deleted = excluded.deleted;
