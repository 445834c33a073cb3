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

-- Sessions per visitor: a session is counted the first time a flush brings it.
CREATE TABLE visitor_sessions (
    user_fingerprint TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    PRIMARY KEY (user_fingerprint, session_id)
) STRICT, WITHOUT ROWID;

-- These two live in the tables above now (per event type; per session in analytics_sessions) and
-- are summed when a profile is read, so the profile row holds nothing that goes stale.
ALTER TABLE user_behavior_profiles DROP COLUMN total_session_seconds;
ALTER TABLE user_behavior_profiles DROP COLUMN event_counts;
