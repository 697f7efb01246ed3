"""Informers over the in-process client on the memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shoal.api import REGISTRY, Object
from shoal.api.errors import Expired
from shoal.client.informer import Informer, object_key
from shoal.client.local import LocalClient
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore

CM = REGISTRY.lookup("configmaps")
assert CM is not None


@pytest.fixture
async def client() -> AsyncIterator[LocalClient]:
    store = MemoryStore()
    resources = Resources(store)
    await resources.bootstrap()
    yield LocalClient(resources)
    await store.close()


def cm(name: str, **data: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": data,
    }


class Until:
    """Set once ``condition`` holds, checked every time the informer tells its handlers."""

    def __init__(self, informer: Informer, condition: Any) -> None:
        self.done = asyncio.Event()
        self.condition = condition
        informer.add_handler(self.check)

    def check(self, old: Object | None, new: Object | None) -> None:
        if self.condition():
            self.done.set()

    async def wait(self) -> None:
        await asyncio.wait_for(self.done.wait(), 5)


async def test_cache_follows_list_then_watch_and_tells_handlers(client: LocalClient) -> None:
    assert CM is not None
    await client.create(CM, cm("before", a="1"))
    informer = Informer(client, CM, "default")
    seen: list[tuple[str | None, str | None]] = []
    informer.add_handler(lambda old, new: seen.append((old and object_key(old), new and object_key(new))))
    all_seen = Until(informer, lambda: len(seen) == 4)
    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(informer.run())
        await asyncio.wait_for(informer.synced.wait(), 5)
        assert informer.get("default/before") is not None
        await client.create(CM, cm("after"))
        await client.patch(CM, "before", {"data": {"a": "2"}}, "default")
        await client.delete(CM, "after", "default")
        await all_seen.wait()
        running.cancel()
    assert seen == [
        (None, "default/before"),
        (None, "default/after"),
        ("default/before", "default/before"),
        ("default/after", None),
    ]
    before = informer.get("default/before")
    assert before is not None and before["data"] == {"a": "2"}
    assert informer.get("default/after") is None


async def test_an_expired_watch_relists_and_tells_handlers_what_changed(client: LocalClient) -> None:
    assert CM is not None
    informer = Informer(client, CM, "default")
    deleted: list[str] = []
    informer.add_handler(lambda old, new: deleted.append(object_key(old)) if new is None and old else None)
    await client.create(CM, cm("gone"))
    revision = await informer._relist()  # the cache as of now
    await client.delete(CM, "gone", "default")
    await client.create(CM, cm("new"))
    store = client.resources.store
    await store.compact(await store.current_revision())
    with pytest.raises(Expired):  # the history since that list is gone
        await informer._watch(revision)
    relisted = Until(
        informer, lambda: informer.get("default/new") is not None and not informer.get("default/gone")
    )
    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(informer.run())
        await relisted.wait()
        running.cancel()
    assert deleted == ["default/gone"]
