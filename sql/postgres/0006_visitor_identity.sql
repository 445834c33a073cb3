-- 0006_visitor_identity: what a profile knows of the visitor's devices and account.
--
-- device_counts counts the visitor's events per device_type (merged by adding, like
-- event_counts); customer_id is the user_id of the visitor's latest event that carried one, with
-- that event's time, so writes merge by time in any order (on equal times the greater id wins).
-- A constant default is metadata only: nothing is rewritten.
ALTER TABLE user_behavior_profiles
    ADD COLUMN device_counts  jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN customer_id    text,
    ADD COLUMN customer_id_at timestamptz;
