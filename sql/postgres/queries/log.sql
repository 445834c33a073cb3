-- The event log, its partitions and their leases (PostgreSQL).
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: record_positions
-- A write of derived state records its partitions' positions first (their rows locked until
-- it commits), where its owner still holds them as it last wrote them.
UPDATE profile_partitions p
SET horizon = x.horizon, applied = x.applied, writes = p.writes + 1, updated_at = now()
FROM jsonb_to_recordset(%(positions)s::jsonb) AS x (
    partition integer, epoch bigint, writes bigint, horizon bigint, applied bigint[])
WHERE p.partition = x.partition AND p.owner = %(owner)s AND p.epoch = x.epoch
  AND p.writes = x.writes

-- name: partition_rows
SELECT partition, owner, epoch, writes FROM profile_partitions WHERE partition = ANY(%s)

-- name: lock_partitions
-- Serialises changes to the set of partitions between processes, until the transaction ends.
SELECT pg_advisory_xact_lock(%s)

-- name: partition_count
SELECT count(*) FROM profile_partitions

-- name: create_partitions
INSERT INTO profile_partitions (partition, horizon)
SELECT p, 0 FROM generate_series(%s::int, %s::int) p

-- name: create_leases
INSERT INTO profile_leases (partition) SELECT p FROM generate_series(%s::int, %s::int) p

-- name: split_partitions
-- Each new partition q starts at the position of its parent, q modulo the partitions held.
INSERT INTO profile_partitions (partition, horizon, applied)
SELECT q, p.horizon, p.applied FROM generate_series(%(held)s::int, %(count)s::int - 1) q
JOIN profile_partitions p ON p.partition = q %% %(held)s::int

-- name: split_leases
INSERT INTO profile_leases (partition) SELECT q FROM generate_series(%s::int, %s::int - 1) q

-- name: release_all_leases
UPDATE profile_leases SET owner = NULL, lease_until = NULL

-- name: live_leases
SELECT count(*) FROM profile_leases
WHERE owner IS NOT NULL AND lease_until > clock_timestamp()

-- name: lease_heartbeat
INSERT INTO profile_owners (owner, alive_until)
VALUES (%(owner)s, clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until

-- name: forget_owners
-- Instances gone for a while are forgotten (an instance's row is its own otherwise).
DELETE FROM profile_owners WHERE alive_until < clock_timestamp() - interval '1 minute'

-- name: lease_release
UPDATE profile_leases SET owner = NULL, lease_until = NULL
WHERE owner = %s AND partition = ANY(%s)

-- name: lease_renew
WITH renewed AS (
    UPDATE profile_leases SET lease_until = clock_timestamp() + make_interval(secs => %(ttl)s)
    WHERE owner = %(owner)s RETURNING partition)
SELECT p.partition, p.epoch FROM renewed JOIN profile_partitions p USING (partition)

-- name: live_owners
SELECT count(*) FROM profile_owners WHERE alive_until > clock_timestamp()

-- name: lease_claim
-- Taking a partition raises its epoch: a write of the former owner no longer matches. The
-- lease rows are taken first (skipping any another instance is taking); the partition rows
-- then wait for a write of the former owner that is in flight, if any.
WITH taken AS (
    UPDATE profile_leases l
    SET owner = %(owner)s, lease_until = clock_timestamp() + make_interval(secs => %(ttl)s)
    WHERE l.partition IN (
        SELECT partition FROM profile_leases
        WHERE owner IS NULL OR lease_until IS NULL OR lease_until < clock_timestamp()
        ORDER BY partition LIMIT %(want)s
        FOR UPDATE SKIP LOCKED)
    RETURNING l.partition)
UPDATE profile_partitions p SET owner = %(owner)s, epoch = p.epoch + 1
FROM taken WHERE p.partition = taken.partition
RETURNING p.partition, p.epoch, p.writes, p.horizon, p.applied

-- name: leave_leases
UPDATE profile_leases SET owner = NULL, lease_until = NULL WHERE owner = %s

-- name: leave_owners
DELETE FROM profile_owners WHERE owner = %s

-- name: announce_log
-- The channel on which a process announces events stored for partitions other processes may
-- own: their owners read the log at once instead of at their next poll. Channels are per
-- database, like the tables.
SELECT pg_notify('revivatech_event_log', '')

-- name: listen_log
LISTEN revivatech_event_log

-- name: log_horizon
-- The oldest transaction still running when this statement began: every smaller one has
-- ended, so a later statement sees all of those that committed.
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint

-- name: touch_columns
-- The fields of an event a profile needs (domain.profiles.Touch), with its log transaction and
-- partition; properties only for a journey step, the one type whose properties count.
e.log_txn, e.log_slot %% %(partitions)s, e.user_fingerprint, e.event_id::text, e.event_type,
e.session_id, e.event_timestamp, e.page_url, e.referrer, e.value,
CASE WHEN e.event_type = %(step)s THEN e.properties END, e.device_type, e.user_id

-- name: log_rows
-- Each range of transactions is an index range scan of its own (LATERAL, kept apart by
-- OFFSET 0: flattened, the planner scanned and sorted the whole table): the transactions
-- between the ranges, which the fast path brought, are not read at all.
WITH c AS (
    SELECT * FROM jsonb_to_recordset(%(cursors)s::jsonb) AS c (
        partition integer, horizon bigint, applied bigint[]))
SELECT {{touch_columns}}
FROM unnest(%(lows)s::bigint[], %(highs)s::bigint[]) AS r (low, high)
     CROSS JOIN LATERAL (
         SELECT * FROM analytics_events x
         WHERE x.log_txn >= r.low AND x.log_txn < r.high OFFSET 0) e
     JOIN c ON c.partition = e.log_slot %% %(partitions)s
WHERE e.log_txn >= c.horizon AND NOT (e.log_txn = ANY(c.applied))
ORDER BY e.log_txn, e.log_seq

-- name: partition_position
SELECT horizon, applied FROM profile_partitions WHERE partition = %s

-- name: visitor_tail
-- A visitor's events its stored rows do not reflect yet, through the log index (the events
-- since its partition's horizon, given as a value: as a join the planner scanned the table).
SELECT {{touch_columns}}
FROM analytics_events e
WHERE e.log_txn >= %(horizon)s AND e.log_slot = %(slot)s AND e.user_fingerprint = %(fp)s
  AND NOT (e.log_txn = ANY(%(applied)s))
ORDER BY e.log_txn, e.log_seq
