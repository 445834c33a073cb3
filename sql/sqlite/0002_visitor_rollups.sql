-- 0002_visitor_rollups: what makes every profile figure a commutative delta
-- (mirrors sql/postgres/0002_visitor_rollups.sql: same tables, same column names).

-- One row per visitor per UTC day with at least one event ('YYYY-MM-DD').
CREATE TABLE visitor_active_days (
    user_fingerprint TEXT NOT NULL,
    day              TEXT NOT NULL,
    PRIMARY KEY (user_fingerprint, day)
) STRICT, WITHOUT ROWID;

-- One row per visitor per session.
CREATE TABLE visitor_sessions (
    user_fingerprint TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    PRIMARY KEY (user_fingerprint, session_id)
) STRICT, WITHOUT ROWID;

-- Session time lives per session in analytics_sessions and is summed when a profile is read.
ALTER TABLE user_behavior_profiles DROP COLUMN total_session_seconds;
