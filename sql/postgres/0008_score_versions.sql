-- 0008_score_versions: a profile records that its scores are due, in the write that changes it.
--
-- Every profile write adds one to version, in the transaction that also records the partition's
-- log position; the scorer's record sets scored_version to the version it scored. A profile with
-- version > scored_version has scores that do not reflect it yet: after a crash, the partition's
-- next owner finds those and scores them, so recorded scores never stay behind a profile.
-- Rows written before this migration start at 0 = 0 (as scored as they were); idle rescoring
-- still refreshes them. Neither column is indexed, so profile writes stay heap-only updates.
-- A constant default is metadata only: nothing is rewritten.
ALTER TABLE user_behavior_profiles
    ADD COLUMN version        bigint NOT NULL DEFAULT 0,
    ADD COLUMN scored_version bigint NOT NULL DEFAULT 0;
