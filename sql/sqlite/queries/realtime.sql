-- The realtime window's seed (SQLite): stored events per bucket of domain.realtime, read
-- through the event-time index when the metrics actor starts.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.
-- {pages}, {conversions}: one ? per event type (NULL when none). {bucket}: the bucket's
-- length in seconds, an integer.

-- name: realtime_bucket
(CAST(strftime('%s', substr(event_timestamp, 1, 19)) AS INTEGER) / {bucket})

-- name: realtime_counts
SELECT {{realtime_bucket}}, count(*), count(*) FILTER (WHERE event_type IN ({pages})),
       count(*) FILTER (WHERE event_type IN ({conversions}))
FROM analytics_events WHERE event_timestamp >= ? GROUP BY 1

-- name: realtime_pages
SELECT {{realtime_bucket}}, page_url, count(*) FROM analytics_events
WHERE event_timestamp >= ? AND event_type IN ({pages}) AND page_url IS NOT NULL
GROUP BY 1, 2

-- name: realtime_newest_by_visitor
SELECT user_fingerprint,
       CAST(strftime('%s', substr(max(event_timestamp), 1, 19)) AS INTEGER) / {bucket}
FROM analytics_events WHERE event_timestamp >= ? GROUP BY 1

-- name: realtime_newest_by_session
SELECT session_id,
       CAST(strftime('%s', substr(max(event_timestamp), 1, 19)) AS INTEGER) / {bucket}
FROM analytics_events WHERE event_timestamp >= ? GROUP BY 1
