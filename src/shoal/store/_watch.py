"""Watch fan-out shared by every backend.

The delicate part of a watch is the hand-over from history to live events: no event may be
lost or repeated. Here it is correct by construction, because the last history read and the
registration for live events happen in one synchronous step on the event loop, and backends
publish committed events on the loop too, so no commit can fall between the two.

Vocabulary:

- *head*: the revision of the newest published (committed) event;
- *ring*: the most recent events kept in memory, so that a watch starting from a recent
  revision (the common case: a client that has just listed) needs no history read at all;
- *backlog*: events delivered to a watcher but not yet consumed; a watcher whose backlog
  grows past the limit is ended with StoreClosed, so one stuck client cannot hold unbounded
  memory, and its client relists.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from shoal.store._interface import Compacted, Event, StoreClosed, StoreError

DEFAULT_MAX_BACKLOG = 10_000
DEFAULT_RING_SIZE = 4096
HISTORY_PAGE = 1000

HistoryReader = Callable[[str, int, int, int], tuple[list[Event], int]]
"""``(prefix, after, upto, limit)`` -> the events under ``prefix`` with ``after < revision <=
reached``, in order, at most ``limit`` of them, and ``reached`` (``after < reached <= upto``).
A reader may stop short of ``upto`` to keep each call, which blocks the loop, short."""


class WatchHub:
    """Delivers published events to the watchers whose prefix matches them."""

    def __init__(
        self, history: HistoryReader, head: int, *, ring_size: int, max_backlog: int = DEFAULT_MAX_BACKLOG
    ) -> None:
        self.head = head
        self.compacted = 0  # kept current by the backend, so watch starts need not ask it
        self.closed = False
        self.max_backlog = max_backlog
        self._history = history
        self._ring: deque[Event] = deque(maxlen=ring_size)
        self._by_prefix: dict[str, weakref.WeakSet[Watch]] = {}

    def watch(self, prefix: str, after_revision: int) -> Watch:
        return Watch(self, prefix, after_revision)

    def publish(self, events: Sequence[Event]) -> None:
        """Hand committed events, in revision order, to the ring and the live watchers."""
        if not events:
            return
        self.head = events[-1].revision
        self._ring.extend(events)
        for prefix, watchers in list(self._by_prefix.items()):
            if not watchers:  # their Watch objects were garbage-collected
                del self._by_prefix[prefix]
                continue
            matching = [e for e in events if e.kv.key.startswith(prefix)]
            if matching:
                for watcher in list(watchers):
                    watcher._deliver(matching)

    def close(self) -> None:
        self.closed = True
        watchers = [w for group in self._by_prefix.values() for w in group]
        self._by_prefix.clear()
        for watcher in watchers:
            watcher._end(StoreClosed("the store was closed"), keep_backlog=True)

    @property
    def _ring_base(self) -> int:
        """The ring holds every event after this revision: revisions have no gaps."""
        return self._ring[0].revision - 1 if self._ring else self.head

    def _start(self, watcher: Watch, after: int) -> tuple[list[Event], int, bool]:
        """One synchronous step of a watch start: the events after ``after``, the revision
        reached, and whether the watcher is now registered for live events."""
        if self.closed:
            raise StoreClosed("the store was closed")
        if after < self.compacted:
            raise Compacted(after, self.compacted)
        if after >= self._ring_base:
            recent = self._recent(watcher.prefix, after)
            self._by_prefix.setdefault(watcher.prefix, weakref.WeakSet()).add(watcher)
            return recent, max(after, self.head), True
        events, reached = self._history(watcher.prefix, after, self.head, HISTORY_PAGE)
        if reached >= self.head:
            self._by_prefix.setdefault(watcher.prefix, weakref.WeakSet()).add(watcher)
            return events, reached, True
        return events, reached, False

    def _recent(self, prefix: str, after: int) -> list[Event]:
        newer = list(itertools.islice(reversed(self._ring), max(self.head - after, 0)))
        newer.reverse()
        return [e for e in newer if e.kv.key.startswith(prefix)]

    def _unregister(self, watcher: Watch) -> None:
        group = self._by_prefix.get(watcher.prefix)
        if group is not None:
            group.discard(watcher)


def fell_behind(prefix: str, limit: int) -> StoreClosed:
    """What ends a watcher whose backlog passed ``limit``: its client lists again."""
    return StoreClosed(
        f"watch on {prefix!r} fell more than {limit} events behind and was dropped; list again "
        "and watch from the list's revision"
    )


class Waking:
    """A consumer that waits for events (``_wait``) and a producer that wakes it (``_wake``)."""

    _waiter: asyncio.Future[None] | None = None

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Watch(Waking):
    """The async iterator returned by ``Store.watch``: history first, then live events."""

    def __init__(self, hub: WatchHub, prefix: str, after_revision: int) -> None:
        self.prefix = prefix
        self._hub = hub
        self._cursor = after_revision  # every event up to here was delivered or is buffered
        self._buffer: deque[Event] = deque()
        self._live = False
        self._error: StoreError | None = None
        self._finished = False

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._error is not None:
                error, self._error = self._error, None
                self._finished = True
                raise error
            if self._finished:
                raise StopAsyncIteration
            if not self._live:
                self._catch_up()
                if not self._buffer and not self._live and self._error is None:
                    await asyncio.sleep(0)  # a history page without matches: let others run
                continue
            await self._wait()

    async def aclose(self) -> None:
        """Stop watching; needed only when the consumer stops early (``break``), and even
        then optional, since an unreferenced watcher drops out of the hub on its own."""
        self._end(None, keep_backlog=False)
        self._finished = True

    def _catch_up(self) -> None:
        try:
            events, self._cursor, self._live = self._hub._start(self, self._cursor)
        except StoreError as error:
            self._error = error
            return
        self._buffer.extend(events)

    def _deliver(self, events: list[Event]) -> None:
        if events[0].revision <= self._cursor:  # a watch that started from a future revision
            events = [e for e in events if e.revision > self._cursor]
            if not events:
                return
        self._buffer.extend(events)
        if len(self._buffer) > self._hub.max_backlog:
            self._end(fell_behind(self.prefix, self._hub.max_backlog), keep_backlog=False)
        else:
            self._wake()

    def _end(self, error: StoreError | None, *, keep_backlog: bool) -> None:
        self._hub._unregister(self)
        self._live = False
        self._error = error
        if error is None:
            self._finished = True
        if not keep_backlog:
            self._buffer.clear()
        self._wake()
