-- Stored history for backtests (PostgreSQL): every event in time order, and the backtests' reports.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: history_bounds
-- The oldest and newest event time (both NULL without events); two index probes.
SELECT (SELECT min(event_timestamp) FROM analytics_events),
       (SELECT max(event_timestamp) FROM analytics_events)

-- name: history_without_jit
-- For the scan's transaction: compiling its plan would cost more than it saves, in one burst at
-- the first fetch.
SET LOCAL jit = off

-- name: history_events
-- Events stamped at or before %(until)s, in time order: the event_timestamp index read in order
-- (ties sorted by event id as they come), so nothing is sorted whole and rows stream.
SELECT user_fingerprint, event_type, session_id, event_timestamp, value
FROM analytics_events
WHERE event_timestamp <= %(until)s
ORDER BY event_timestamp, event_id

-- name: record_evaluation
-- A backtest's report; only the newest EVALUATIONS_KEPT are kept.
INSERT INTO model_evaluations (evaluated_at, report) VALUES (%(evaluated_at)s, %(report)s::jsonb)

-- name: forget_old_evaluations
DELETE FROM model_evaluations
WHERE id <= (SELECT max(id) FROM model_evaluations) - %(kept)s

-- name: latest_evaluation
SELECT evaluated_at, report::text FROM model_evaluations ORDER BY id DESC LIMIT 1
