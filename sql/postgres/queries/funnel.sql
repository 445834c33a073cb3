-- The conversion funnel (PostgreSQL; domain.funnel says who reaches each step).
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.
-- The step count shapes the statement, so storage/postgres builds it from these parts:
-- WITH funnel_events, funnel_first_step, funnel_next_step for k = 2..n,
-- SELECT funnel_step_figures for k = 1..n. Every value is a parameter. The events of the
-- steps' types in the range (plus the window) are read once; each step keeps, per visitor, the
-- first matching event after the previous step's (hash joins on the visitor, DISTINCT ON):
-- linear in those events, whatever the planner knows of the tables.

-- name: funnel_events
e AS MATERIALIZED (
    SELECT user_fingerprint AS fp, event_type, event_timestamp AS t, event_id AS id
    FROM analytics_events
    WHERE event_type = ANY(%(types)s) AND event_timestamp >= %(start)s
      AND event_timestamp <= %(horizon)s)

-- name: funnel_first_step
s1 AS (
    SELECT DISTINCT ON (fp) fp, t AS t1, t, id, NULL::double precision AS gap
    FROM e WHERE event_type = %(step1)s AND t < %(end)s
    ORDER BY fp, t, id)

-- name: funnel_next_step
-- Step {k}, after step {prev}.
s{k} AS (
    SELECT DISTINCT ON (p.fp) p.fp, p.t1, x.t, x.id,
           extract(epoch FROM x.t - p.t)::double precision AS gap
    FROM s{prev} p
    JOIN e x ON x.fp = p.fp AND x.event_type = %(step{k})s AND (x.t, x.id) > (p.t, p.id)
        AND x.t <= p.t1 + make_interval(secs => %(window)s)
        AND x.t <= p.t + make_interval(secs => %(window{k})s)
    ORDER BY p.fp, x.t, x.id)

-- name: funnel_step_figures
-- How many reached step {k}, and the median time from the step before.
(SELECT count(*) FROM s{k}),
(SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) FROM s{k})

-- name: funnel_timeout
SELECT set_config('statement_timeout', %s, true)

-- name: funnel_no_nested_loops
-- Joins on the visitor by hash, never nested loops: without fresh statistics (autovacuum off,
-- a table just loaded) the planner guesses a few rows and a nested loop over the events turns
-- the funnel quadratic.
SELECT set_config('enable_nestloop', 'off', true)
