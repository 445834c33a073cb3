-- The realtime window's seed (PostgreSQL): stored events per bucket of domain.realtime, read
-- through the event-time index when the metrics actor starts.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: realtime_bucket
floor(extract(epoch FROM event_timestamp) / %(bucket)s)::bigint

-- name: realtime_counts
SELECT {{realtime_bucket}}, count(*), count(*) FILTER (WHERE event_type = ANY(%(pages)s)),
       count(*) FILTER (WHERE event_type = ANY(%(conversions)s))
FROM analytics_events WHERE event_timestamp >= %(since)s GROUP BY 1

-- name: realtime_pages
SELECT {{realtime_bucket}}, page_url, count(*) FROM analytics_events
WHERE event_timestamp >= %(since)s AND event_type = ANY(%(pages)s) AND page_url IS NOT NULL
GROUP BY 1, 2

-- name: realtime_newest_by_visitor
SELECT user_fingerprint, floor(extract(epoch FROM max(event_timestamp)) / %(bucket)s)::bigint
FROM analytics_events WHERE event_timestamp >= %(since)s GROUP BY 1

-- name: realtime_newest_by_session
SELECT session_id, floor(extract(epoch FROM max(event_timestamp)) / %(bucket)s)::bigint
FROM analytics_events WHERE event_timestamp >= %(since)s GROUP BY 1
