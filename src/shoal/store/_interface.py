"""The store contract that every backend implements (DESIGN §3).

A store maps string keys to opaque byte values and stamps every write with one global,
strictly increasing revision, as etcd does. The API server keeps Kubernetes objects in it
under keys such as ``/registry/apps/deployments/default/web``; the store itself knows
nothing about objects.

Exceptions::

    StoreError
     ├── KeyExists          create() of a key that is present
     ├── KeyNotFound        update()/delete() of a key that is absent
     ├── RevisionMismatch   compare-and-swap lost: the key changed since it was read
     ├── Compacted          a read or watch asked for history that compaction removed
     ├── StoreClosed        the store was closed, or a watcher fell too far behind
     └── StoreUnavailable   the backend cannot answer now (etcd: no quorum, no member reachable);
                            a write that fails this way may or may not have been applied
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class StoreError(Exception):
    """Base of every store failure; carries the key it is about when there is one."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class KeyExists(StoreError):
    """create() found the key already present."""


class KeyNotFound(StoreError):
    """update() or delete() found no such key."""


class RevisionMismatch(StoreError):
    """The key's current revision is not the one the caller expected."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"{key}: expected revision {expected}, but the key is at revision {actual}", key)
        self.expected = expected
        self.actual = actual


class Compacted(StoreError):
    """The requested revision is older than the oldest one the store still keeps."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"revision {requested} is too old: history before revision {compacted} was compacted"
        )
        self.requested = requested
        self.compacted = compacted


class StoreClosed(StoreError):
    """The store was closed, or a watcher was dropped because it could not keep up."""


class StoreUnavailable(StoreError):
    """The backend did not answer in time: no member reachable, or no quorum (etcd).

    Transient, unlike the other errors: the same call may succeed later. For a write it is
    also ambiguous: the request may have reached the backend and be applied after all, so a
    caller re-reads before it retries (a compare-and-swap retry is safe; a blind one is not).
    """


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as of some revision.

    ``mod_revision`` is the revision of the write that produced ``value``;
    ``create_revision`` the revision that created the key.
    """

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(enum.Enum):
    PUT = "PUT"  # created or updated; ``prev`` tells which
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    """One change. ``kv`` is the new value (for DELETE: the last value, stamped with the
    revision of the delete); ``prev`` the value before the change, None on create."""

    type: EventType
    kv: KeyValue
    prev: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @property
    def is_create(self) -> bool:
        return self.type is EventType.PUT and self.prev is None


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the store revision the list was read at


class WatchStream(Protocol):
    """What ``Store.watch`` returns: an async iterator of events that the caller closes
    (``aclose``) when it stops reading, so the store can forget the watcher."""

    def __aiter__(self) -> WatchStream: ...

    async def __anext__(self) -> Event: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Store(Protocol):
    """Revisioned key-value store with watch. All methods are coroutines except ``watch``,
    which returns an async iterator.

    Writes are atomic and, once acknowledged, durable to the degree the backend promises
    (sqlite: they survive ``kill -9`` of the process).
    """

    async def get(self, key: str) -> KeyValue | None:
        """The current value of ``key``, or None."""
        ...

    async def list(self, prefix: str, revision: int | None = None) -> ListResult:
        """Every key that starts with ``prefix``, sorted by key, as of ``revision``
        (default: now). Raises Compacted for a revision older than the compaction point."""
        ...

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Write ``key`` if absent; raises KeyExists otherwise."""
        ...

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
        """Replace the value of an existing key. With ``expected_revision`` the write happens
        only if the key's mod_revision still equals it (compare-and-swap); raises
        KeyNotFound or RevisionMismatch."""
        ...

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        """Remove a key and return its last value stamped with the delete's revision;
        same preconditions as update()."""
        ...

    def watch(self, prefix: str, after_revision: int) -> WatchStream:
        """Every change to keys under ``prefix`` with a revision greater than
        ``after_revision``, in revision order, none lost or repeated, first the history and
        then live changes. Raises Compacted (on first iteration) if that history is gone,
        StoreClosed if the store closes or the watcher falls too far behind."""
        ...

    async def current_revision(self) -> int:
        """The revision of the latest write (0 for an empty store; 1 on etcd, which counts
        its empty store as revision 1)."""
        ...

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision``, keeping each key's value as of it: afterwards
        list(revision=R) and watch(after_revision=R) raise Compacted for any R < revision."""
        ...

    async def close(self) -> None: ...
