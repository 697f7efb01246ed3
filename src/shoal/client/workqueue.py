"""A keyed work queue for controllers, in the shape of client-go's.

Events only *add keys*; workers take a key, reconcile it, and say ``done``. The queue:
- de-duplicates: a key added many times before a worker takes it is processed once;
- never hands one key to two workers at once: a key added while it is being processed is
  queued again when the worker is done with it;
- backs off per key on failure (``add_rate_limited``: 5 ms, 10 ms, 20 ms … up to 30 s)
  until the key succeeds (``forget``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from shoal.api.errors import ApiError, Conflict

log = logging.getLogger(__name__)


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 30.0) -> None:
        self._ready: deque[str] = deque()
        self._dirty: set[str] = set()  # queued and not yet taken
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []  # (due time, tie-breaker, key)
        self._seq = itertools.count()
        self._failures: dict[str, int] = {}
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._wakeup = asyncio.Event()
        self._shut_down = False

    def add(self, key: str) -> None:
        if self._shut_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.append(key)
            self._wakeup.set()

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds have passed (a requeue, a back-off, a deadline)."""
        if delay <= 0:
            self.add(key)
            return
        due = asyncio.get_running_loop().time() + delay
        heapq.heappush(self._delayed, (due, next(self._seq), key))
        self._wakeup.set()

    def add_rate_limited(self, key: str) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self._base_delay * 2**failures, self._max_delay))

    def forget(self, key: str) -> None:
        """The key succeeded: its next failure starts the back-off from the beginning."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        """The next key to work on; raises ShutDown once the queue is shut down."""
        loop = asyncio.get_running_loop()
        while True:
            if self._shut_down:
                raise ShutDown
            now = loop.time()
            while self._delayed and self._delayed[0][0] <= now:
                self.add(heapq.heappop(self._delayed)[2])
            if self._ready:
                key = self._ready.popleft()
                self._dirty.discard(key)
                self._processing.add(key)
                return key
            self._wakeup.clear()
            timeout = self._delayed[0][0] - now if self._delayed else None
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the wait ends, leaving a worker running on.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._ready.append(key)
            self._wakeup.set()

    def shut_down(self) -> None:
        self._shut_down = True
        self._wakeup.set()

    def __len__(self) -> int:
        return len(self._ready)


async def work(queue: WorkQueue, handle: Callable[[str], Awaitable[None]], what: str) -> None:
    """One worker: take keys and ``handle`` them until the queue shuts down. A key that
    succeeds is forgotten by the back-off; one that fails is requeued with back-off. A
    Conflict (someone wrote first) is routine; another API error (the API may be away) is
    one warning line; anything else is a bug and logged with its traceback."""
    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            await handle(key)
        except Conflict:
            log.debug("%s %s: conflict; retrying", what, key)
            queue.add_rate_limited(key)
        except ApiError as err:
            log.warning("%s %s: %s; retrying", what, key, err)
            queue.add_rate_limited(key)
        except Exception:
            log.exception("%s %s failed; retrying", what, key)
            queue.add_rate_limited(key)
        else:
            queue.forget(key)
        finally:
            queue.done(key)
