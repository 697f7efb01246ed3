"""The shape every controller shares (STYLE: a loop plus an idempotent ``reconcile``).

Informer handlers only enqueue keys; workers take keys from the queue and call
``reconcile(key)``, which re-reads the object from the cache, acts on the difference
between desired and observed state, and writes status last. An object that is gone is
success. A failure requeues the key with back-off; a Conflict (someone wrote first) is
routine and retried quietly.
"""

from __future__ import annotations

import abc
import asyncio
import logging

from shoal.api.errors import Conflict
from shoal.client.workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)


class Controller(abc.ABC):
    name: str = "controller"

    def __init__(self) -> None:
        self.queue = WorkQueue()

    @abc.abstractmethod
    async def reconcile(self, key: str) -> None:
        """Make the world match the object named by ``key``; safe to call any number of times."""

    async def run(self, workers: int = 1) -> None:
        """Process keys until the queue shuts down or the task is cancelled."""
        async with asyncio.TaskGroup() as tasks:
            for i in range(workers):
                tasks.create_task(self._work(), name=f"{self.name} worker {i}")

    async def _work(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.reconcile(key)
            except Conflict:
                self.queue.add_rate_limited(key)
            except Exception:
                log.exception("%s: reconciling %s failed; retrying", self.name, key)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)
