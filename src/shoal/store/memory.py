"""A store that lives in this process only: for tests, benchmarks and simulations, where
starting in microseconds and leaving nothing behind matter more than durability."""

from __future__ import annotations

import builtins
import itertools

from shoal.store._interface import (
    Event,
    EventType,
    KeyExists,
    KeyValue,
    ListResult,
    StoreClosed,
)
from shoal.store._rules import check_compactable, check_precondition, check_readable
from shoal.store._watch import DEFAULT_MAX_BACKLOG, Watch, WatchHub


class MemoryStore:
    """Current values in a dict, and every event since the compaction point in a list.

    Past revisions are read by undoing, newest first, the events after them: each event
    carries the value it replaced. That needs no snapshot of old values, so compaction can
    simply drop the events before the compaction point.
    """

    def __init__(self, *, max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self._data: dict[str, KeyValue] = {}
        self._log: list[Event] = []  # the events after self._compacted; revisions have no gaps
        self._revision = 0
        self._compacted = 0
        self._closed = False
        # The log itself serves history, so a ring would only duplicate it.
        self._hub = WatchHub(self._history, 0, ring_size=0, max_backlog=max_backlog)

    async def get(self, key: str) -> KeyValue | None:
        self._check_open()
        return self._data.get(key)

    async def list(self, prefix: str, revision: int | None = None) -> ListResult:
        self._check_open()
        state = {k: kv for k, kv in self._data.items() if k.startswith(prefix)}
        if revision is not None and revision != self._revision:
            check_readable(revision, self._compacted, self._revision)
            for event in reversed(self._log[revision - self._compacted :]):
                key = event.kv.key
                if not key.startswith(prefix):
                    continue
                if event.prev is None:
                    state.pop(key, None)
                else:
                    state[key] = event.prev
        items = [state[k] for k in sorted(state)]
        return ListResult(items, self._revision if revision is None else revision)

    async def create(self, key: str, value: bytes) -> KeyValue:
        self._check_open()
        if key in self._data:
            raise KeyExists(f"{key}: already exists", key)
        revision = self._revision + 1
        kv = KeyValue(key, value, revision, revision)
        self._apply(Event(EventType.PUT, kv, None))
        return kv

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
        self._check_open()
        prev = check_precondition(key, self._data.get(key), expected_revision)
        kv = KeyValue(key, value, prev.create_revision, self._revision + 1)
        self._apply(Event(EventType.PUT, kv, prev))
        return kv

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        self._check_open()
        prev = check_precondition(key, self._data.get(key), expected_revision)
        kv = KeyValue(key, prev.value, prev.create_revision, self._revision + 1)
        self._apply(Event(EventType.DELETE, kv, prev))
        return kv

    def watch(self, prefix: str, after_revision: int) -> Watch:
        return self._hub.watch(prefix, after_revision)

    async def current_revision(self) -> int:
        self._check_open()
        return self._revision

    async def compact(self, revision: int) -> None:
        self._check_open()
        if revision <= self._compacted:
            return
        check_compactable(revision, self._revision)
        del self._log[: revision - self._compacted]
        self._compacted = self._hub.compacted = revision

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub.close()

    def _apply(self, event: Event) -> None:
        kv = event.kv
        if event.type is EventType.DELETE:
            del self._data[kv.key]
        else:
            self._data[kv.key] = kv
        self._revision = kv.mod_revision
        self._log.append(event)
        self._hub.publish((event,))

    def _history(self, prefix: str, after: int, upto: int, limit: int) -> tuple[builtins.list[Event], int]:
        found: builtins.list[Event] = []
        for event in itertools.islice(self._log, after - self._compacted, upto - self._compacted):
            if event.kv.key.startswith(prefix):
                found.append(event)
                if len(found) == limit:
                    return found, event.revision
        return found, upto

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store was closed")
