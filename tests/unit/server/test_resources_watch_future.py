"""A watch from a resourceVersion the store has not reached: the cluster was restored from a
backup (its revisions start again from 1), so the client is told to list again at once."""

from __future__ import annotations

import pytest

from shoal.api import REGISTRY
from shoal.api.errors import Expired
from shoal.server.resources import ListOptions, Resources
from shoal.store.memory import MemoryStore

CONFIG_MAPS = REGISTRY.lookup("configmaps")


async def test_a_resource_version_beyond_the_store_is_expired_not_awaited() -> None:
    assert CONFIG_MAPS is not None
    resources = Resources(MemoryStore())
    await resources.bootstrap()
    current = int((await resources.list(CONFIG_MAPS, "default"))["metadata"]["resourceVersion"])
    events = resources.watch(CONFIG_MAPS, "default", ListOptions(resource_version=str(current + 500)))
    with pytest.raises(Expired) as refused:
        await anext(events)
    assert refused.value.code == 410
    assert str(refused.value.message) == (
        f"resourceVersion {current + 500} is newer than the store's revision {current} "
        "(was the cluster restored from a backup?): list again"
    )


async def test_the_current_revision_itself_is_still_watched() -> None:
    assert CONFIG_MAPS is not None
    resources = Resources(MemoryStore())
    await resources.bootstrap()
    current = (await resources.list(CONFIG_MAPS, "default"))["metadata"]["resourceVersion"]
    events = resources.watch(CONFIG_MAPS, "default", ListOptions(resource_version=current))
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}
    waiting = anext(events)
    await resources.create(CONFIG_MAPS, "default", body)
    event = await waiting
    assert (event.type, event.object["metadata"]["name"]) == ("ADDED", "after")
    await events.aclose()
