"""The named-query files: parsed once, every name unique, every fragment found, none mistaken
for a migration."""

from __future__ import annotations

import importlib.resources

import pytest

from revivatech_actors.storage._queries import load_queries, parse_queries, queries_from_folder
from revivatech_actors.storage.migrations import load_migrations


def test_a_file_holds_named_queries_with_their_documentation_left_out():
    text = """
-- Events (a file's heading)

-- name: first
-- what it does; with a % sign the driver must never see
SELECT 1
  -- an inner comment line
FROM t  -- a trailing comment stays

-- name: second
SELECT {{first}}
"""
    queries = parse_queries(text, "x.sql")
    assert queries == {
        "first": "SELECT 1\nFROM t  -- a trailing comment stays",
        "second": "SELECT {{first}}",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1", "before the first '-- name:' line"),
        ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2", "named twice"),
        ("-- name: a\n-- only a comment\n", "is empty"),
    ],
)
def test_a_malformed_file_is_refused_with_its_name(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_queries(text, "broken.sql")
    assert "broken.sql" in str(info.value)


def test_fragments_are_included_and_an_unknown_one_is_refused(tmp_path):
    (tmp_path / "a.sql").write_text(
        "-- name: columns\na, b\n\n-- name: read\nSELECT {{columns}} FROM t\n"
    )
    (tmp_path / "b.sql").write_text("-- name: count\nSELECT count(*) FROM t\n")
    assert queries_from_folder(tmp_path)["read"] == "SELECT a, b FROM t"
    (tmp_path / "c.sql").write_text("-- name: bad\nSELECT {{nowhere}}\n")
    with pytest.raises(ValueError, match="nowhere"):
        queries_from_folder(tmp_path)


def test_a_name_given_in_two_files_is_refused(tmp_path):
    (tmp_path / "a.sql").write_text("-- name: same\nSELECT 1\n")
    (tmp_path / "b.sql").write_text("-- name: same\nSELECT 2\n")
    with pytest.raises(ValueError, match="same"):
        queries_from_folder(tmp_path)


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
def test_the_shipped_queries_load_once_and_leave_no_fragment_unresolved(engine):
    queries = load_queries(engine)
    assert load_queries(engine) is queries  # read once
    for name, sql in queries.items():
        assert "{{" not in sql, name
        assert sql.strip(), name
    # each rule once per engine: the profile upsert, the session merge
    for rule in (
        "total_events = p.total_events + excluded.total_events",
        "event_count = s.event_count + excluded.event_count",
    ):
        assert len([name for name, sql in queries.items() if rule in sql]) == 1, rule


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
def test_query_files_are_not_migrations(engine):
    folder = importlib.resources.files("revivatech_actors._sql").joinpath(engine)
    assert folder.joinpath("queries").is_dir()
    migrations = load_migrations(engine)
    assert all(m.filename[:4].isdigit() for m in migrations)
    assert len(migrations) == len([e for e in folder.iterdir() if e.name.endswith(".sql")])
