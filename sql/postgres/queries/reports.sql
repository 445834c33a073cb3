-- Admin reports (PostgreSQL): reads for /dashboard, /revenue, /performance, /customers.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.
-- The page and the top visitors are chosen in a subquery, so the session time of
-- profile_columns is summed for the rows shown only.

-- name: count_profiles
SELECT count(*) FROM user_behavior_profiles

-- name: profiles_page
SELECT {{profile_columns}}
FROM (SELECT * FROM user_behavior_profiles
      ORDER BY last_seen DESC NULLS LAST, user_fingerprint
      LIMIT %(limit)s OFFSET %(offset)s) p
ORDER BY p.last_seen DESC NULLS LAST, p.user_fingerprint

-- name: top_profiles
SELECT {{profile_columns}}
FROM (SELECT * FROM user_behavior_profiles WHERE last_seen >= %(since)s
      ORDER BY engagement_score DESC NULLS LAST, last_seen DESC, user_fingerprint
      LIMIT %(limit)s) p
ORDER BY p.engagement_score DESC NULLS LAST, p.last_seen DESC, p.user_fingerprint

-- name: visitor_counts
SELECT count(*) FILTER (WHERE last_seen >= %(since)s),
       count(*) FILTER (WHERE first_seen >= %(since)s)
FROM user_behavior_profiles

-- name: revenue_by_day
SELECT (event_timestamp AT TIME ZONE 'UTC')::date, coalesce(sum(value), 0)::double precision,
       count(*)
FROM analytics_events
WHERE event_type = ANY(%(types)s) AND event_timestamp >= %(since)s
  AND event_timestamp < %(until)s
GROUP BY 1 ORDER BY 1

-- name: booking_events
SELECT user_fingerprint, event_type, event_timestamp, value FROM (
    SELECT * FROM analytics_events
    WHERE event_type = ANY(%(types)s) AND event_timestamp >= %(since)s
      AND event_timestamp < %(until)s
    ORDER BY event_timestamp DESC, event_id DESC LIMIT %(limit)s) e
ORDER BY event_timestamp, event_id
