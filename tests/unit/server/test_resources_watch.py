"""The resource layer's watch when the store ends it, on the memory store."""

from __future__ import annotations

import pytest

from shoal.api import REGISTRY
from shoal.api.errors import Expired
from shoal.server.resources import ListOptions, Resources
from shoal.store.memory import MemoryStore

CONFIG_MAPS = REGISTRY.lookup("configmaps")


async def test_a_watcher_that_falls_behind_is_told_to_relist() -> None:
    assert CONFIG_MAPS is not None
    resources = Resources(MemoryStore(max_backlog=5))
    await resources.bootstrap()
    start = (await resources.list(CONFIG_MAPS, "default"))["metadata"]["resourceVersion"]
    events = resources.watch(CONFIG_MAPS, "default", ListOptions(resource_version=start))
    for i in range(21):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}}
        await resources.create(CONFIG_MAPS, "default", body)
        if i == 0:
            first = await anext(events)  # from history; the watch is live from here on
            assert first.type == "ADDED"
    # Twenty events were written while the watcher read nothing: more than its backlog of five.
    with pytest.raises(Expired, match="list again"):
        async for _event in events:
            pass
