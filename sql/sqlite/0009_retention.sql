-- 0009_retention: a profile keeps the time of the sessions the retention janitor deletes.
-- Mirrors sql/postgres/0009_retention.sql.
ALTER TABLE user_behavior_profiles ADD COLUMN retired_session_seconds REAL NOT NULL DEFAULT 0;
