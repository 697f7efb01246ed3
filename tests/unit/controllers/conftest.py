"""A real in-memory control plane for controller tests: memory store, resource layer,
in-process client, shared informers running in the background."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from shoal.api import REGISTRY, Kind, Object
from shoal.client.informer import Informer, Informers
from shoal.client.local import LocalClient
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore


def kind(name: str) -> Kind:
    found = REGISTRY.lookup(name)
    assert found is not None
    return found


class Stack:
    def __init__(self, client: LocalClient, informers: Informers) -> None:
        self.client = client
        self.informers = informers
        self._changed = asyncio.Event()

    def watch_informers(self) -> None:
        for informer in self.informers.all():
            informer.add_handler(lambda old, new: self._changed.set())

    async def settle(self) -> None:
        """Wait (5 s at most) until every informer's cache matches the store: each has seen
        every write."""
        async with asyncio.timeout(5):
            while not await self._caught_up():
                self._changed.clear()
                if await self._caught_up():
                    return
                await self._changed.wait()

    async def _caught_up(self) -> bool:
        for informer in self.informers.all():
            if not await _matches(self.client, informer):
                return False
        return True


async def _matches(client: LocalClient, informer: Informer) -> bool:
    listed = await client.list(informer.kind, informer.namespace)
    want = {
        (o["metadata"].get("namespace"), o["metadata"]["name"], o["metadata"]["resourceVersion"])
        for o in listed["items"]
    }
    have = {
        (o["metadata"].get("namespace"), o["metadata"]["name"], o["metadata"]["resourceVersion"])
        for o in informer.list()
    }
    return want == have


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    store = MemoryStore()
    resources = Resources(store)
    await resources.bootstrap()
    client = LocalClient(resources)
    informers = Informers(client)
    yield Stack(client, informers)
    await store.close()


@contextlib.asynccontextmanager
async def running(stack: Stack) -> AsyncIterator[None]:
    """Run the informers the controllers under test asked for, while the block runs."""
    stack.watch_informers()
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(stack.informers.run())
        await asyncio.wait_for(stack.informers.wait_synced(), 5)
        try:
            yield
        finally:
            task.cancel()


def pods_of(stack: Stack, owner: Object) -> list[Object]:
    pods = stack.informers.of(kind("pods")).list()
    return [
        p
        for p in pods
        if any(r.get("uid") == owner["metadata"]["uid"] for r in p["metadata"].get("ownerReferences") or [])
    ]
