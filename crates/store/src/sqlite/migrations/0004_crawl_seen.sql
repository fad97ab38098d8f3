-- Which records the crawl in progress has seen: one row per saved batch, its ids as one JSON
-- array, appended as the batch is saved. Stamping each record's row instead (the old
-- `records.seen_generation`) rewrote rows scattered over the whole table, since provider ids
-- are random, so a page of 1,000 unchanged records wrote most of the table's pages; a row per
-- record here would still cost a row and an index entry per record, deleted one by one again at
-- the end. `end_crawl` reads the ids back with `json_each`; beginning or ending a crawl clears
-- them.
CREATE TABLE crawl_seen (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    generation INTEGER NOT NULL,
    -- A JSON array of record ids.
    ids TEXT NOT NULL
);

CREATE INDEX crawl_seen_by_crawl ON crawl_seen (connection_row, model, generation);

-- A crawl in progress keeps what it has seen so far.
INSERT INTO crawl_seen (connection_row, model, generation, ids)
SELECT records.connection_row, records.model, records.seen_generation,
    json_group_array(records.record_id)
FROM records JOIN crawls
    ON crawls.connection_row = records.connection_row AND crawls.model = records.model
WHERE crawls.in_progress = 1 AND records.seen_generation = crawls.generation
GROUP BY records.connection_row, records.model, records.seen_generation;

ALTER TABLE records DROP COLUMN seen_generation;

-- Saving a batch first reads the stored hashes of its ids. With the hash in an index, that read
-- touches only this index, not the table's rows with their large payloads: a sync with nothing
-- changed reads a few index pages per batch instead of a table page per record.
CREATE INDEX records_hashes ON records (connection_row, model, record_id, hash, deleted_at);
