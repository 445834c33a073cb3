-- 0010_model_evaluations: the backtests of the scores (GET /api/analytics/models).
-- Mirrors sql/postgres/0010_model_evaluations.sql.
CREATE TABLE model_evaluations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    evaluated_at TEXT NOT NULL,
    report       TEXT NOT NULL
);
