"""Watches on the etcd backend (``store.etcd``).

``WatchCache`` serves most of them: one etcd watch stream over every key, its events fanned out
in this process. ``EtcdWatch`` is one etcd watch stream, resumed from the last delivered
revision when it breaks (as etcd's own Go client does): the cache's feed, and the watches that
start before the cache's ring of recent events."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import grpc

from shoal.store._etcd_wire import (
    PERMANENT_FOR_WATCH,
    REQUIRE_LEADER,
    RETRY_FIRST,
    RETRY_MAX,
    event_of,
    prefix_range,
    watch_request,
)
from shoal.store._interface import Compacted, Event, StoreError
from shoal.store._watch import Waking, Watch, WatchHub, fell_behind

if TYPE_CHECKING:
    from shoal.store.etcd import EtcdStore

log = logging.getLogger(__name__)


class EtcdWatch(Waking):
    """The async iterator ``EtcdStore.watch`` returns: a task reads the etcd watch stream
    (from the first iteration on) into a buffer that the consumer drains."""

    def __init__(self, store: EtcdStore, prefix: str, after_revision: int) -> None:
        self.prefix = prefix
        self._store = store
        self._cursor = after_revision  # every event up to here was delivered or is buffered
        self._buffer: deque[Event] = deque()
        self._error: StoreError | None = None
        self._ended = False  # no more events will be added
        self._finished = False  # the consumer has seen the end
        self._task: asyncio.Task[None] | None = None
        self.established = asyncio.Event()  # etcd has created the watch (the first stream)

    def __aiter__(self) -> EtcdWatch:
        return self

    async def __anext__(self) -> Event:
        if self._task is None and not self._ended:
            self._task = asyncio.create_task(self._run(), name=f"etcd watch {self.prefix!r}")
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._error is not None:
                error, self._error = self._error, None
                self._finished = True
                raise error
            if self._finished or self._ended:
                self._finished = True
                raise StopAsyncIteration
            await self._wait()

    async def aclose(self) -> None:
        """Stop watching and end the stream to etcd."""
        self._end(None, keep_backlog=False)
        self._finished = True
        await self._stop()

    # -- the reading task ------------------------------------------------------------------------

    async def _run(self) -> None:
        pause = RETRY_FIRST
        while not self._ended:
            reached = self._cursor
            try:
                await self._follow()
            except grpc.aio.AioRpcError as err:
                if err.code() in PERMANENT_FOR_WATCH:
                    refused = StoreError(f"etcd refused the watch on {self.prefix!r}: {err.details()}")
                    self._end(refused, keep_backlog=True)
                    return
                why = err.details()
            except (_StreamEnded, asyncio.InvalidStateError) as err:  # the call ended under us
                why = str(err)
            except Exception as err:
                # A bug, not a stream failure: end the watch loudly rather than leave its
                # consumer waiting for ever.
                log.exception("watch on %r failed", self.prefix)
                self._end(StoreError(f"watch on {self.prefix!r} failed: {err!r}"), keep_backlog=True)
                return
            if self._ended or self._store._closed:
                return
            if self._cursor > reached:
                pause = RETRY_FIRST  # it made progress: a new failure, not the same one again
            level = logging.WARNING if pause == RETRY_FIRST else logging.DEBUG
            log.log(level, "watch on %r broke (%s); resuming after %d", self.prefix, why, self._cursor)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)

    async def _follow(self) -> None:
        """Read one watch stream until the watch ends; raises when the stream breaks."""
        key, end = prefix_range(self.prefix)
        call = self._store._watch_stub.Watch(metadata=REQUIRE_LEADER, wait_for_ready=True)
        try:
            # From the last delivered revision itself (its events are dropped below), not the
            # one after: etcd then refuses exactly the starts the contract calls compacted, and
            # every event it sends has its previous value still readable.
            await call.write(watch_request(key, end, max(self._cursor, 1)))
            while not self._ended:
                response = await call.read()
                if response is grpc.aio.EOF:
                    raise _StreamEnded("etcd ended the stream")
                self._receive(response)
        finally:
            call.cancel()

    def _receive(self, response: Any) -> None:
        if response.created:
            self.established.set()
        if response.compact_revision:
            self._end(Compacted(self._cursor, int(response.compact_revision)), keep_backlog=True)
            return
        if response.canceled:
            reason = response.cancel_reason or "no reason given"
            self._end(StoreError(f"etcd cancelled the watch on {self.prefix!r}: {reason}"), keep_backlog=True)
            return
        events: builtins.list[Event] = []
        for raw in response.events:
            if raw.kv.mod_revision <= self._cursor:
                continue
            event = event_of(raw)
            if event is None:
                # Compaction overtook this watch: the value this event replaced is gone.
                self._deliver(events)
                self._end(Compacted(self._cursor, int(raw.kv.mod_revision)), keep_backlog=True)
                return
            events.append(event)
        self._deliver(events)

    def _deliver(self, events: builtins.list[Event]) -> None:
        if not events or self._ended:
            return
        self._cursor = events[-1].revision
        self._buffer.extend(events)
        if len(self._buffer) > self._store.max_backlog:
            self._end(fell_behind(self.prefix, self._store.max_backlog), keep_backlog=False)
        else:
            self._wake()

    # -- ending ----------------------------------------------------------------------------------

    def _end(self, error: StoreError | None, keep_backlog: bool) -> None:
        """End the watch: no more events; the consumer gets the buffer (if kept), then
        ``error`` (or the end of iteration)."""
        if self._ended:
            return
        self._ended = True
        self._error = error
        if not keep_backlog:
            self._buffer.clear()
        self._store._watches.discard(self)
        self._wake()

    async def _stop(self) -> None:
        """Cancel and await the reading task (from outside it)."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _StreamEnded(Exception):
    """The watch stream ended without an error status; it is opened again."""


