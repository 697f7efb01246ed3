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

from shoal.client.workqueue import WorkQueue, work


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
                tasks.create_task(
                    work(self.queue, self.reconcile, f"{self.name}: reconciling"),
                    name=f"{self.name} worker {i}",
                )
