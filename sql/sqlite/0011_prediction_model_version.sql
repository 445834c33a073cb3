-- 0011_prediction_model_version: each prediction names the weighting that produced it.
-- Mirrors sql/postgres/0011_prediction_model_version.sql.
ALTER TABLE ml_predictions ADD COLUMN model_version TEXT NOT NULL DEFAULT 'fixed';
