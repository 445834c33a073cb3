-- 0002_visitor_rollups: per-visitor tables that make every profile figure a commutative delta.
--
-- Profile actors on several instances may update one visitor at once. Counters add up
-- (count = count + n), but "days active", "sessions" and "events by type" need sets and a map: kept here as
-- rows that concurrent writers can only add to; an insert that adds a day or a session also
-- adds one to the profile's count, in the same statement. Applied once, in one transaction, like every migration.

-- One row per visitor per UTC day with at least one event.
CREATE TABLE visitor_active_days (
    user_fingerprint text NOT NULL,
    day              date NOT NULL,
    PRIMARY KEY (user_fingerprint, day)
);

-- Events per visitor and event type.
CREATE TABLE visitor_event_counts (
    user_fingerprint text NOT NULL,
    event_type       text NOT NULL,
    count            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_fingerprint, event_type)
);

-- Sessions per visitor: a session is counted the first time a flush brings it (the insert
-- finds no row), so total_sessions grows by exactly the sessions that are new.
CREATE TABLE visitor_sessions (
    user_fingerprint text NOT NULL,
    session_id       text NOT NULL,
    PRIMARY KEY (user_fingerprint, session_id)
);

-- These two live in the tables above now (per event type; per session in analytics_sessions) and
-- are summed when a profile is read, so the profile row holds nothing that goes stale.
ALTER TABLE user_behavior_profiles DROP COLUMN total_session_seconds;
ALTER TABLE user_behavior_profiles DROP COLUMN event_counts;