class _OutOfRing(StoreError):
    """A watch starts before the cache's ring: it needs etcd's history, a stream of its own."""


class WatchCache:
    """One etcd watch over every key, fanned out in this process (``_watch.WatchHub``), as
    kube-apiserver's watch cache does: a hundred watchers of one kind cost etcd one stream and
    this process one decode per event, not a hundred. A watch that starts before the ring
    (the most recent events) gets a stream of its own from etcd's history (``EtcdWatch``).

    When the feed fails for good (a compaction overtook it), every watcher of the cache ends
    with StoreClosed, so its client lists again, and the cache starts over from the present.
    """

    def __init__(self, store: EtcdStore, head: int, *, ring_size: int) -> None:
        self._store = store
        self._ring_size = ring_size
        self.hub = self._new_hub(head)
        self._task: asyncio.Task[None] | None = None
        self._advanced = asyncio.Event()  # set whenever the feed publishes

    def _new_hub(self, head: int) -> WatchHub:
        return WatchHub(
            self._out_of_ring, head, ring_size=self._ring_size, max_backlog=self._store.max_backlog
        )

    @staticmethod
    def _out_of_ring(prefix: str, after: int, _upto: int, _limit: int) -> tuple[list[Event], int]:
        raise _OutOfRing(f"watch on {prefix!r} from revision {after} starts before the cache")

    async def start(self, within: float) -> None:
        """Start feeding; return once etcd has created the feed's watch (or after ``within``
        seconds): until then, a compaction could overtake the feed's start, and its watchers
        would have to list again."""
        feed = EtcdWatch(self._store, "", self.hub.head)
        self._task = asyncio.create_task(self._feed(feed), name="etcd watch cache")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await feed.established.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.hub.close()

    async def caught_up(self, revision: int, within: float) -> None:
        """Wait (``within`` seconds at most) until the feed has every event before ``revision``:
        compacting there then cannot overtake it (etcd cancels a watch whose next revision is
        compacted, and the cache would have to start over)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self.hub.head < revision - 1 and self._task is not None:
                    self._advanced.clear()
                    await self._advanced.wait()

    def watch(self, prefix: str, after_revision: int) -> CachedWatch:
        return CachedWatch(self._store, self.hub.watch(prefix, after_revision), prefix, after_revision)

    async def _feed(self, feed: EtcdWatch) -> None:
        while True:
            try:
                async for event in feed:
                    self.hub.publish((event,))
                    self._advanced.set()
            except StoreError as err:
                log.warning("the etcd watch cache starts over: %s", err)
            finally:
                await feed.aclose()
            if self._store._closed:
                return
            # Its watchers list again (StoreClosed is a 410 for them); new ones join the new hub.
            self.hub.close()
            self.hub = self._new_hub(await self._present())
            feed = EtcdWatch(self._store, "", self.hub.head)

    async def _present(self) -> int:
        pause = RETRY_FIRST
        while True:
            try:
                return await self._store.current_revision()
            except StoreError:
                await asyncio.sleep(pause)  # the store is unavailable: try again, more slowly
                pause = min(pause * 2, RETRY_MAX)


class CachedWatch:
    """A watch served by the cache, or, when it starts before the ring, by a stream of its own."""

    def __init__(self, store: EtcdStore, inner: Watch, prefix: str, after_revision: int) -> None:
        self.prefix = prefix
        self._store = store
        self._inner: Watch | EtcdWatch = inner
        self._after = after_revision

    def __aiter__(self) -> CachedWatch:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._inner.__anext__()
        except _OutOfRing:
            # Only a watch's first step can be out of the ring: nothing was delivered yet.
            self._inner = self._store.stream_watch(self.prefix, self._after)
            return await self._inner.__anext__()

    async def aclose(self) -> None:
        await self._inner.aclose()
