-- 0001_init: the analytics schema (SQLite), mirroring sql/postgres/0001_init.sql: same tables,
-- same column names.
--
-- Applied once by revivatech_actors.storage.migrations inside one transaction (BEGIN IMMEDIATE),
-- together with its schema_migrations row. Do not add BEGIN/COMMIT here, and never edit this file
-- once released: its sha256 is recorded, a changed file is refused. Changes go into 0002_<what>.sql.
--
-- Type conventions (STRICT tables, so a wrong type is an error instead of a silent coercion):
--   uuid        TEXT, canonical lower-case 8-4-4-4-12 form
--   timestamp   TEXT, UTC, fixed width 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (so text order = time order);
--               storage.sqlite.format_timestamp() writes it, the column defaults below match it
--   json(b)     TEXT holding valid JSON (checked)
--   serial      INTEGER PRIMARY KEY AUTOINCREMENT
--   float       REAL; counters INTEGER

-- Indexes are what ingest pays for on every row, so only those the queries need: by visitor
-- (profiles, journeys), by type and time (funnels), by time (realtime window, retention).
-- Per-session questions are answered by analytics_sessions, not by scanning events.
CREATE TABLE analytics_events (
    event_id         TEXT PRIMARY KEY,
    user_fingerprint TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    event_timestamp  TEXT NOT NULL,        -- client time, corrected for clock skew
    received_at      TEXT NOT NULL,        -- server time at ingest
    sent_at          TEXT,                 -- client time when the request was sent
    page_url         TEXT,
    referrer         TEXT,
    value            REAL,
    properties       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(properties))
) STRICT;
CREATE INDEX analytics_events_event_timestamp_idx ON analytics_events (event_timestamp);
CREATE INDEX analytics_events_user_time_idx ON analytics_events (user_fingerprint, event_timestamp);
CREATE INDEX analytics_events_type_time_idx ON analytics_events (event_type, event_timestamp);

CREATE TABLE analytics_sessions (
    session_id       TEXT PRIMARY KEY,
    user_fingerprint TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    last_activity_at TEXT NOT NULL,
    event_count      INTEGER NOT NULL DEFAULT 0,
    page_views       INTEGER NOT NULL DEFAULT 0,
    entry_page       TEXT,
    exit_page        TEXT,
    referrer         TEXT,
    utm_source       TEXT
) STRICT;
CREATE INDEX analytics_sessions_user_idx ON analytics_sessions (user_fingerprint, started_at);

CREATE TABLE user_behavior_profiles (
    user_fingerprint        TEXT PRIMARY KEY,
    total_events            INTEGER NOT NULL DEFAULT 0,
    total_sessions          INTEGER NOT NULL DEFAULT 0,
    total_page_views        INTEGER NOT NULL DEFAULT 0,
    bookings_started        INTEGER NOT NULL DEFAULT 0,
    total_bookings          INTEGER NOT NULL DEFAULT 0,
    total_value             REAL NOT NULL DEFAULT 0,
    first_seen              TEXT,
    last_seen               TEXT,
    last_booking_at         TEXT,
    total_session_seconds   REAL NOT NULL DEFAULT 0,
    days_active             INTEGER NOT NULL DEFAULT 0,
    segment                 TEXT,
    engagement_score        REAL,          -- scores are 0..100
    lead_score              REAL,
    churn_risk_score        REAL,
    price_sensitivity_score REAL,
    event_counts            TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(event_counts)),
    updated_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
) STRICT;
CREATE INDEX user_behavior_profiles_last_seen_idx ON user_behavior_profiles (last_seen);

CREATE TABLE customer_journeys (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    user_fingerprint   TEXT NOT NULL,
    session_id         TEXT NOT NULL,
    touchpoints        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(touchpoints)),
    stage              TEXT,
    first_touch_source TEXT,
    last_touch_source  TEXT,
    started_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    UNIQUE (user_fingerprint, session_id)
) STRICT;

CREATE TABLE ml_predictions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_fingerprint TEXT NOT NULL,
    model_type       TEXT NOT NULL,
    prediction_value REAL NOT NULL,
    confidence_score REAL,
    factors          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(factors)),
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
) STRICT;
CREATE INDEX ml_predictions_user_model_time_idx
    ON ml_predictions (user_fingerprint, model_type, created_at DESC);
CREATE INDEX ml_predictions_created_at_idx ON ml_predictions (created_at);

CREATE TABLE conversion_funnels (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT,
    steps          TEXT NOT NULL CHECK (json_valid(steps)),
    window_seconds INTEGER NOT NULL,
    from_ts        TEXT,
    to_ts          TEXT,
    result         TEXT NOT NULL CHECK (json_valid(result)),
    computed_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
) STRICT;
CREATE INDEX conversion_funnels_computed_at_idx ON conversion_funnels (computed_at);

CREATE TABLE analytics_aggregations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    metric         TEXT NOT NULL,
    bucket_start   TEXT NOT NULL,
    bucket_seconds INTEGER NOT NULL,
    dimension      TEXT NOT NULL DEFAULT '',
    value          REAL NOT NULL DEFAULT 0,
    UNIQUE (metric, bucket_start, bucket_seconds, dimension)
) STRICT;
CREATE INDEX analytics_aggregations_bucket_start_idx ON analytics_aggregations (bucket_start);

CREATE TABLE rejected_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    letter_id   TEXT NOT NULL UNIQUE,   -- idempotency key: a retried write stores a letter once
    received_at TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('validation', 'database')),
    reasons     TEXT NOT NULL CHECK (json_valid(reasons)),
    payload     TEXT NOT NULL       -- the raw payload, truncated by the writer
) STRICT;
CREATE INDEX rejected_events_received_at_idx ON rejected_events (received_at);
