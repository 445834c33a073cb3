"""Migrations: pure discovery and planning (no event loop), then applying on both engines."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.resources
import re

import pytest
import trio

from revivatech_actors.storage import AppliedMigration, MigrationError, open_storage
from revivatech_actors.storage.migrations import (
    checksum,
    discover_migrations,
    load_migrations,
    migrations_from_texts,
    parse_migration_filename,
    plan_migrations,
)
from revivatech_actors.storage.sqlite import split_statements

EXPECTED_TABLES = {
    "analytics_events",
    "analytics_sessions",
    "user_behavior_profiles",
    "customer_journeys",
    "ml_predictions",
    "conversion_funnels",
    "analytics_aggregations",
    "rejected_events",
    "schema_migrations",
}

NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def applied(migration, *, digest=None):
    return AppliedMigration(
        version=migration.version,
        name=migration.name,
        checksum=digest or migration.checksum,
        applied_at=NOW,
    )


THREE = {
    "0002_second.sql": "CREATE TABLE b (x int);",
    "0001_first.sql": "CREATE TABLE a (x int);",
    "0003_third.sql": "CREATE TABLE c (x int);",
    "README.md": "not a migration",
}


# ----------------------------------------------------------------------------------- discovery


def test_parse_migration_filename():
    assert parse_migration_filename("0001_init.sql") == (1, "init")
    assert parse_migration_filename("0042_add_index_2.sql") == (42, "add_index_2")
    assert parse_migration_filename("1_init.sql") is None
    assert parse_migration_filename("0001-init.sql") is None
    assert parse_migration_filename("0001_Init.sql") is None
    assert parse_migration_filename("0001_init.sql.bak") is None
    assert parse_migration_filename("README.md") is None


def test_migrations_from_texts_orders_by_version_and_ignores_other_files():
    migrations = migrations_from_texts(THREE)
    assert [m.filename for m in migrations] == [
        "0001_first.sql",
        "0002_second.sql",
        "0003_third.sql",
    ]
    assert [m.version for m in migrations] == [1, 2, 3]
    assert migrations[1].sql == "CREATE TABLE b (x int);"
    assert migrations[0].checksum == hashlib.sha256(b"CREATE TABLE a (x int);").hexdigest()


def test_checksum_ignores_line_ending_style():
    assert checksum("SELECT 1;\r\nSELECT 2;\r\n") == checksum("SELECT 1;\nSELECT 2;\n")
    assert checksum("SELECT 1;") != checksum("SELECT 2;")


def test_duplicate_numbers_are_refused_naming_both_files():
    with pytest.raises(MigrationError, match=r"0001_a\.sql and 0001_b\.sql share the number 0001"):
        migrations_from_texts({"0001_a.sql": "", "0001_b.sql": ""})


def test_a_gap_in_the_numbers_is_refused_naming_the_missing_number():
    files = {"0001_a.sql": "", "0002_b.sql": "", "0004_d.sql": ""}
    with pytest.raises(
        MigrationError, match=r"0003 is missing \(between 0002_b\.sql and 0004_d\.sql\)"
    ):
        migrations_from_texts(files)


def test_numbering_must_start_at_one():
    with pytest.raises(MigrationError, match=r"start at 0001.*0002_b\.sql"):
        migrations_from_texts({"0002_b.sql": ""})


def test_a_misnamed_sql_file_is_refused():
    with pytest.raises(MigrationError, match=r"1_init\.sql: .*NNNN_name\.sql"):
        migrations_from_texts({"0001_a.sql": "", "1_init.sql": ""})


def test_no_migrations_at_all_is_refused():
    with pytest.raises(MigrationError, match="no migration files"):
        migrations_from_texts({"README.md": ""})


def test_discover_migrations_reads_a_folder(tmp_path):
    for name, text in THREE.items():
        (tmp_path / name).write_text(text)
    assert [m.filename for m in discover_migrations(tmp_path)] == [
        "0001_first.sql",
        "0002_second.sql",
        "0003_third.sql",
    ]
    with pytest.raises(MigrationError, match="does not exist"):
        discover_migrations(tmp_path / "missing")


def test_shipped_migrations_exist_for_both_engines_with_the_same_names():
    postgres = load_migrations("postgres")
    sqlite = load_migrations("sqlite")
    assert postgres[0].filename == "0001_init.sql"
    assert [m.filename for m in postgres] == [m.filename for m in sqlite]
    assert load_migrations("postgresql") == postgres
    with pytest.raises(ValueError, match="mysql"):
        load_migrations("mysql")


def _columns_by_table(sql: str) -> dict[str, list[str]]:
    tables = {}
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\)", sql, flags=re.S):
        columns = []
        for line in body.splitlines():
            word = line.strip().split(" ", 1)[0]
            if word and not word.startswith("--") and word not in {"UNIQUE", "PRIMARY", "CHECK"}:
                columns.append(word)
        tables[name] = columns
    return tables


def test_both_engines_define_the_same_tables_and_columns():
    sql = importlib.resources.files("revivatech_actors._sql")
    postgres = _columns_by_table(sql.joinpath("postgres/0001_init.sql").read_text())
    sqlite = _columns_by_table(sql.joinpath("sqlite/0001_init.sql").read_text())
    assert set(postgres) == EXPECTED_TABLES - {"schema_migrations"}
    assert postgres == sqlite
    assert postgres["analytics_events"][:4] == [
        "event_id",
        "user_fingerprint",
        "session_id",
        "event_type",
    ]


def test_split_statements_respects_strings_comments_and_triggers():
    script = """
        -- a comment; with a semicolon
        CREATE TABLE a (x TEXT DEFAULT ';');
        CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 'y;'; END;
        INSERT INTO a VALUES ('1'); -- trailing comment
    """
    statements = split_statements(script)
    assert len(statements) == 4
    assert statements[0].endswith("CREATE TABLE a (x TEXT DEFAULT ';');")
    assert statements[1] == "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 'y;'; END;"
    assert statements[2] == "INSERT INTO a VALUES ('1');"
    assert statements[3] == "-- trailing comment"


# ------------------------------------------------------------------------------------ planning


def test_plan_with_nothing_applied_is_everything_in_order():
    migrations = migrations_from_texts(THREE)
    assert plan_migrations(migrations, []) == migrations


def test_plan_skips_what_is_applied():
    migrations = migrations_from_texts(THREE)
    pending = plan_migrations(migrations, [applied(migrations[0])])
    assert [m.version for m in pending] == [2, 3]
    assert plan_migrations(migrations, [applied(m) for m in migrations]) == []


def test_plan_refuses_an_applied_file_that_changed():
    migrations = migrations_from_texts(THREE)
    rows = [applied(migrations[0]), applied(migrations[1], digest="0" * 64)]
    with pytest.raises(MigrationError, match=r"0002_second\.sql was changed after it was applied"):
        plan_migrations(migrations, rows)


def test_plan_refuses_a_database_migrated_by_a_newer_release():
    migrations = migrations_from_texts(THREE)
    newer = AppliedMigration(version=4, name="later", checksum="x", applied_at=NOW)
    with pytest.raises(MigrationError, match=r"0004_later\.sql but no such file"):
        plan_migrations(migrations, [*(applied(m) for m in migrations), newer])


def test_plan_refuses_to_apply_out_of_order():
    migrations = migrations_from_texts(THREE)
    with pytest.raises(
        MigrationError, match=r"0002_second\.sql is not applied but 0003_third\.sql is"
    ):
        plan_migrations(migrations, [applied(migrations[0]), applied(migrations[2])])


# ------------------------------------------------------------------------ applying (both engines)


async def test_migrate_creates_every_table_once(storage_url):
    shipped = load_migrations("sqlite" if storage_url.startswith("sqlite") else "postgres")
    async with open_storage(storage_url) as storage:
        before = dt.datetime.now(dt.UTC)
        assert await storage.applied_migrations() == []
        done = await storage.migrate()
        assert [(m.version, m.name, m.checksum) for m in done] == [
            (m.version, m.name, m.checksum) for m in shipped
        ]
        assert await storage.table_names() >= EXPECTED_TABLES
        assert await storage.migrate() == []
        rows = await storage.applied_migrations()
        assert rows == done
        assert len(rows) == len(shipped)
        slack = dt.timedelta(seconds=5)  # the database clock is not ours
        for row in rows:
            assert row.applied_at.tzinfo is not None
            assert before - slack <= row.applied_at <= dt.datetime.now(dt.UTC) + slack


async def test_migrate_applies_only_new_files(storage_url, tmp_path):
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);")
    async with open_storage(storage_url, migrations_dir=tmp_path) as storage:
        assert [m.version for m in await storage.migrate()] == [1]
        (tmp_path / "0002_b.sql").write_text(
            "CREATE TABLE b (x INTEGER);\nCREATE TABLE c (x INTEGER);"
        )
        assert [m.filename for m in await storage.migrate()] == ["0002_b.sql"]
        assert {"a", "b", "c", "schema_migrations"} <= await storage.table_names()
        assert [m.version for m in await storage.applied_migrations()] == [1, 2]


async def test_a_changed_applied_file_is_refused(storage_url, tmp_path):
    first = tmp_path / "0001_a.sql"
    first.write_text("CREATE TABLE a (x INTEGER);")
    async with open_storage(storage_url, migrations_dir=tmp_path) as storage:
        await storage.migrate()
    first.write_text("CREATE TABLE a (x INTEGER, y INTEGER);")
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE b (x INTEGER);")
    async with open_storage(storage_url, migrations_dir=tmp_path) as storage:
        with pytest.raises(MigrationError, match=r"0001_a\.sql was changed after it was applied"):
            await storage.migrate()
        assert "b" not in await storage.table_names()
        assert [m.version for m in await storage.applied_migrations()] == [1]


async def test_a_failing_migration_is_rolled_back_whole(storage_url, tmp_path):
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);")
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE b (x INTEGER);\nTHIS IS NOT SQL;")
    async with open_storage(storage_url, migrations_dir=tmp_path) as storage:
        with pytest.raises(MigrationError, match=r"0002_b\.sql failed and was rolled back"):
            await storage.migrate()
        tables = await storage.table_names()
        assert "a" in tables
        assert "b" not in tables
        assert [m.version for m in await storage.applied_migrations()] == [1]


async def test_migrate_on_an_in_memory_sqlite_database():
    async with open_storage("sqlite:///:memory:") as storage:
        assert len(await storage.migrate()) == len(load_migrations("sqlite"))
        assert await storage.table_names() >= EXPECTED_TABLES


async def test_migrate_applies_each_file_once_when_two_storages_race(storage_url):
    first, second = open_storage(storage_url), open_storage(storage_url)
    results = {}
    async with first, second:

        async def run(name, storage):
            results[name] = await storage.migrate()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "first", first)
            nursery.start_soon(run, "second", second)
        versions = sorted(m.version for m in results["first"] + results["second"])
        shipped = load_migrations("sqlite" if storage_url.startswith("sqlite") else "postgres")
        assert versions == [m.version for m in shipped]
        assert [m.version for m in await first.applied_migrations()] == versions
