"""Revisioned key-value stores with watch (DESIGN §3).

``open_store(url)`` picks a backend by URL scheme:

- ``memory://``: everything in this process, gone when it ends (tests, benchmarks);
- ``sqlite:///path/to/state.db``: the embedded default, one file, WAL mode;
- ``etcd://HOST:PORT[,HOST:PORT...]``: an etcd v3 cluster, for several managers; every
  endpoint listed is used, so the store keeps working while a minority of members is down.
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
    StoreUnavailable,
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
    "StoreUnavailable",
    "WatchStream",
    "open_store",
]
