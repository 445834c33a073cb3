"""Showing the settings (``revivatech-actors check-config``): as nested dicts with secrets
masked, and as TOML text that loads back to the same settings."""

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ..domain.secrets import mask_password
from ._convert import NAMED_STEPS
from ._settings import Settings

# Shown instead of a secret; one per admin token so an operator sees how many are set.
MASK = "***"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class InlineTable(dict[str, Any]):
    """A setting whose value is a table (``funnel.named``): :func:`render_toml` writes it on one
    line, where a plain dict inside a table becomes a ``[table.subtable]``."""


def settings_as_dict(settings: Settings, *, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` with lists for tuples and a nested dict per subtable
    (``[scoring.lead]``), ready for :func:`render_toml`.

    With ``mask_secrets`` each admin token becomes ``"***"`` (so the count stays visible) and
    passwords inside URLs become ``***``.
    """
    return _as_dict(settings, mask_secrets)


def _as_dict(group: Any, mask_secrets: bool) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for field in attrs.fields(type(group)):
        value: Any = getattr(group, field.name)
        if attrs.has(type(value)):
            table[field.name] = _as_dict(value, mask_secrets)
            continue
        if field.type == NAMED_STEPS:
            value = InlineTable({name: list(steps) for name, steps in value})
        value = list(value) if isinstance(value, tuple) else value
        if mask_secrets and field.metadata.get("secret"):
            # an empty secret stays visible as empty: the operator sees it is off
            value = [MASK] * len(value) if isinstance(value, list) else (MASK if value else value)
        elif mask_secrets and field.metadata.get("url") and value:
            value = mask_password(value)
        table[field.name] = value
    return table


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes (ASCII only) are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):  # an inline table: one line, as TOML 1.0 requires
        pairs = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping) and not isinstance(value, InlineTable)


def _table_lines(path: tuple[str, ...], table: Mapping[str, Any]) -> list[str]:
    """``[path]``, its values, then its subtables, each as ``[path.name]``."""
    lines = []
    if path:
        lines += ["", "[" + ".".join(_toml_key(part) for part in path) + "]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if not _is_table(v)]
    for name, value in table.items():
        if _is_table(value):
            lines += _table_lines((*path, name), value)
    return lines


def render_toml(data: Mapping[str, Any]) -> str:
    """TOML text for ``data``: top-level values first, then one ``[table]`` per nested dict, and
    ``[table.subtable]`` for a dict inside it (an :class:`InlineTable` is written on one line).

    Supports str, int, float, bool and lists of those; ``tomllib.loads`` gives ``data`` back.
    """
    return "\n".join(_table_lines((), data)).lstrip("\n") + "\n"
