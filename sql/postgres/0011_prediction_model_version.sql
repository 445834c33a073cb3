-- 0011_prediction_model_version: each prediction names the weighting that produced it.
--
-- 'fixed' for the formulas of docs/scoring.md (every row written before this migration), or
-- 'learned-<12 hex digits>' for a learned model (GET /api/analytics/models shows its weights).
-- A constant default is metadata only: nothing is rewritten.
ALTER TABLE ml_predictions ADD COLUMN model_version text NOT NULL DEFAULT 'fixed';
