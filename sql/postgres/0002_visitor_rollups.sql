-- 0002_visitor_rollups: what makes every profile figure a commutative delta.
--
-- Profile actors on several instances may update one visitor at once. Counters add up
-- (count = count + n) and event_counts merge by adding per type, but "days active" and
-- "sessions" are sizes of sets: kept here as rows that writers can only add; an insert that adds
-- a day or a session adds one to the profile's count in the same statement, so each counts once.
-- Applied once, in one transaction, like every migration.

-- One row per visitor per UTC day with at least one event.
CREATE TABLE visitor_active_days (
    user_fingerprint text NOT NULL,
    day              date NOT NULL,
    PRIMARY KEY (user_fingerprint, day)
);

-- One row per visitor per session.
CREATE TABLE visitor_sessions (
    user_fingerprint text NOT NULL,
    session_id       text NOT NULL,
    PRIMARY KEY (user_fingerprint, session_id)
);

-- Session time lives per session in analytics_sessions (it grows as a session goes on) and is
-- summed when a profile is read; a per-profile copy would only go stale.
ALTER TABLE user_behavior_profiles DROP COLUMN total_session_seconds;
