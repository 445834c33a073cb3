-- Profiles, their sessions, journeys and active days (PostgreSQL).
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: profile_columns
-- A profile row as ProfileState reads it (p is user_behavior_profiles). Session time is summed
-- from the visitor's sessions, where it grows as each session goes on, plus the time of those
-- the retention janitor deleted (migration 0009).
p.user_fingerprint, p.total_events, p.total_sessions, p.total_page_views, p.bookings_started,
p.total_bookings, p.total_value, p.first_seen, p.last_seen, p.last_booking_at,
p.retired_session_seconds + (
    SELECT coalesce(sum(extract(epoch FROM s.last_activity_at - s.started_at)), 0)::double precision
    FROM analytics_sessions s WHERE s.user_fingerprint = p.user_fingerprint),
p.days_active, p.event_counts, p.segment, p.engagement_score, p.lead_score, p.churn_risk_score,
p.price_sensitivity_score, p.updated_at, p.device_counts, p.customer_id, p.customer_id_at,
p.version

-- name: upsert_profiles
-- Profile deltas, session journeys and session rows travel as JSON parameters (binding arrays
-- costs Python time per value). In one statement: new days and journeys are inserted (a
-- journey row is the visitor's session: a new row adds one to total_sessions), journeys get
-- their touchpoints appended and their stage raised, session rows their counts and times, and
-- the profile takes the delta. Each table's rows are taken in key order (sessions by id,
-- journeys by visitor and session, profiles by visitor), so two writers, and a writer and the
-- scorer, lock them in one order and do not deadlock.
-- The journey merge is domain.journeys.merge_journey's rule, in SQL; the session merge is
-- domain.sessions.SessionDelta.merged's.
WITH d AS (
    SELECT * FROM jsonb_to_recordset(%(deltas)s::jsonb) AS d (
        user_fingerprint text, events bigint, page_views bigint, bookings_started bigint,
        bookings_completed bigint, value double precision, first_seen timestamptz,
        last_seen timestamptz, last_booking_at timestamptz, days jsonb, counts jsonb,
        devices jsonb, customer_id text, customer_id_at timestamptz)
), j AS (
    SELECT * FROM jsonb_to_recordset(%(journeys)s::jsonb) AS j (
        user_fingerprint text, session_id text, touchpoints jsonb, stage text,
        started_at timestamptz, last_at timestamptz, first_source text,
        first_source_at timestamptz, last_source text, last_source_at timestamptz)
), new_days AS (
    INSERT INTO visitor_active_days (user_fingerprint, day)
    SELECT d.user_fingerprint, x.day::date FROM d, jsonb_array_elements_text(d.days) AS x (day)
    ON CONFLICT DO NOTHING
    RETURNING user_fingerprint
), sessions AS (
    INSERT INTO analytics_sessions AS s (session_id, user_fingerprint, started_at,
                                         last_activity_at, event_count, page_views, entry_page,
                                         exit_page, referrer, utm_source)
    SELECT * FROM jsonb_to_recordset(%(sessions)s::jsonb) AS x (
        session_id text, user_fingerprint text, started_at timestamptz,
        last_activity_at timestamptz, event_count bigint, page_views bigint, entry_page text,
        exit_page text, referrer text, utm_source text)
    ORDER BY session_id
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
        started_at = least(s.started_at, excluded.started_at),
        last_activity_at = greatest(s.last_activity_at, excluded.last_activity_at)
), journeys AS (
    INSERT INTO customer_journeys AS c (user_fingerprint, session_id, touchpoints, stage,
                                        first_touch_source, first_touch_at, last_touch_source,
                                        last_touch_at, started_at, updated_at)
    SELECT j.user_fingerprint, j.session_id, j.touchpoints,
           -- A session that started after the visitor's last completed booking is retention.
           -- Subqueries, not joins: the planner, guessing 100 rows for jsonb_to_recordset,
           -- would hash-join whole tables, a cost that grows with every visitor stored.
           CASE WHEN j.stage <> 'booking' AND EXISTS (
                    SELECT FROM user_behavior_profiles p0
                    WHERE p0.user_fingerprint = j.user_fingerprint
                      AND p0.last_booking_at IS NOT NULL
                      AND p0.last_booking_at < least(j.started_at, (
                          SELECT cj.started_at FROM customer_journeys cj
                          WHERE cj.user_fingerprint = j.user_fingerprint
                            AND cj.session_id = j.session_id)))
                THEN 'retention' ELSE j.stage END,
           j.first_source, j.first_source_at, j.last_source, j.last_source_at, j.started_at,
           j.last_at
    FROM j ORDER BY j.user_fingerprint, j.session_id
    ON CONFLICT (user_fingerprint, session_id) DO UPDATE SET
        touchpoints = CASE
            WHEN jsonb_array_length(c.touchpoints) >= %(max_touchpoints)s THEN c.touchpoints
            WHEN jsonb_array_length(c.touchpoints) + jsonb_array_length(excluded.touchpoints)
                 <= %(max_touchpoints)s
                THEN c.touchpoints || excluded.touchpoints
            ELSE jsonb_path_query_array(c.touchpoints || excluded.touchpoints, '$[0 to $n]',
                                        jsonb_build_object('n', %(max_touchpoints)s - 1)) END,
        stage = CASE WHEN coalesce(array_position(%(stages)s::text[], excluded.stage), 0)
                          > coalesce(array_position(%(stages)s::text[], c.stage), 0)
                     THEN excluded.stage ELSE c.stage END,
        first_touch_source = CASE WHEN c.first_touch_at IS NULL
                                       OR excluded.first_touch_at < c.first_touch_at
                                  THEN coalesce(excluded.first_touch_source, c.first_touch_source)
                                  ELSE c.first_touch_source END,
        first_touch_at = least(c.first_touch_at, excluded.first_touch_at),
        last_touch_source = CASE WHEN c.last_touch_at IS NULL
                                      OR excluded.last_touch_at >= c.last_touch_at
                                 THEN coalesce(excluded.last_touch_source, c.last_touch_source)
                                 ELSE c.last_touch_source END,
        last_touch_at = greatest(c.last_touch_at, excluded.last_touch_at),
        started_at = least(c.started_at, excluded.started_at),
        updated_at = greatest(c.updated_at, excluded.updated_at)
    RETURNING user_fingerprint, (xmax = 0) AS inserted
)
INSERT INTO user_behavior_profiles AS p (user_fingerprint, total_events, total_page_views,
                                         bookings_started, total_bookings, total_value,
                                         first_seen, last_seen, last_booking_at, days_active,
                                         total_sessions, event_counts, device_counts,
                                         customer_id, customer_id_at, version)
