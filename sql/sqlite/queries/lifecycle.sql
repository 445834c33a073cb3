-- The data lifecycle (SQLite): the retention janitor's purges, a visitor's erasure, and the
-- listing of dead letters. The reasons are those of sql/postgres/queries/lifecycle.sql.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: purge_events
-- Below their partition's horizon: a replay never needs them (no partition yet: none).
DELETE FROM analytics_events WHERE rowid IN (
    SELECT e.rowid FROM analytics_events e
    WHERE e.event_timestamp < :cutoff
      AND (e.log_txn IS NULL OR e.log_txn < (
          SELECT p.horizon FROM profile_partitions p
          WHERE p.partition = e.log_slot % nullif((SELECT count(*) FROM profile_partitions), 0)))
    LIMIT :limit)

-- name: purge_predictions
DELETE FROM ml_predictions WHERE id IN (
    SELECT id FROM ml_predictions WHERE created_at < :cutoff LIMIT :limit)

-- name: purge_dead_letters
DELETE FROM rejected_events WHERE id IN (
    SELECT id FROM rejected_events
    WHERE received_at < :cutoff AND coalesce(last_received_at, received_at) < :cutoff
    LIMIT :limit)

-- name: session_keys
SELECT session_id FROM analytics_sessions ORDER BY session_id LIMIT :limit

-- name: session_keys_after
SELECT session_id FROM analytics_sessions WHERE session_id > :after
ORDER BY session_id LIMIT :limit

-- name: journey_keys
SELECT id FROM customer_journeys ORDER BY id LIMIT :limit

-- name: journey_keys_after
SELECT id FROM customer_journeys WHERE id > :after ORDER BY id LIMIT :limit

-- name: purge_journeys
DELETE FROM customer_journeys WHERE id >= :first AND id <= :last AND updated_at < :cutoff

-- name: purge_sessions
DELETE FROM analytics_sessions
WHERE session_id >= :first AND session_id <= :last AND last_activity_at < :cutoff
RETURNING user_fingerprint, (julianday(last_activity_at) - julianday(started_at)) * 86400.0

-- name: retire_session_seconds
-- A deleted session's time stays in its profile's totals.
UPDATE user_behavior_profiles SET retired_session_seconds = retired_session_seconds + ?
WHERE user_fingerprint = ?

-- name: erase_events
DELETE FROM analytics_events WHERE user_fingerprint = ?

-- name: erase_events_since
DELETE FROM analytics_events WHERE log_txn >= ? AND user_fingerprint = ?

-- name: erase_dead_letters
DELETE FROM rejected_events WHERE instr(payload, ?) > 0 OR instr(payload, ?) > 0

-- name: fence_partition
UPDATE profile_partitions SET epoch = epoch + 1, updated_at = ? WHERE partition = ?

-- An erasure's derived rows, in this order: the profile first.

-- name: erase_profile
DELETE FROM user_behavior_profiles WHERE user_fingerprint = ?

-- name: erase_predictions
DELETE FROM ml_predictions WHERE user_fingerprint = ?

-- name: erase_sessions
DELETE FROM analytics_sessions WHERE user_fingerprint = ?

-- name: erase_journeys
DELETE FROM customer_journeys WHERE user_fingerprint = ?

-- name: erase_days
DELETE FROM visitor_active_days WHERE user_fingerprint = ?

-- name: rejected_page
SELECT id, letter_id, received_at, last_received_at, times_received, source, reasons, payload
FROM rejected_events ORDER BY id DESC LIMIT :limit

-- name: rejected_page_before
SELECT id, letter_id, received_at, last_received_at, times_received, source, reasons, payload
FROM rejected_events WHERE id < :before ORDER BY id DESC LIMIT :limit
