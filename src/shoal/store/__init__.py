"""Revisioned key-value stores with watch (DESIGN §3).

``open_store(url)`` picks a backend by URL scheme:

- ``memory://``: everything in this process, gone when it ends (tests, benchmarks);
- ``sqlite:///path/to/state.db``: the embedded default, one file, WAL mode.
"""

from shoal.store._interface import (
    Compacted,
    Event,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListResult,
    RevisionMismatch,
    Store,
    StoreClosed,
    StoreError,
    WatchStream,
)
from shoal.store._open import open_store

__all__ = [
    "Compacted",
    "Event",
    "EventType",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "ListResult",
    "RevisionMismatch",
    "Store",
    "StoreClosed",
    "StoreError",
    "WatchStream",
    "open_store",
]
