"""The controllers together, as the leader runs them: they cooperate through the store only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from shoal.api import REGISTRY, Kind, Object
from shoal.client.local import LocalClient
from shoal.manager.controlplane import run_as_leader
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore

DEPLOY = REGISTRY.lookup("deployments")
RS = REGISTRY.lookup("replicasets")
POD = REGISTRY.lookup("pods")
assert DEPLOY is not None and RS is not None and POD is not None


def deployment(name: str, replicas: int) -> Object:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


async def until(client: LocalClient, check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (10 s at most) until ``check`` (re-evaluated at every pod or ReplicaSet change) holds."""
    assert POD is not None and RS is not None
    changed = asyncio.Event()

    async def follow(kind: Kind) -> None:
        async for _event in client.watch(kind, "default"):
            changed.set()

    async with asyncio.timeout(10), asyncio.TaskGroup() as tasks:
        watchers = [tasks.create_task(follow(POD)), tasks.create_task(follow(RS))]
        while not await check():
            changed.clear()
            await changed.wait()
        for watcher in watchers:
            watcher.cancel()


async def test_deployment_to_pods_and_cascading_delete() -> None:
    assert DEPLOY is not None and RS is not None and POD is not None
    store = MemoryStore()
    resources = Resources(store)
    await resources.bootstrap()
    client = LocalClient(resources)

    async def pods() -> list[Object]:
        assert POD is not None
        return list((await client.list(POD, "default"))["items"])

    async with asyncio.TaskGroup() as tasks:
        leader = tasks.create_task(run_as_leader(client, "test-manager"))
        await client.create(DEPLOY, deployment("web", 3))

        async def three_pods() -> bool:
            return len(await pods()) == 3

        await until(client, three_pods)
        owners = {p["metadata"]["ownerReferences"][0]["name"] for p in await pods()}
        assert len(owners) == 1 and owners.pop().startswith("web-")

        await client.patch(DEPLOY, "web", {"spec": {"replicas": 5}}, "default")

        async def five_pods() -> bool:
            return len(await pods()) == 5

        await until(client, five_pods)

        await client.delete(DEPLOY, "web", "default")  # Background: the collector takes the rest

        async def nothing_left() -> bool:
            assert RS is not None
            return not await pods() and not (await client.list(RS, "default"))["items"]

        await until(client, nothing_left)
        leader.cancel()
    await store.close()
