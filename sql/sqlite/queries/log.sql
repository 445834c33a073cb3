-- The event log, its partitions and their leases (SQLite). Times are the writer's clock,
-- passed as parameters (fixed-width UTC text).
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: record_position
-- A write of derived state records its partition's position, where its owner still holds it
-- as it last wrote it.
UPDATE profile_partitions SET horizon = ?, applied = ?, writes = writes + 1, updated_at = ?
WHERE partition = ? AND owner = ? AND epoch = ? AND writes = ?

-- name: partition_rows
SELECT partition, owner, epoch, writes FROM profile_partitions

-- name: partition_count
SELECT count(*) FROM profile_partitions

-- name: create_partition
INSERT INTO profile_partitions (partition, horizon, updated_at) VALUES (?, 0, ?)

-- name: create_lease
INSERT INTO profile_leases (partition) VALUES (?)

-- name: partition_positions
SELECT partition, horizon, applied FROM profile_partitions

-- name: split_partition
-- A new partition, at the position of its parent.
INSERT INTO profile_partitions (partition, horizon, applied, updated_at) VALUES (?, ?, ?, ?)

-- name: release_all_leases
UPDATE profile_leases SET owner = NULL, lease_until = NULL

-- name: live_leases
SELECT count(*) FROM profile_leases WHERE owner IS NOT NULL AND lease_until > ?

-- name: lease_heartbeat
INSERT INTO profile_owners (owner, alive_until, started_at) VALUES (?, ?, ?)
ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until

-- name: forget_owners
-- Instances gone for a while are forgotten (an instance's row is its own otherwise).
DELETE FROM profile_owners WHERE alive_until < ?

-- name: lease_release
UPDATE profile_leases SET owner = NULL, lease_until = NULL WHERE owner = ? AND partition = ?

-- name: lease_renew
UPDATE profile_leases SET lease_until = ? WHERE owner = ? RETURNING partition

-- name: partition_epochs
SELECT partition, epoch FROM profile_partitions

-- name: live_owners
SELECT count(*) FROM profile_owners WHERE alive_until > ?

-- name: lease_claim
UPDATE profile_leases SET owner = ?, lease_until = ? WHERE partition IN (
    SELECT partition FROM profile_leases
    WHERE owner IS NULL OR lease_until IS NULL OR lease_until < ?
    ORDER BY partition LIMIT ?)
RETURNING partition

-- name: claim_partition
-- Taking a partition raises its epoch: a write of the former owner no longer matches.
UPDATE profile_partitions SET owner = ?, epoch = epoch + 1 WHERE partition = ?
RETURNING partition, epoch, writes, horizon, applied

-- name: leave_leases
UPDATE profile_leases SET owner = NULL, lease_until = NULL WHERE owner = ?

-- name: leave_owners
DELETE FROM profile_owners WHERE owner = ?

-- name: log_horizon
-- Writers take turns: every counted write has committed.
SELECT last_txn + 1 FROM event_log_clock

-- name: touch_columns
-- The fields of an event a profile needs (domain.profiles.Touch), with its log transaction and
-- partition; properties only for a journey step, the one type whose properties count.
e.log_txn, e.log_slot % :partitions, e.user_fingerprint, e.event_id, e.event_type,
e.session_id, e.event_timestamp, e.page_url, e.referrer, e.value,
CASE WHEN e.event_type = :step THEN e.properties END, e.device_type, e.user_id

-- name: log_rows
WITH c AS (SELECT json_extract(value, '$.partition') AS partition,
                  json_extract(value, '$.horizon') AS horizon,
                  json_extract(value, '$.applied') AS applied
           FROM json_each(:cursors)),
     r AS (SELECT json_extract(value, '$[0]') AS low, json_extract(value, '$[1]') AS high
           FROM json_each(:ranges))
SELECT {{touch_columns}}
FROM r CROSS JOIN analytics_events e JOIN c ON c.partition = e.log_slot % :partitions
WHERE e.log_txn >= r.low AND e.log_txn < r.high AND e.log_txn >= c.horizon
  AND e.log_txn NOT IN (SELECT value FROM json_each(c.applied))
ORDER BY e.log_txn, e.log_seq

-- name: partition_position
SELECT horizon, applied FROM profile_partitions WHERE partition = ?

-- name: visitor_tail
-- A visitor's events its stored rows do not reflect yet, through the log index.
SELECT {{touch_columns}}
FROM analytics_events e
WHERE e.log_txn >= :horizon AND e.log_slot = :slot AND e.user_fingerprint = :fp
  AND e.log_txn NOT IN (SELECT value FROM json_each(:applied))
ORDER BY e.log_txn, e.log_seq
