-- 0001_init: the analytics schema (PostgreSQL).
--
-- Applied once by revivatech_actors.storage.migrations inside one transaction, together with its
-- schema_migrations row (the runner creates that table itself). Do not add BEGIN/COMMIT here, and
-- never edit this file once released: its sha256 is recorded, a changed file is refused.
-- Changes go into a new file, 0002_<what>.sql. sql/sqlite/0001_init.sql mirrors this file:
-- same tables, same column names.

-- One row per stored event. event_id is the idempotency key: a retried request never stores twice.
-- Indexes are what ingest pays for on every row, so only those the queries need: by visitor
-- (profiles, journeys), by type and time (funnels), by time (realtime window, retention).
-- Per-session questions are answered by analytics_sessions, not by scanning events.
CREATE TABLE analytics_events (
    event_id         uuid PRIMARY KEY,
    user_fingerprint text NOT NULL,
    session_id       text NOT NULL,
    event_type       text NOT NULL,
    event_timestamp  timestamptz NOT NULL,        -- client time, corrected for clock skew
    received_at      timestamptz NOT NULL,        -- server time at ingest
    sent_at          timestamptz,                 -- client time when the request was sent
    page_url         text,
    referrer         text,
    value            double precision,
    properties       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX analytics_events_event_timestamp_idx ON analytics_events (event_timestamp);
CREATE INDEX analytics_events_user_time_idx ON analytics_events (user_fingerprint, event_timestamp);
CREATE INDEX analytics_events_type_time_idx ON analytics_events (event_type, event_timestamp);

CREATE TABLE analytics_sessions (
    session_id       text PRIMARY KEY,
    user_fingerprint text NOT NULL,
    started_at       timestamptz NOT NULL,
    last_activity_at timestamptz NOT NULL,
    event_count      bigint NOT NULL DEFAULT 0,
    page_views       bigint NOT NULL DEFAULT 0,
    entry_page       text,
    exit_page        text,
    referrer         text,
    utm_source       text
);
CREATE INDEX analytics_sessions_user_idx ON analytics_sessions (user_fingerprint, started_at);

-- Counters are updated with commutative deltas (count = count + n), so instances can share a visitor.
CREATE TABLE user_behavior_profiles (
    user_fingerprint        text PRIMARY KEY,
    total_events            bigint NOT NULL DEFAULT 0,
    total_sessions          bigint NOT NULL DEFAULT 0,
    total_page_views        bigint NOT NULL DEFAULT 0,
    bookings_started        bigint NOT NULL DEFAULT 0,
    total_bookings          bigint NOT NULL DEFAULT 0,
    total_value             double precision NOT NULL DEFAULT 0,
    first_seen              timestamptz,
    last_seen               timestamptz,
    last_booking_at         timestamptz,
    total_session_seconds   double precision NOT NULL DEFAULT 0,
    days_active             integer NOT NULL DEFAULT 0,
    segment                 text,
    engagement_score        double precision,    -- scores are 0..100
    lead_score              double precision,
    churn_risk_score        double precision,
    price_sensitivity_score double precision,
    event_counts            jsonb NOT NULL DEFAULT '{}',   -- {"page_view": 12, ...}
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_behavior_profiles_last_seen_idx ON user_behavior_profiles (last_seen);

CREATE TABLE customer_journeys (
    id                bigserial PRIMARY KEY,
    user_fingerprint  text NOT NULL,
    session_id        text NOT NULL,
    touchpoints       jsonb NOT NULL DEFAULT '[]',
    stage             text,
    first_touch_source text,
    last_touch_source text,
    started_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_fingerprint, session_id)
);

CREATE TABLE ml_predictions (
    id               bigserial PRIMARY KEY,
    user_fingerprint text NOT NULL,
    model_type       text NOT NULL,
    prediction_value double precision NOT NULL,
    confidence_score double precision,
    factors          jsonb NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ml_predictions_user_model_time_idx
    ON ml_predictions (user_fingerprint, model_type, created_at DESC);
CREATE INDEX ml_predictions_created_at_idx ON ml_predictions (created_at);  -- retention

CREATE TABLE conversion_funnels (
    id             bigserial PRIMARY KEY,
    name           text,
    steps          jsonb NOT NULL,
    window_seconds integer NOT NULL,
    from_ts        timestamptz,
    to_ts          timestamptz,
    result         jsonb NOT NULL,
    computed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversion_funnels_computed_at_idx ON conversion_funnels (computed_at);

CREATE TABLE analytics_aggregations (
    id             bigserial PRIMARY KEY,
    metric         text NOT NULL,
    bucket_start   timestamptz NOT NULL,
    bucket_seconds integer NOT NULL,
    dimension      text NOT NULL DEFAULT '',
    value          double precision NOT NULL DEFAULT 0,
    UNIQUE (metric, bucket_start, bucket_seconds, dimension)
);
CREATE INDEX analytics_aggregations_bucket_start_idx ON analytics_aggregations (bucket_start);

-- Dead letters: events refused by validation or by the database, kept instead of dropped.
CREATE TABLE rejected_events (
    id          bigserial PRIMARY KEY,
    letter_id   uuid NOT NULL UNIQUE,   -- idempotency key: a retried write stores a letter once
    received_at timestamptz NOT NULL,
    source      text NOT NULL CHECK (source IN ('validation', 'database')),
    reasons     jsonb NOT NULL,
    payload     text NOT NULL       -- the raw payload, truncated by the writer
);
CREATE INDEX rejected_events_received_at_idx ON rejected_events (received_at);