SELECT d.user_fingerprint, d.events, d.page_views, d.bookings_started, d.bookings_completed,
       d.value, d.first_seen, d.last_seen, d.last_booking_at, coalesce(nd.n, 0),
       coalesce(ns.n, 0), d.counts, d.devices, d.customer_id, d.customer_id_at, 1
FROM d
LEFT JOIN (SELECT user_fingerprint, count(*) AS n FROM new_days GROUP BY 1) nd
    USING (user_fingerprint)
LEFT JOIN (SELECT user_fingerprint, count(*) AS n FROM journeys WHERE inserted GROUP BY 1) ns
    USING (user_fingerprint)
-- profile rows locked in key order, as the scorer's records lock them
ORDER BY d.user_fingerprint
ON CONFLICT (user_fingerprint) DO UPDATE SET
    total_events = p.total_events + excluded.total_events,
    total_page_views = p.total_page_views + excluded.total_page_views,
    bookings_started = p.bookings_started + excluded.bookings_started,
    total_bookings = p.total_bookings + excluded.total_bookings,
    total_value = p.total_value + excluded.total_value,
    first_seen = least(p.first_seen, excluded.first_seen),
    last_seen = greatest(p.last_seen, excluded.last_seen),
    last_booking_at = greatest(p.last_booking_at, excluded.last_booking_at),
    days_active = p.days_active + excluded.days_active,
    total_sessions = p.total_sessions + excluded.total_sessions,
    -- only the delta's few types are visited: each replaced by the stored count plus the delta
    event_counts = p.event_counts || coalesce((
        SELECT jsonb_object_agg(key, coalesce((p.event_counts ->> key)::bigint, 0) + value::bigint)
        FROM jsonb_each_text(excluded.event_counts)), '{}'),
    device_counts = p.device_counts || coalesce((
        SELECT jsonb_object_agg(key, coalesce((p.device_counts ->> key)::bigint, 0) + value::bigint)
        FROM jsonb_each_text(excluded.device_counts)), '{}'),
    -- the later event's user_id; on equal times the greater id (domain.profiles._later_id)
    customer_id = CASE WHEN excluded.customer_id_at IS NOT NULL
                            AND (p.customer_id_at IS NULL
                                 OR excluded.customer_id_at > p.customer_id_at
                                 OR (excluded.customer_id_at = p.customer_id_at
                                     AND excluded.customer_id > p.customer_id))
                       THEN excluded.customer_id ELSE p.customer_id END,
    customer_id_at = greatest(p.customer_id_at, excluded.customer_id_at),
    -- its scores are due (migration 0008)
    version = p.version + 1,
    updated_at = now()

-- name: load_profiles
SELECT {{profile_columns}} FROM user_behavior_profiles p
WHERE p.user_fingerprint = ANY(%s::text[])

-- name: visitor_keys
-- The sessions and days storage counts for a visitor.
SELECT 'session', session_id FROM customer_journeys WHERE user_fingerprint = %(fp)s
UNION ALL SELECT 'day', day::text FROM visitor_active_days WHERE user_fingerprint = %(fp)s

-- name: load_journeys
SELECT session_id, touchpoints, stage, first_touch_source, last_touch_source, started_at,
       updated_at, first_touch_at, last_touch_at
FROM customer_journeys WHERE user_fingerprint = %s ORDER BY started_at, id
