-- The last value fetched for each grid cell: what is served, marked stale, when the
-- provider is down and Redis no longer has it (Redis may keep nothing across a restart).
CREATE TABLE last_known (
    lat10 INTEGER NOT NULL,
    lon10 INTEGER NOT NULL,
    provider TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (lat10, lon10)
);
