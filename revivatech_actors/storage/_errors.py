"""Exceptions raised by every storage engine (no engine module is needed to catch them)."""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed. The message is one line and never contains a password."""


class StorageUnavailable(StorageError):
    """The database cannot be reached right now (refused, timed out, lost, closed, locked).

    Worth retrying later: the failed connection is reopened on the next call.
    """


class MigrationError(StorageError):
    """The migration files or the applied set are inconsistent, or a migration failed to apply.

    The message names the file concerned. Not worth retrying: a person must look.
    """


class QueryTimeout(StorageError):
    """A query ran out of the time it was given and was cancelled by the database."""
