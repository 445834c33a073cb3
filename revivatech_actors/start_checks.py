"""What stops ``serve`` (and ``migrate``, ``import-original``) before any actor starts, in one line.

A start that cannot work (the port is taken, the host does not resolve, the database does not
answer, the SQLite file's folder does not exist) ends before the actors start, with one line on
stderr naming the cause and what to change, and an exit code: 2 when a setting must change,
1 otherwise. The caller logs the traceback at debug level only.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .storage import StorageError

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "StartRefused",
    "check_listen",
    "listen_refusal",
    "storage_refusal",
]

#: A setting must change: the exit code of every configuration error (docs/operations.md,
#: "Signals and exit codes").
EXIT_CONFIG = 2
#: Something outside the configuration is in the way (a port taken, a database away).
EXIT_FAILED = 1

_PORT_HINT = "set --port or REVIVATECH_WEB_PORT"
_HOST_HINT = "set --host or REVIVATECH_WEB_HOST"
_STORAGE_HINT = "storage.url or REVIVATECH_STORAGE_URL"
#: Why a bind failed, as an operator would say it, and what to do, by errno.
_BIND_REASONS: dict[int | None, tuple[str, str]] = {
    errno.EADDRINUSE: ("address already in use", f"is another serve running? {_PORT_HINT}"),
    errno.EACCES: ("permission denied", f"ports below 1024 need privileges; {_PORT_HINT}"),
    errno.EADDRNOTAVAIL: ("no interface of this machine has that address", _HOST_HINT),
}


class StartRefused(Exception):
    """The start cannot go on. ``line`` is the one line to print (after the program's name),
    ``exit_code`` the process's exit code."""

    def __init__(self, line: str, exit_code: int) -> None:
        super().__init__(line)
        self.line, self.exit_code = line, exit_code


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_refusal(host: str, port: int, exc: OSError) -> StartRefused:
    """The refusal for a failure to listen on ``host:port`` with ``exc``."""
    if isinstance(exc, socket.gaierror):
        return StartRefused(
            f"configuration error: web.host: cannot resolve {host!r} ({exc.strerror or exc}; "
            f"{_HOST_HINT})",
            EXIT_CONFIG,
        )
    reason, hint = _BIND_REASONS.get(exc.errno, ((exc.strerror or str(exc)).lower(), _PORT_HINT))
    return StartRefused(
        f"error: cannot listen on {_address(host, port)}: {reason} ({hint})", EXIT_FAILED
    )


def check_listen(host: str, port: int) -> None:
    """Bind ``host:port`` as the web server will (``SO_REUSEADDR``), then let it go.

    Without ``SO_REUSEPORT`` on purpose: the trial fails while anything listens on the port,
    the workers of another ``serve --workers N`` included, which would otherwise silently share
    it. The port may still be taken between this trial and the real bind; the trial is for the
    common case, an operator starting a second copy.

    Raises:
        StartRefused: the address cannot be listened on (see :func:`listen_refusal`).
    """
    try:
        with socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
        ) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise listen_refusal(host, port, exc) from exc


def storage_refusal(exc: StorageError) -> StartRefused:
    """The refusal for ``exc``, raised while opening or migrating the database before a start."""
    # Imported here: the CLI imports this module for EXIT_CONFIG before any command is chosen.
    from .storage import (
        MigrationError,
        PartitionsMismatch,
        StorageMisconfigured,
        StorageUnavailable,
    )

    if isinstance(exc, (StorageMisconfigured, PartitionsMismatch)):
        key = "storage.url: " if isinstance(exc, StorageMisconfigured) else ""
        return StartRefused(f"configuration error: {key}{exc}", EXIT_CONFIG)
    if isinstance(exc, StorageUnavailable):
        return StartRefused(
            f"error: {exc} (is the database running? check {_STORAGE_HINT})", EXIT_FAILED
        )
    if isinstance(exc, MigrationError):
        return StartRefused(f"error: migration failed: {exc}", EXIT_FAILED)
    return StartRefused(f"error: {exc}", EXIT_FAILED)
