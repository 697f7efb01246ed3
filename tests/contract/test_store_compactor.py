"""The compactor works the same on every backend: it keeps the newest ``keep`` revisions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shoal.store import Compacted, Store
from shoal.store.compactor import compact_once, run_compactor
from shoal.store.etcd import EtcdStore
from shoal.store.memory import MemoryStore
from shoal.store.sqlite import SqliteStore
from tests.etcd_cluster import EtcdCluster


@pytest.fixture(params=["memory", "sqlite", "etcd"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":
        opened = await SqliteStore.open(str(tmp_path / "state.db"))
    else:
        make: Callable[..., EtcdCluster] = request.getfixturevalue("etcd_cluster")
        opened = await EtcdStore.open(make().endpoints)
    try:
        yield opened
    finally:
        await opened.close()


async def test_compact_once_keeps_the_newest_revisions(store: Store) -> None:
    fresh = await store.current_revision()
    assert await compact_once(store, keep=5) == 0  # not enough history yet: nothing to do
    for i in range(10):
        await store.create(f"/k/{i}", b"v")
    head = await store.current_revision()
    assert head == fresh + 10

    point = await compact_once(store, keep=4)
    assert point == head - 4
    with pytest.raises(Compacted):
        await store.list("/k/", revision=point - 1)
    assert len((await store.list("/k/", revision=point)).items) == point - fresh
    assert await compact_once(store, keep=4, done=point) == point  # no new writes: no new point


async def test_run_compactor_ends_when_the_store_closes(store: Store) -> None:
    async with asyncio.timeout(5):
        async with asyncio.TaskGroup() as group:
            compactor = group.create_task(run_compactor(store, interval=0.01, keep=1))
            await store.close()
    assert compactor.done() and compactor.exception() is None
