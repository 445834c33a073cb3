-- Events and dead letters (SQLite): storing a batch idempotently, and what it refused.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: create_staging
-- Per-connection staging table: one executemany in, then one INSERT ... SELECT that skips
-- stored ids and says (RETURNING) which rows went in. {extra}: the extra columns
-- (EVENT_EXTRA_COLUMNS).
CREATE TEMP TABLE IF NOT EXISTS staging_events (
    seq INTEGER, event_id TEXT, user_fingerprint TEXT, session_id TEXT, event_type TEXT,
    event_timestamp TEXT, received_at TEXT, sent_at TEXT, page_url TEXT, referrer TEXT,
    value REAL, properties TEXT, log_slot INTEGER, {extra}
)

-- name: insert_staging
-- {marks}: one ? per column of staging_events.
INSERT INTO temp.staging_events VALUES ({marks})

-- name: next_log_txn
-- One writer at a time holds the database: event writes commit in the order of this count.
UPDATE event_log_clock SET last_txn = last_txn + 1 RETURNING last_txn

-- name: insert_from_staging
-- "WHERE true" is SQLite's required disambiguation between a SELECT's join clause and the
-- upsert's ON CONFLICT. {extra}: the extra columns.
INSERT INTO analytics_events (event_id, user_fingerprint, session_id, event_type,
                              event_timestamp, received_at, sent_at, page_url, referrer, value,
                              properties, log_slot, log_txn, log_seq, {extra})
SELECT event_id, user_fingerprint, session_id, event_type, event_timestamp,
       received_at, sent_at, page_url, referrer, value, properties, log_slot, ?, seq, {extra}
FROM temp.staging_events WHERE true ORDER BY seq
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id

-- name: clear_staging
DELETE FROM temp.staging_events

-- name: log_txn
SELECT last_txn FROM event_log_clock

-- name: received_times
-- {marks}: one ? per event id.
SELECT event_id, received_at FROM analytics_events WHERE event_id IN ({marks})

-- name: insert_dead_letter
-- A letter seen again (a retried request) is counted, not stored twice.
INSERT INTO rejected_events (letter_id, received_at, source, reasons, payload)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (letter_id) DO UPDATE SET
    times_received = times_received + 1,
    last_received_at = max(coalesce(last_received_at, received_at), excluded.received_at)
