-- 0009_retention: a profile keeps the time of the sessions the retention janitor deletes.
--
-- A profile's session time is summed from its visitor's analytics_sessions rows; the janitor
-- deletes sessions older than retention.days, and in the same transaction adds their time here,
-- so a profile keeps its totals (docs/operations.md, "Data lifecycle"). Not indexed: profile
-- writes stay heap-only updates. A constant default is metadata only: nothing is rewritten.
ALTER TABLE user_behavior_profiles ADD COLUMN retired_session_seconds double precision NOT NULL DEFAULT 0;
