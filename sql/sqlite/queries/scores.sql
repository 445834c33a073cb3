-- Scores and predictions (SQLite): the scorer's records, and what it reads back.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: scored_state
SELECT scored_version, scored_at FROM user_behavior_profiles WHERE user_fingerprint = ?

-- name: insert_prediction
INSERT INTO ml_predictions (user_fingerprint, model_type, prediction_value, confidence_score,
                            factors, created_at, model_version)
VALUES (?, ?, ?, ?, ?, ?, ?)

-- name: record_score
-- A model not scored this time keeps its last recorded value.
UPDATE user_behavior_profiles SET
    segment = ?, scored_at = ?, scored_version = ?,
    engagement_score = coalesce(?, engagement_score), lead_score = coalesce(?, lead_score),
    churn_risk_score = coalesce(?, churn_risk_score),
    price_sensitivity_score = coalesce(?, price_sensitivity_score)
WHERE user_fingerprint = ?

-- name: profiles_to_rescore
SELECT {{profile_columns}} FROM user_behavior_profiles p
WHERE p.scored_at IS NULL OR p.scored_at < ? ORDER BY p.scored_at NULLS FIRST LIMIT ?

-- name: unscored_profiles
-- Profiles whose scores do not reflect their latest write.
SELECT user_fingerprint FROM user_behavior_profiles WHERE version > scored_version

-- name: recent_predictions
-- One model's latest rows, through its index.
SELECT model_type, prediction_value, confidence_score, factors, created_at, id, model_version
FROM ml_predictions
WHERE user_fingerprint = ? AND model_type = ? ORDER BY created_at DESC, id DESC LIMIT ?
