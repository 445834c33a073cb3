-- The connection's checks and the migrations' bookkeeping (SQLite).
-- Named queries, loaded by revivatech_actors/storage/_queries.py. Not a migration.

-- name: ping
-- Reads the schema page, so it proves the file is there and readable, not just the library.
SELECT count(*) FROM sqlite_master

-- name: table_names
SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
) STRICT

-- name: migrations_table_exists
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'

-- name: applied_migrations
SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version

-- name: record_migration
INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)
