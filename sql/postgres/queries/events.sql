-- Events and dead letters (PostgreSQL): storing a batch idempotently, and what it refused.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: create_staging
-- Per-connection staging table for COPY: binary COPY is the fastest way in, and
-- INSERT ... SELECT from it can then skip duplicates with ON CONFLICT and say which rows went
-- in. Ids and JSON are staged as text and cast once in the INSERT. {extra}: the extra columns
-- (EVENT_EXTRA_COLUMNS) with their types.
CREATE TEMP TABLE IF NOT EXISTS staging_events (
    seq integer, event_id text, user_fingerprint text, session_id text, event_type text,
    event_timestamp timestamptz, received_at timestamptz, sent_at timestamptz,
    page_url text, referrer text, value double precision, properties text, log_slot integer, {extra}
) ON COMMIT DELETE ROWS

-- name: copy_staging
-- {extra}: the extra columns' names, in EVENT_EXTRA_COLUMNS order.
COPY staging_events (seq, event_id, user_fingerprint, session_id, event_type, event_timestamp,
                     received_at, sent_at, page_url, referrer, value, properties, log_slot, {extra})
FROM STDIN (FORMAT BINARY)

-- name: store_events
-- One statement inserts the staged events, skipping stored ids, and answers one row: its log
-- transaction (the events' log_txn, taken once) and the ids it did *not* insert (stored
-- before), comma-separated: usually none, so the answer is small instead of a row per event,
-- and the scan that finds them is skipped when every event went in (the one-time filter on the
-- count). Small answers keep a flush short under load: each answer the writer thread waits for
-- is a wait for the GIL as well. Nothing else is written in the events' commit: sessions,
-- profiles and journeys are the profile writer's, coalesced, off the acknowledgement's path.
-- {source}: staging_events, or the events_json_source; {extra}: ", col" for each extra column
-- the source holds; {extra_cast}: the same, cast to the stored types.
WITH staged AS MATERIALIZED (SELECT * FROM {source}),
inserted AS (
    INSERT INTO analytics_events (event_id, user_fingerprint, session_id, event_type,
                                  event_timestamp, received_at, sent_at, page_url, referrer,
                                  value, properties, log_txn, log_slot, log_seq{extra})
    SELECT event_id::uuid, user_fingerprint, session_id, event_type, event_timestamp,
           received_at, sent_at, page_url, referrer, value, properties::jsonb,
           (SELECT {{current_txn}}), log_slot, seq{extra_cast}
    FROM staged ORDER BY seq
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
)
SELECT {{current_txn}}, array_to_string(ARRAY(
    SELECT DISTINCT event_id FROM staged
    WHERE (SELECT count(*) FROM inserted) < %(count)s
      AND event_id::uuid NOT IN (SELECT event_id FROM inserted)), ',')

-- name: events_json_source
-- The events of a batch without dead letters travel as one JSON parameter, unpacked here, so
-- the whole write is one statement (atomic on its own): one round trip instead of four (BEGIN,
-- COPY, INSERT, COMMIT). {declared}: ", col type" for only the extra columns the batch holds,
-- since unpacking each declared column costs on every row.
jsonb_to_recordset(%(events)s::jsonb) AS staging_events (
    seq integer, event_id text, user_fingerprint text, session_id text, event_type text,
    event_timestamp timestamptz, received_at timestamptz, sent_at timestamptz, page_url text,
    referrer text, value double precision, properties jsonb, log_slot integer{declared})

-- name: current_txn
-- The current transaction's id as the bigint log_txn holds.
pg_current_xact_id()::text::bigint

-- name: log_txn
SELECT {{current_txn}}

-- name: received_times
SELECT event_id::text, received_at FROM analytics_events WHERE event_id = ANY(%s::uuid[])

-- name: insert_dead_letter
-- A letter seen again (a retried request) is counted, not stored twice.
INSERT INTO rejected_events (letter_id, received_at, source, reasons, payload)
VALUES (%s, %s, %s, %s::jsonb, %s)
ON CONFLICT (letter_id) DO UPDATE SET
    times_received = rejected_events.times_received + 1,
    last_received_at = greatest(
        coalesce(rejected_events.last_received_at, rejected_events.received_at),
        excluded.received_at)
