-- 0002_visitor_rollups: per-visitor tables that make every profile figure a commutative delta
-- (mirrors sql/postgres/0002_visitor_rollups.sql: same tables, same column names).

-- One row per visitor per UTC day with at least one event ('YYYY-MM-DD').
CREATE TABLE visitor_active_days (
    user_fingerprint TEXT NOT NULL,
    day              TEXT NOT NULL,
    PRIMARY KEY (user_fingerprint, day)
) STRICT, WITHOUT ROWID;

-- Events per visitor and event type.
CREATE TABLE visitor_event_counts (
    user_fingerprint TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    count            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_fingerprint, event_type)
) STRICT, WITHOUT ROWID;
