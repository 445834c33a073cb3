-- 0007_event_log: analytics_events becomes the log profiles are derived from. Mirrors
-- sql/postgres/0007_event_log.sql; log_txn numbers the event writes (one writer at a time holds
-- an SQLite database, so they commit in that order), counted in event_log_clock.
ALTER TABLE analytics_events ADD COLUMN log_txn INTEGER;
ALTER TABLE analytics_events ADD COLUMN log_slot INTEGER;
ALTER TABLE analytics_events ADD COLUMN log_seq INTEGER;
CREATE INDEX analytics_events_log_idx ON analytics_events (log_txn);

CREATE TABLE event_log_clock (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_txn INTEGER NOT NULL
);
INSERT INTO event_log_clock (id, last_txn) VALUES (1, 0);

CREATE TABLE profile_partitions (
    partition   INTEGER PRIMARY KEY,
    horizon     INTEGER NOT NULL,
    applied     TEXT NOT NULL DEFAULT '[]',   -- JSON array of log_txn values
    owner       TEXT,
    epoch       INTEGER NOT NULL DEFAULT 0,
    writes      INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL
);

CREATE TABLE profile_leases (
    partition   INTEGER PRIMARY KEY,
    owner       TEXT,
    lease_until TEXT
);

CREATE TABLE profile_owners (
    owner       TEXT PRIMARY KEY,
    alive_until TEXT NOT NULL,
    started_at  TEXT NOT NULL
);
