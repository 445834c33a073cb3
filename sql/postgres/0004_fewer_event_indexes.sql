-- 0004_fewer_event_indexes: analytics_events loses its (user_fingerprint, event_timestamp) index.
--
-- Every stored event pays for each index of analytics_events, on the path of its
-- acknowledgement, and nothing reads events by visitor any more: profiles, sessions and journeys
-- have tables of their own (0002, 0003). Without it the events' statement does a quarter less
-- index work (docs/performance.md). An operator who queries events by visitor often can create it
-- again; the service does not need it.
DROP INDEX IF EXISTS analytics_events_user_time_idx;
