-- The conversion funnel (SQLite; domain.funnel says who reaches each step).
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.
-- As on PostgreSQL, the statement is built from these parts by step count (storage/sqlite),
-- in SQLite's terms: row_number() for DISTINCT ON, a window-function median. SQLite computes
-- with times to the millisecond, so a step within half a millisecond past its window still
-- counts.

-- name: funnel_events
-- {types}: one :typeN per event type of the steps.
e AS MATERIALIZED (
    SELECT user_fingerprint AS fp, event_type, event_timestamp AS t, event_id AS id
    FROM analytics_events
    WHERE event_type IN ({types})
      AND event_timestamp >= :start AND event_timestamp <= :horizon)

-- name: funnel_first_step
s1 AS (
    SELECT fp, t AS t1, t, id, NULL AS gap FROM (
        SELECT fp, t, id, row_number() OVER (PARTITION BY fp ORDER BY t, id) AS rn
        FROM e WHERE event_type = :step1 AND t < :end)
    WHERE rn = 1)

-- name: funnel_next_step
-- Step {k}, after step {prev}.
s{k} AS (
    SELECT fp, t1, t, id, gap FROM (
        SELECT p.fp, p.t1, x.t, x.id, round((julianday(x.t) - julianday(p.t)) * 86400.0, 3) AS gap,
               row_number() OVER (PARTITION BY p.fp ORDER BY x.t, x.id) AS rn
        FROM s{prev} p
        JOIN e x ON x.fp = p.fp AND x.event_type = :step{k} AND (x.t, x.id) > (p.t, p.id)
            AND (julianday(x.t) - julianday(p.t1)) * 86400.0 <= :window + 0.0005
            AND (julianday(x.t) - julianday(p.t)) * 86400.0 <= :window{k} + 0.0005)
    WHERE rn = 1)

-- name: funnel_step_figures
-- How many reached step {k}, and the median time from the step before.
(SELECT count(*) FROM s{k}), (SELECT avg(gap) FROM (
    SELECT gap, row_number() OVER (ORDER BY gap) AS rn, count(*) OVER () AS n
    FROM s{k} WHERE gap IS NOT NULL)
    WHERE rn IN ((n + 1) / 2, (n + 2) / 2))
