-- 0005_tracker_fields: what trackers send beside the core fields, as columns analysts can query;
-- identical dead letters kept once. Mirrors sql/postgres/0005_tracker_fields.sql.
ALTER TABLE analytics_events ADD COLUMN client_event_id TEXT;
ALTER TABLE analytics_events ADD COLUMN event_name TEXT;
ALTER TABLE analytics_events ADD COLUMN user_id TEXT;
ALTER TABLE analytics_events ADD COLUMN utm_source TEXT;
ALTER TABLE analytics_events ADD COLUMN utm_medium TEXT;
ALTER TABLE analytics_events ADD COLUMN utm_campaign TEXT;
ALTER TABLE analytics_events ADD COLUMN utm_term TEXT;
ALTER TABLE analytics_events ADD COLUMN utm_content TEXT;
ALTER TABLE analytics_events ADD COLUMN device_type TEXT;
ALTER TABLE analytics_events ADD COLUMN browser TEXT;
ALTER TABLE analytics_events ADD COLUMN os TEXT;
ALTER TABLE analytics_events ADD COLUMN screen_resolution TEXT;
ALTER TABLE analytics_events ADD COLUMN viewport_size TEXT;
ALTER TABLE analytics_events ADD COLUMN time_on_page REAL;
ALTER TABLE analytics_events ADD COLUMN time_since_last_event REAL;
ALTER TABLE analytics_events ADD COLUMN user_agent TEXT;
ALTER TABLE analytics_events ADD COLUMN ip_address TEXT;

ALTER TABLE rejected_events ADD COLUMN times_received INTEGER NOT NULL DEFAULT 1;
ALTER TABLE rejected_events ADD COLUMN last_received_at TEXT;
