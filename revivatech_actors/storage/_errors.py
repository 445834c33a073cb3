"""Exceptions raised by every storage engine (no engine module is needed to catch them)."""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed. The message is one line and never contains a password."""


class StorageUnavailable(StorageError):
    """The database cannot be reached right now (refused, timed out, lost, closed, locked).

    Worth retrying later: the failed connection is reopened on the next call.
    """


class StorageMisconfigured(StorageError):
    """The storage URL names what cannot be used as given (a SQLite file in a folder that does not
    exist). Not worth retrying: the setting, or the file system, must change."""


class MigrationError(StorageError):
    """The migration files or the applied set are inconsistent, or a migration failed to apply.

    The message names the file concerned. Not worth retrying: a person must look.
    """


class QueryTimeout(StorageError):
    """A query ran out of the time it was given and was cancelled by the database."""


class LeaseLost(StorageError):
    """A write of derived state was refused because this instance no longer owns some of its
    partitions (another instance took them over): nothing of the write was applied."""

    def __init__(self, message: str, partitions: frozenset[int]) -> None:
        super().__init__(message)
        self.partitions = partitions


class PartitionsMismatch(StorageError):
    """``profiles.partitions`` differs from the partitions the database holds, in a way that
    cannot be applied now (docs/scaling.md says how to grow them). Not worth retrying."""
