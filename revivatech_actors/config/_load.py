"""Loading: the shipped defaults (``config/default.toml``) < a config file < ``REVIVATECH_*``
environment variables < overrides. The loader knows no setting by name: it walks the attrs
classes of ``_settings.py``, converts each raw value by its field's type (``_convert.py``) and
lets the field's validator judge it. The first failure is raised as one :class:`ConfigError`
naming the setting, the problem and where the value came from.

A renamed setting's old name (``RENAMED``) still works, with one logged warning per old name;
giving the old and the new name in one source is an error.
"""

import difflib
import importlib.resources
import logging
import os
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from ._convert import TYPE_RULES, from_text, from_value
from ._errors import ConfigError, Invalid
from ._settings import RENAMED, Settings, cross_section_problem

logger = logging.getLogger("revivatech_actors.config")

# Environment variables REVIVATECH_<SECTION>_<KEY> override the files.
ENV_PREFIX = "REVIVATECH_"
# Reserved: the config file path when no --config is given. Not a setting, never an error.
CONFIG_ENV_VAR = "REVIVATECH_CONFIG"
# Reserved for the test suite's own variables (tests/conftest.py) and for the bench client
# (REVIVATECH_BENCH_TOKEN); the service ignores them.
RESERVED_ENV_PREFIXES = ("REVIVATECH_TEST_", "REVIVATECH_BENCH_")
# How the shipped defaults are named in error messages.
DEFAULTS_SOURCE = "default.toml"
# How values from load_settings(overrides=...) (the CLI's serve --host/--port/--workers) are
# named.
OVERRIDE_SOURCE = "override"

_Path = tuple[str, ...]
# One value of a source: its setting's path, the raw value, the name as written there, the name
# it has now (they differ for a renamed setting) and where it came from.
_Item = tuple[_Path, Any, str, str, str]


def _tables(cls: type, path: _Path = ()) -> dict[_Path, type]:
    """Every table of settings by its path: () is Settings, ("scoring", "lead") a subtable."""
    tables = {path: cls}
    for field in attrs.fields(cls):
        if isinstance(field.type, type) and attrs.has(field.type):
            tables.update(_tables(field.type, (*path, field.name)))
    return tables


_TABLES = _tables(Settings)
#: Every setting by its path.
_FIELDS: dict[_Path, attrs.Attribute] = {
    (*path, field.name): field
    for path, cls in _TABLES.items()
    for field in attrs.fields(cls)
    if (*path, field.name) not in _TABLES
}


def env_var_name(*path: str) -> str:
    """The variable of a setting: ``env_var_name("web", "port") == "REVIVATECH_WEB_PORT"``,
    ``env_var_name("scoring", "lead", "quotes_weight")`` is
    ``"REVIVATECH_SCORING_LEAD_QUOTES_WEIGHT"``."""
    return (ENV_PREFIX + "_".join(path)).upper()


_BY_ENV = {env_var_name(*path): path for path in _FIELDS}
_RENAMED_ENV = {
    env_var_name(*old): new for old, new in RENAMED.items() if env_var_name(*old) not in _BY_ENV
}


def _dotted(path: _Path) -> str:
    return ".".join(path)


def _in_table(path: _Path) -> str:
    """How a TOML file spells a setting: ``[scoring.lead] quotes_weight``."""
    return f"[{_dotted(path[:-1])}] {path[-1]}"


def _resolve(written: _Path, source: str) -> _Path:
    """The path of the setting that ``written`` names (itself, or the new path of a renamed
    setting); raises ConfigError for a name that is no setting."""
    if written in _FIELDS:
        return written
    if written in RENAMED:
        return RENAMED[written]
    sections = [field.name for field in attrs.fields(Settings)]
    if written[0] not in sections:
        raise ConfigError(written[0], f"unknown section (known: {', '.join(sections)})", source)
    if written in _TABLES:
        problem = f"is a table of settings: write them under [{_dotted(written)}]"
        raise ConfigError(_dotted(written), problem, source)
    table = next(written[:n] for n in range(len(written) - 1, 0, -1) if written[:n] in _TABLES)
    known = ", ".join(field.name for field in attrs.fields(_TABLES[table]))
    problem = f"unknown setting (known in [{_dotted(table)}]: {known})"
    raise ConfigError(_dotted(written), problem, source)


