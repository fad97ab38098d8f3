-- Which records the crawl in progress has seen, appended as it saves them. Stamping each
-- record's row instead rewrote rows scattered over the whole table (provider ids are random),
-- so a page of 1,000 unchanged records wrote most of the table's pages; appending its ids here
-- writes a few pages. `end_crawl` reads them once. Beginning or ending a crawl clears them.
CREATE TABLE crawl_seen (
    connection_row TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    generation INTEGER NOT NULL,
    record_id TEXT NOT NULL
);

CREATE INDEX crawl_seen_by_crawl ON crawl_seen (connection_row, model, generation);

-- A crawl in progress keeps what it has seen so far.
INSERT INTO crawl_seen (connection_row, model, generation, record_id)
SELECT records.connection_row, records.model, records.seen_generation, records.record_id
FROM records JOIN crawls
    ON crawls.connection_row = records.connection_row AND crawls.model = records.model
WHERE crawls.in_progress = 1 AND records.seen_generation = crawls.generation;

ALTER TABLE records DROP COLUMN seen_generation;
