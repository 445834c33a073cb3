-- The data lifecycle (PostgreSQL): the retention janitor's purges, a visitor's erasure, and
-- the listing of dead letters.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- Tables with a time index: a batch is the first "limit" old rows found through it, deleted by
-- their physical address.

-- name: purge_events
-- Below their partition's horizon: a replay never needs them (no partition yet: none).
DELETE FROM analytics_events WHERE ctid = ANY(ARRAY(
    SELECT e.ctid FROM analytics_events e
    WHERE e.event_timestamp < %(cutoff)s
      AND (e.log_txn IS NULL OR e.log_txn < (
          SELECT p.horizon FROM profile_partitions p
          WHERE p.partition = e.log_slot %% nullif((SELECT count(*) FROM profile_partitions), 0)))
    LIMIT %(limit)s))

-- name: purge_predictions
DELETE FROM ml_predictions WHERE id = ANY(ARRAY(
    SELECT id FROM ml_predictions WHERE created_at < %(cutoff)s LIMIT %(limit)s))

-- name: purge_dead_letters
DELETE FROM rejected_events WHERE id = ANY(ARRAY(
    SELECT id FROM rejected_events
    WHERE received_at < %(cutoff)s AND coalesce(last_received_at, received_at) < %(cutoff)s
    LIMIT %(limit)s))

-- Tables without an index on their time, walked by primary key range. The time condition is
-- on the row deleted, so a row a profile write touched meanwhile (the DELETE waits for it) is
-- judged again by its new time.

-- name: session_keys
SELECT session_id FROM analytics_sessions ORDER BY session_id LIMIT %(limit)s

-- name: session_keys_after
SELECT session_id FROM analytics_sessions WHERE session_id > %(after)s
ORDER BY session_id LIMIT %(limit)s

-- name: journey_keys
SELECT id FROM customer_journeys ORDER BY id LIMIT %(limit)s

-- name: journey_keys_after
SELECT id FROM customer_journeys WHERE id > %(after)s ORDER BY id LIMIT %(limit)s

-- name: purge_journeys
DELETE FROM customer_journeys
WHERE id >= %(first)s AND id <= %(last)s AND updated_at < %(cutoff)s

-- name: purge_sessions
DELETE FROM analytics_sessions
WHERE session_id >= %(first)s AND session_id <= %(last)s AND last_activity_at < %(cutoff)s
RETURNING user_fingerprint, extract(epoch FROM last_activity_at - started_at)::double precision

-- name: lock_retiring_profiles
-- The profiles of deleted sessions, locked in key order (as profile writes and the scorer
-- lock them: no deadlock).
SELECT 1 FROM user_behavior_profiles WHERE user_fingerprint = ANY(%s::text[])
ORDER BY user_fingerprint FOR UPDATE

-- name: retire_session_seconds
-- A deleted session's time stays in its profile's totals.
UPDATE user_behavior_profiles p SET retired_session_seconds = p.retired_session_seconds + x.s
FROM unnest(%s::text[], %s::float8[]) AS x (fp, s) WHERE p.user_fingerprint = x.fp

-- name: erase_events
DELETE FROM analytics_events WHERE user_fingerprint = %s

-- name: erase_events_since
DELETE FROM analytics_events WHERE log_txn >= %s AND user_fingerprint = %s

-- name: erase_dead_letters
DELETE FROM rejected_events WHERE strpos(payload, %s) > 0 OR strpos(payload, %s) > 0

-- name: fence_partition
UPDATE profile_partitions SET epoch = epoch + 1, updated_at = now() WHERE partition = %s

-- name: hold_back_scores
-- Waits for the scorer's records in flight and holds back new ones until the erasure commits:
-- one that read the profile before its deletion would otherwise, once this commits, insert
-- its predictions and a profile row of scores alone (its INSERT ... ON CONFLICT finds the
-- conflicting row gone). Taken before any profile row lock: a record in flight may be waiting
-- for one. A record that starts later locks the table before taking its snapshot, so it finds
-- no profile and records nothing.
LOCK TABLE ml_predictions IN SHARE ROW EXCLUSIVE MODE

-- An erasure's derived rows, in this order: the profile first (a record that read it before
-- waits on its row).

-- name: erase_profile
DELETE FROM user_behavior_profiles WHERE user_fingerprint = %s

-- name: erase_predictions
DELETE FROM ml_predictions WHERE user_fingerprint = %s

-- name: erase_sessions
DELETE FROM analytics_sessions WHERE user_fingerprint = %s

-- name: erase_journeys
DELETE FROM customer_journeys WHERE user_fingerprint = %s

-- name: erase_days
DELETE FROM visitor_active_days WHERE user_fingerprint = %s

-- name: rejected_page
SELECT id, letter_id::text, received_at, last_received_at, times_received, source, reasons,
       payload
FROM rejected_events ORDER BY id DESC LIMIT %(limit)s

-- name: rejected_page_before
SELECT id, letter_id::text, received_at, last_received_at, times_received, source, reasons,
       payload
FROM rejected_events WHERE id < %(before)s ORDER BY id DESC LIMIT %(limit)s
