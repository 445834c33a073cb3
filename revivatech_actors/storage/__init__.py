"""Storage: one small interface (``Storage``), one implementation per engine.

``open_storage(url)`` picks the engine from the URL scheme; the engine modules (``sqlite``,
``postgres``) are imported only when used, and are the only modules that import a database
driver (beside ``original``, which reads the original service's database).
"""

from ._connections import DEFAULT_CONNECT_TIMEOUT as DEFAULT_CONNECT_TIMEOUT
from ._connections import DEFAULT_PING_TIMEOUT as DEFAULT_PING_TIMEOUT
from ._errors import LeaseLost as LeaseLost
from ._errors import MigrationError as MigrationError
from ._errors import PartitionsMismatch as PartitionsMismatch
from ._errors import QueryTimeout as QueryTimeout
from ._errors import StorageError as StorageError
from ._errors import StorageMisconfigured as StorageMisconfigured
from ._errors import StorageUnavailable as StorageUnavailable
from ._factory import open_storage as open_storage
from ._interface import Storage as Storage
from ._lifecycle import PurgeStep as PurgeStep
from ._lifecycle import RejectedLetter as RejectedLetter
from ._records import RealtimeSeed as RealtimeSeed
from ._records import StoredJourney as StoredJourney
from ._records import StoredPrediction as StoredPrediction
from ._records import VisitorKeys as VisitorKeys
from ._reports import BookingEvent as BookingEvent
from ._reports import DailyRevenue as DailyRevenue
from ._reports import ProfilesPage as ProfilesPage
from ._reports import VisitorCounts as VisitorCounts
from .migrations import AppliedMigration as AppliedMigration
from .migrations import Migration as Migration

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_PING_TIMEOUT",
    "AppliedMigration",
    "BookingEvent",
    "DailyRevenue",
    "LeaseLost",
    "Migration",
    "MigrationError",
    "PartitionsMismatch",
    "ProfilesPage",
    "PurgeStep",
    "QueryTimeout",
    "RealtimeSeed",
    "RejectedLetter",
    "Storage",
    "StorageError",
    "StorageMisconfigured",
    "StorageUnavailable",
    "StoredJourney",
    "StoredPrediction",
    "VisitorCounts",
    "VisitorKeys",
    "open_storage",
]
