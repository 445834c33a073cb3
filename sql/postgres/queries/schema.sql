-- The connection's checks and the migrations' bookkeeping (PostgreSQL).
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: ping
SELECT 1

-- name: table_names
SELECT table_name FROM information_schema.tables
WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'

-- name: lock_migrations
-- Held until the transaction ends; a second migrating process waits here, then reads the
-- applied set only after the first committed, so it never applies a file twice.
SELECT pg_advisory_xact_lock(%s)

-- name: migrations_table_exists
-- Checked first instead of CREATE TABLE IF NOT EXISTS: no NOTICE, no catalog lock.
SELECT to_regclass('schema_migrations')

-- name: create_migrations_table
CREATE TABLE schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied_migrations
SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version

-- name: record_migration
INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)
RETURNING applied_at

-- name: repeatable_read
-- A read snapshot: every statement of the transaction sees one state of the database.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ
