-- 0006_visitor_identity: what a profile knows of the visitor's devices and account.
-- Mirrors sql/postgres/0006_visitor_identity.sql.
ALTER TABLE user_behavior_profiles ADD COLUMN device_counts TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(device_counts));
ALTER TABLE user_behavior_profiles ADD COLUMN customer_id TEXT;
ALTER TABLE user_behavior_profiles ADD COLUMN customer_id_at TEXT;
