"""What storage messages may show: one line (passwords: ``domain.secrets.mask_password``)."""

from __future__ import annotations

__all__ = ["first_line"]


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (driver messages span several)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
