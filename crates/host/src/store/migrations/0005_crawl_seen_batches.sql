-- The seen log, one row per saved batch instead of one per record: the batch's ids as one JSON
-- array. A row per record cost a table row and an index entry for every record of every crawl,
-- and ending a crawl deleted them one by one again (with `secure_delete`, zeroing each); a
-- page of 1,000 ids is now one row, and `end_crawl` reads the ids back with `json_each`.
CREATE TABLE crawl_seen_batches (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    generation INTEGER NOT NULL,
    -- A JSON array of record ids.
    ids TEXT NOT NULL
);

-- A crawl in progress keeps what it has seen so far.
INSERT INTO crawl_seen_batches (connection_row, model, generation, ids)
SELECT connection_row, model, generation, json_group_array(record_id)
FROM crawl_seen
GROUP BY connection_row, model, generation;

DROP TABLE crawl_seen;
ALTER TABLE crawl_seen_batches RENAME TO crawl_seen;
CREATE INDEX crawl_seen_by_crawl ON crawl_seen (connection_row, model, generation);
