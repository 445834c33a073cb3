-- Admin reports (SQLite): reads for /dashboard, /revenue, /performance, /customers.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.
-- The page and the top visitors are chosen in a subquery, so the session time of
-- profile_columns is summed for the rows shown only. Stored times are fixed-width UTC text, so
-- comparing the text compares the times, and its first 10 characters are the UTC day.

-- name: count_profiles
SELECT count(*) FROM user_behavior_profiles

-- name: profiles_page
SELECT {{profile_columns}}
FROM (SELECT * FROM user_behavior_profiles
      ORDER BY last_seen IS NULL, last_seen DESC, user_fingerprint LIMIT ? OFFSET ?) p
ORDER BY p.last_seen IS NULL, p.last_seen DESC, p.user_fingerprint

-- name: top_profiles
SELECT {{profile_columns}}
FROM (SELECT * FROM user_behavior_profiles WHERE last_seen >= ?
      ORDER BY engagement_score IS NULL, engagement_score DESC, last_seen DESC, user_fingerprint
      LIMIT ?) p
ORDER BY p.engagement_score IS NULL, p.engagement_score DESC, p.last_seen DESC,
         p.user_fingerprint

-- name: visitor_counts
SELECT count(*) FILTER (WHERE last_seen >= ?), count(*) FILTER (WHERE first_seen >= ?)
FROM user_behavior_profiles

-- name: revenue_by_day
-- {types}: one ? per event type (NULL when none).
SELECT substr(event_timestamp, 1, 10), coalesce(sum(value), 0.0), count(*)
FROM analytics_events
WHERE event_type IN ({types}) AND event_timestamp >= ? AND event_timestamp < ?
GROUP BY 1 ORDER BY 1

-- name: booking_events
-- {types}: one ? per event type (NULL when none).
SELECT user_fingerprint, event_type, event_timestamp, value FROM (
    SELECT * FROM analytics_events
    WHERE event_type IN ({types}) AND event_timestamp >= ? AND event_timestamp < ?
    ORDER BY event_timestamp DESC, event_id DESC LIMIT ?)
ORDER BY event_timestamp, event_id
