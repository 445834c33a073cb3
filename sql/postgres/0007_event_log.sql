-- 0007_event_log: analytics_events becomes the log profiles are derived from (docs/scaling.md).
-- Each event keeps the id of the transaction that stored it (log_txn) and its visitor's slot
-- (log_slot: the first 4 bytes of MD5(user_fingerprint), big-endian, top bit cleared) and its
-- place in that transaction (log_seq: the order it was handed over in, which a replay keeps); a
-- partition is log_slot % profiles.partitions. Events stored before this migration have no
-- log_txn and are not replayed: the profiles already counted them.
ALTER TABLE analytics_events ADD COLUMN log_txn xid8, ADD COLUMN log_slot integer, ADD COLUMN log_seq integer;
ALTER TABLE analytics_events ALTER COLUMN log_txn SET DEFAULT pg_current_xact_id();
-- The slot as the second column: a visitor's events since a position are found inside the index
-- (log_slot checked there), without visiting the rows of other visitors.
CREATE INDEX analytics_events_log_idx ON analytics_events (log_txn, log_slot);

-- One row per partition: how far the derived state (profiles, days, sessions, journeys) has
-- applied the log, written in the same transaction as that state, and who owns the partition.
-- Applied = every transaction below horizon, plus those listed in applied.
CREATE TABLE profile_partitions (
    partition   integer PRIMARY KEY,
    horizon     xid8 NOT NULL,
    applied     xid8[] NOT NULL DEFAULT '{}',
    owner       text,
    epoch       bigint NOT NULL DEFAULT 0,   -- + 1 at every change of owner: fences a former owner's writes
    writes      bigint NOT NULL DEFAULT 0,   -- + 1 at every write: tells a retried write it had committed
    lease_until timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Instances that take part in the sharing of partitions, each alive while it renews its row.
CREATE TABLE profile_owners (
    owner       text PRIMARY KEY,
    alive_until timestamptz NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
