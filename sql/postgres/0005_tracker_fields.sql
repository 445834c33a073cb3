-- 0005_tracker_fields: what trackers send beside the core fields, as columns analysts can query;
-- identical dead letters kept once.
--
-- The original RevivaTech tracker sends its own event id, an event name, UTM parameters and the
-- device it runs on with every event; the request brings the user agent and the client's address
-- (kept per ingest.client_ip). Nullable columns without defaults: adding them rewrites nothing.
ALTER TABLE analytics_events
    ADD COLUMN client_event_id       text,              -- the client's id as sent, when it is not event_id
    ADD COLUMN event_name            text,
    ADD COLUMN user_id               text,              -- the site's own id of a signed-in user
    ADD COLUMN utm_source            text,
    ADD COLUMN utm_medium            text,
    ADD COLUMN utm_campaign          text,
    ADD COLUMN utm_term              text,
    ADD COLUMN utm_content           text,
    ADD COLUMN device_type           text,
    ADD COLUMN browser               text,
    ADD COLUMN os                    text,
    ADD COLUMN screen_resolution     text,
    ADD COLUMN viewport_size         text,
    ADD COLUMN time_on_page          double precision,  -- as sent (the RevivaTech tracker: milliseconds)
    ADD COLUMN time_since_last_event double precision,  -- as sent (milliseconds)
    ADD COLUMN user_agent            text,
    ADD COLUMN ip_address            inet;

-- A client that resends a refused batch forever sends the same dead letter each time: its
-- letter_id is derived from its content, the row is kept once and counts the repeats.
ALTER TABLE rejected_events
    ADD COLUMN times_received   bigint NOT NULL DEFAULT 1,
    ADD COLUMN last_received_at timestamptz;
