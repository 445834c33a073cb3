"""revivatech-actors: a real-time analytics backend built as supervised trio actors."""

__version__ = "0.1.0"
