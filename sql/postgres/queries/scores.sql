-- Scores and predictions (PostgreSQL): the scorer's records, and what it reads back.
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: record_scores
-- The scorer's results: a prediction row per model that moved, and the profile's current
-- figures. A result older than the one stored (scoring an earlier version of the profile, or
-- the same version earlier: two instances scoring one visitor) changes nothing. Each result
-- finds its profile by key (a subquery, then ON CONFLICT), never by a join: the planner,
-- guessing 100 rows for jsonb_to_recordset and working from statistics that lag a growing
-- table, would hash-join the whole profiles table, a cost that grows with every visitor.
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r (
        user_fingerprint text, scored_at timestamptz, segment text, version bigint,
        predictions jsonb)
), fresh AS (
    -- one result per visitor (Storage.record_scores keeps the newest)
    SELECT * FROM r
    WHERE (SELECT (p0.scored_version, coalesce(p0.scored_at, '-infinity'))
                  <= (r.version, r.scored_at)
           FROM user_behavior_profiles p0 WHERE p0.user_fingerprint = r.user_fingerprint)
), predictions AS (
    INSERT INTO ml_predictions (user_fingerprint, model_type, prediction_value,
                                confidence_score, factors, created_at, model_version)
    SELECT f.user_fingerprint, x.model_type, x.value, x.confidence, x.factors, f.scored_at,
           x.model_version
    FROM fresh f, jsonb_to_recordset(f.predictions) AS x (
        model_type text, value double precision, confidence double precision, factors jsonb,
        model_version text)
    RETURNING user_fingerprint, model_type, prediction_value
), recorded AS (
    SELECT user_fingerprint,
           max(prediction_value) FILTER (WHERE model_type = 'engagement_scoring') AS engagement,
           max(prediction_value) FILTER (WHERE model_type = 'lead_scoring') AS lead,
           max(prediction_value) FILTER (WHERE model_type = 'churn_prediction') AS churn,
           max(prediction_value) FILTER (WHERE model_type = 'price_sensitivity') AS price
    FROM predictions GROUP BY user_fingerprint
)
-- fresh holds only stored visitors, so this inserts nothing: ON CONFLICT is the update by key
INSERT INTO user_behavior_profiles AS p (user_fingerprint, segment, scored_at, scored_version,
                                         engagement_score, lead_score, churn_risk_score,
                                         price_sensitivity_score)
SELECT f.user_fingerprint, f.segment, f.scored_at, f.version, recorded.engagement,
       recorded.lead, recorded.churn, recorded.price
FROM fresh f LEFT JOIN recorded USING (user_fingerprint)
-- rows locked in key order, as profile writes lock them: no deadlock
ORDER BY f.user_fingerprint
ON CONFLICT (user_fingerprint) DO UPDATE SET
    segment = excluded.segment,
    scored_at = greatest(p.scored_at, excluded.scored_at),
    scored_version = excluded.scored_version,
    engagement_score = coalesce(excluded.engagement_score, p.engagement_score),
    lead_score = coalesce(excluded.lead_score, p.lead_score),
    churn_risk_score = coalesce(excluded.churn_risk_score, p.churn_risk_score),
    price_sensitivity_score = coalesce(excluded.price_sensitivity_score,
                                       p.price_sensitivity_score)
WHERE (p.scored_version, coalesce(p.scored_at, '-infinity'))
      <= (excluded.scored_version, excluded.scored_at)

-- name: profiles_to_rescore
SELECT {{profile_columns}} FROM user_behavior_profiles p
WHERE p.scored_at IS NULL OR p.scored_at < %s ORDER BY p.scored_at NULLS FIRST LIMIT %s

-- name: unscored_profiles
-- Profiles whose scores do not reflect their latest write.
SELECT user_fingerprint FROM user_behavior_profiles WHERE version > scored_version

-- name: recent_predictions
-- Each model's latest rows, through the (user_fingerprint, model_type, created_at) index.
SELECT x.model_type, x.prediction_value, x.confidence_score, x.factors, x.created_at,
       x.model_version
FROM unnest(%(models)s::text[]) AS m (model_type), LATERAL (
    SELECT * FROM ml_predictions
    WHERE user_fingerprint = %(fp)s AND model_type = m.model_type
    ORDER BY created_at DESC, id DESC LIMIT %(limit)s) AS x
ORDER BY x.created_at DESC, x.id DESC
