-- 0008_score_versions: a profile records that its scores are due, in the write that changes it.
-- Mirrors sql/postgres/0008_score_versions.sql.
ALTER TABLE user_behavior_profiles ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_behavior_profiles ADD COLUMN scored_version INTEGER NOT NULL DEFAULT 0;
