-- 0007_event_log: analytics_events becomes the log profiles are derived from (docs/scaling.md).
-- Each event keeps the id of the transaction that stored it (log_txn) and its visitor's slot
-- (log_slot: the first 4 bytes of MD5(user_fingerprint), big-endian, top bit cleared) and its
-- place in that transaction (log_seq: the order it was handed over in, which a replay keeps); a
-- partition is log_slot % profiles.partitions. Events stored before this migration have no
-- log_txn and are not replayed: the profiles already counted them.
-- log_txn is the transaction id (xid8) as a bigint, the type the service reads and writes.
ALTER TABLE analytics_events ADD COLUMN log_txn bigint, ADD COLUMN log_slot integer, ADD COLUMN log_seq integer;
ALTER TABLE analytics_events ALTER COLUMN log_txn SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX analytics_events_log_idx ON analytics_events (log_txn);

-- One row per partition: how far the derived state (profiles, days, sessions, journeys) has
-- applied the log, written in the same transaction as that state, and which owner may write it.
-- Applied = every transaction below horizon, plus those listed in applied.
CREATE TABLE profile_partitions (
    partition   integer PRIMARY KEY,
    horizon     bigint NOT NULL,
    applied     bigint[] NOT NULL DEFAULT '{}',
    owner       text,
    epoch       bigint NOT NULL DEFAULT 0,   -- + 1 at every change of owner: fences a former owner's writes
    writes      bigint NOT NULL DEFAULT 0,   -- + 1 at every write: tells a retried write it had committed
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Who holds each partition's lease, and until when: apart from profile_partitions, so renewing a
-- lease never waits for a write of derived state (which locks its partitions' rows).
CREATE TABLE profile_leases (
    partition   integer PRIMARY KEY,
    owner       text,
    lease_until timestamptz
);

-- Instances that take part in the sharing of partitions, each alive while it renews its row.
CREATE TABLE profile_owners (
    owner       text PRIMARY KEY,
    alive_until timestamptz NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