class _Layers:
    """The values gathered so far, each with its source, and the old names already warned of."""

    def __init__(self) -> None:
        self.values: dict[_Path, tuple[Any, str]] = {}
        self._warned: set[str] = set()

    def put_source(self, items: Iterator[_Item], *, text: bool) -> None:
        """Record the items of one source (a file, the environment, the overrides); a later
        source overrides an earlier one, but one source may not name a setting twice."""
        given: dict[_Path, str] = {}
        for path, raw, written, now, source in items:
            if path in given:
                old = written if written != now else given[path]
                problem = f"given twice, as {now} and as its deprecated name {old}; keep {now}"
                raise ConfigError(_dotted(path), problem, source)
            given[path] = written
            if written != now and written not in self._warned:
                self._warned.add(written)
                origin = "" if written == source else f" (from {source})"
                logger.warning("deprecated setting name %s%s: use %s", written, origin, now)
            self.values[path] = (_convert(path, raw, source, text=text), source)

    def build(self, cls: type, path: _Path = ()) -> Any:
        """An instance of ``cls``, the table at ``path``, from the values gathered."""
        kwargs = {}
        for field in attrs.fields(cls):
            here = (*path, field.name)
            if here in _TABLES:
                kwargs[field.name] = self.build(_TABLES[here], here)
            elif here in self.values:
                kwargs[field.name] = self.values[here][0]
            else:
                raise ConfigError(_dotted(here), "has no value", DEFAULTS_SOURCE)
        try:
            return cls(**kwargs)
        except Invalid as exc:
            here = (*path, exc.name)
            raise ConfigError(_dotted(here), exc.problem, self.values[here][1]) from None


def _convert(path: _Path, raw: Any, source: str, *, text: bool) -> Any:
    field = _FIELDS[path]
    kind: Any = field.type
    try:
        return from_text(raw, kind) if text and isinstance(raw, str) else from_value(raw, kind)
    except (TypeError, ValueError):
        rule = getattr(field.validator, "rule", None) or TYPE_RULES[kind]
        shown = "" if field.metadata.get("secret") else f", got {raw!r}"
        raise ConfigError(_dotted(path), rule + shown, source) from None


def _toml_items(data: dict, source: str) -> Iterator[_Item]:
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(section, "settings belong inside a [section] table", source)
        for written, raw in _table_items((section,), table):
            path = _resolve(written, source)
            yield path, raw, _in_table(written), _in_table(path), source


def _table_items(path: _Path, table: dict) -> Iterator[tuple[_Path, Any]]:
    """``(path, raw value)`` of each setting in ``table``, descending into its subtables."""
    for key, raw in table.items():
        here = (*path, key)
        if isinstance(raw, dict) and here in _TABLES:
            yield from _table_items(here, raw)
        else:
            yield here, raw


def _env_items(environ: Mapping[str, str]) -> Iterator[_Item]:
    for name in sorted(environ):
        if (
            not name.startswith(ENV_PREFIX)
            or name == CONFIG_ENV_VAR
            or name.startswith(RESERVED_ENV_PREFIXES)
        ):
            continue
        path = _BY_ENV.get(name) or _RENAMED_ENV.get(name)
        if path is None:
            close = difflib.get_close_matches(name, _BY_ENV, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(name, "unknown environment variable" + hint)
        yield path, environ[name], name, env_var_name(*path), name


def _override_items(overrides: Mapping[str, object]) -> Iterator[_Item]:
    for dotted, raw in overrides.items():
        if raw is not None:
            path = _resolve(tuple(dotted.split(".")), OVERRIDE_SOURCE)
            yield path, raw, dotted, _dotted(path), OVERRIDE_SOURCE


def _read_toml(path: str | os.PathLike) -> dict:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        problem = f"cannot read config file: {exc.strerror or exc}"
        raise ConfigError(os.fspath(path), problem) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(os.fspath(path), f"invalid TOML: {exc}") from None


def load_settings(
    config_file: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Load the settings: defaults < ``config_file`` < environment < ``overrides``.

    ``config_file`` falls back to ``$REVIVATECH_CONFIG``; ``environ`` defaults to ``os.environ``.
    ``overrides`` are keyed by dotted path ("web.port", "scoring.lead.quotes_weight"); strings
    are converted like environment values and None values are skipped, so a CLI can pass its
    optional arguments straight through. A deprecated name of a setting is logged at WARNING
    once per name.

    Raises:
        ConfigError: for an unreadable file, invalid TOML, an unknown section, key or
            ``REVIVATECH_*`` variable, a setting given under its old and its new name in one
            source, a wrong type or an impossible value (alone, or together with other
            settings: ``web.workers`` > 1 without PostgreSQL or Redis) — the first one found.
    """
    environ = os.environ if environ is None else environ
    if config_file is None:
        config_file = environ.get(CONFIG_ENV_VAR) or None
    layers = _Layers()
    defaults = importlib.resources.files("revivatech_actors._config").joinpath("default.toml")
    data = tomllib.loads(defaults.read_text(encoding="utf-8"))
    layers.put_source(_toml_items(data, DEFAULTS_SOURCE), text=False)
    if config_file is not None:
        file = _read_toml(config_file)
        layers.put_source(_toml_items(file, os.fspath(config_file)), text=False)
    layers.put_source(_env_items(environ), text=True)
    layers.put_source(_override_items(overrides or {}), text=True)
    settings: Settings = layers.build(Settings)
    problem = cross_section_problem(settings)
    if problem is not None:
        path, reason = problem
        raise ConfigError(_dotted(path), reason, layers.values[path][1])
    return settings
