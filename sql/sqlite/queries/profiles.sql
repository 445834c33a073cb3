-- Profiles, their sessions, journeys and active days (SQLite).
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.
-- One writer holds the database (BEGIN IMMEDIATE): a visitor's rows are written one statement
-- at a time, and journeys are merged in Python (domain.journeys.merge_journey).

-- name: profile_columns
-- A profile row as ProfileState reads it (p is user_behavior_profiles). Session time is summed
-- from the visitor's sessions, plus the time of those the retention janitor deleted.
p.user_fingerprint, p.total_events, p.total_sessions, p.total_page_views, p.bookings_started,
p.total_bookings, p.total_value, p.first_seen, p.last_seen, p.last_booking_at,
p.retired_session_seconds + (
    SELECT coalesce(sum((julianday(s.last_activity_at) - julianday(s.started_at)) * 86400.0), 0.0)
    FROM analytics_sessions s WHERE s.user_fingerprint = p.user_fingerprint),
p.days_active, p.event_counts, p.segment, p.engagement_score, p.lead_score, p.churn_risk_score,
p.price_sensitivity_score, p.updated_at, p.device_counts, p.customer_id, p.customer_id_at,
p.version

-- name: upsert_profile
-- The profile takes the delta: counters added, times the least / greatest, counts per type
-- and device summed.
INSERT INTO user_behavior_profiles AS p (user_fingerprint, total_events, total_page_views,
                                         bookings_started, total_bookings, total_value,
                                         first_seen, last_seen, last_booking_at, days_active,
                                         total_sessions, event_counts, device_counts,
                                         customer_id, customer_id_at, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
ON CONFLICT (user_fingerprint) DO UPDATE SET
    total_events = p.total_events + excluded.total_events,
    total_page_views = p.total_page_views + excluded.total_page_views,
    bookings_started = p.bookings_started + excluded.bookings_started,
    total_bookings = p.total_bookings + excluded.total_bookings,
    total_value = p.total_value + excluded.total_value,
    first_seen = coalesce(min(p.first_seen, excluded.first_seen), p.first_seen,
                          excluded.first_seen),
    last_seen = coalesce(max(p.last_seen, excluded.last_seen), p.last_seen, excluded.last_seen),
    last_booking_at = coalesce(max(p.last_booking_at, excluded.last_booking_at),
                               p.last_booking_at, excluded.last_booking_at),
    days_active = p.days_active + excluded.days_active,
    total_sessions = p.total_sessions + excluded.total_sessions,
    event_counts = (SELECT json_group_object(key, total) FROM (
        SELECT key, sum(value) AS total FROM (
            SELECT key, value FROM json_each(p.event_counts)
            UNION ALL SELECT key, value FROM json_each(excluded.event_counts)
        ) GROUP BY key)),
    device_counts = (SELECT coalesce(json_group_object(key, total), '{}') FROM (
        SELECT key, sum(value) AS total FROM (
            SELECT key, value FROM json_each(p.device_counts)
            UNION ALL SELECT key, value FROM json_each(excluded.device_counts)
        ) GROUP BY key)),
    -- the later event's user_id; on equal times the greater id (domain.profiles._later_id)
    customer_id = CASE WHEN excluded.customer_id_at IS NOT NULL
                            AND (p.customer_id_at IS NULL
                                 OR excluded.customer_id_at > p.customer_id_at
                                 OR (excluded.customer_id_at = p.customer_id_at
                                     AND excluded.customer_id > p.customer_id))
                       THEN excluded.customer_id ELSE p.customer_id END,
    customer_id_at = coalesce(max(p.customer_id_at, excluded.customer_id_at),
                              p.customer_id_at, excluded.customer_id_at),
    -- its scores are due (migration 0008)
    version = p.version + 1,
    updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
RETURNING user_fingerprint

-- name: insert_active_day
INSERT INTO visitor_active_days (user_fingerprint, day) VALUES (?, ?) ON CONFLICT DO NOTHING

-- name: last_booking
SELECT last_booking_at FROM user_behavior_profiles WHERE user_fingerprint = ?

-- name: select_journey
SELECT touchpoints, stage, first_touch_source, first_touch_at, last_touch_source,
       last_touch_at, started_at, updated_at
FROM customer_journeys WHERE user_fingerprint = ? AND session_id = ?

-- name: upsert_journey
-- The row as merge_journey made it (in Python, under the write lock).
INSERT INTO customer_journeys (user_fingerprint, session_id, touchpoints, stage,
                               first_touch_source, first_touch_at, last_touch_source,
                               last_touch_at, started_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (user_fingerprint, session_id) DO UPDATE SET
    touchpoints = excluded.touchpoints, stage = excluded.stage,
    first_touch_source = excluded.first_touch_source, first_touch_at = excluded.first_touch_at,
    last_touch_source = excluded.last_touch_source, last_touch_at = excluded.last_touch_at,
    started_at = excluded.started_at, updated_at = excluded.updated_at

-- name: upsert_session
-- The session merge of domain.sessions.SessionDelta.merged.
INSERT INTO analytics_sessions AS s (session_id, user_fingerprint, started_at, last_activity_at,
                                     event_count, page_views, entry_page, exit_page, referrer,
                                     utm_source)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET
    event_count = s.event_count + excluded.event_count,
    page_views = s.page_views + excluded.page_views,
    entry_page = CASE WHEN excluded.started_at < s.started_at
                      THEN excluded.entry_page ELSE s.entry_page END,
    exit_page = CASE WHEN excluded.last_activity_at >= s.last_activity_at
                     THEN excluded.exit_page ELSE s.exit_page END,
    referrer = CASE WHEN excluded.started_at < s.started_at
                    THEN excluded.referrer ELSE s.referrer END,
    utm_source = CASE WHEN excluded.started_at < s.started_at
                      THEN excluded.utm_source ELSE s.utm_source END,
    started_at = min(s.started_at, excluded.started_at),
    last_activity_at = max(s.last_activity_at, excluded.last_activity_at)

-- name: load_profiles
-- {marks}: one ? per visitor.
SELECT {{profile_columns}} FROM user_behavior_profiles p WHERE p.user_fingerprint IN ({marks})

-- name: visitor_sessions
SELECT session_id FROM customer_journeys WHERE user_fingerprint = ?

-- name: visitor_days
SELECT day FROM visitor_active_days WHERE user_fingerprint = ?

-- name: load_journeys
SELECT session_id, touchpoints, stage, first_touch_source, last_touch_source, started_at,
       updated_at, first_touch_at, last_touch_at
FROM customer_journeys WHERE user_fingerprint = ? ORDER BY started_at, id
