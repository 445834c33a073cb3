-- 0010_model_evaluations: the backtests of the scores (GET /api/analytics/models).
--
-- A backtest (revivatech-actors evaluate --record, which the service runs every
-- scoring.learn_interval) stores its report here; every instance and worker serves the newest,
-- and starts a new one only when the newest is older than learn_interval. A few rows a day.
CREATE TABLE model_evaluations (
    id           bigserial PRIMARY KEY,
    evaluated_at timestamptz NOT NULL,
    report       jsonb NOT NULL
);
