-- 0002_visitor_rollups: per-visitor tables that make every profile figure a commutative delta.
--
-- Profile actors on several instances may update one visitor at once. Counters add up
-- (count = count + n), but "days active" and "events by type" need a set and a map: kept here as
-- rows that concurrent writers can only add to, and folded into user_behavior_profiles after
-- each flush. Applied once, in one transaction, like every migration.

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
