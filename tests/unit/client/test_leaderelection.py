"""Leader election between candidates sharing one in-memory control plane."""

from __future__ import annotations

import asyncio
import time

from shoal.api import REGISTRY
from shoal.client.leaderelection import LeaderElector
from shoal.client.local import LocalClient
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore

LEASE = REGISTRY.lookup("leases")


async def control_plane() -> LocalClient:
    resources = Resources(MemoryStore())
    await resources.bootstrap()
    return LocalClient(resources)


def candidate(client: LocalClient, identity: str) -> LeaderElector:
    return LeaderElector(
        client, "controllers", identity, lease_duration=1.0, renew_interval=0.2, retry_interval=0.05
    )


async def renewals(client: LocalClient, holder: str, count: int) -> None:
    """Wait until ``holder`` has renewed the lease ``count`` times."""
    assert LEASE is not None
    seen = 0
    async with asyncio.timeout(5):
        async for event in client.watch(LEASE, "kube-system", resource_version="0"):
            if event.type == "MODIFIED" and event.object["spec"]["holderIdentity"] == holder:
                seen += 1
                if seen == count:
                    return


async def test_one_leader_then_takeover_after_the_lease_expires() -> None:
    assert LEASE is not None
    client = await control_plane()
    a, b = candidate(client, "a"), candidate(client, "b")
    a_work = asyncio.Event()
    b_work = asyncio.Event()

    async def lead(started: asyncio.Event) -> None:
        started.set()
        await asyncio.Event().wait()  # work until cancelled

    async with asyncio.TaskGroup() as tasks:
        task_a = tasks.create_task(a.run(lambda: lead(a_work)))
        await asyncio.wait_for(a_work.wait(), 5)
        task_b = tasks.create_task(b.run(lambda: lead(b_work)))
        await renewals(client, "a", 3)  # b is campaigning all along
        assert not b.leading.is_set()
        lease = await client.get(LEASE, "controllers", "kube-system")
        assert lease["spec"]["holderIdentity"] == "a"
        task_a.cancel()  # a dies without releasing: b waits out the lease duration
        killed_at = time.monotonic()
        await asyncio.wait_for(b_work.wait(), 5)
        assert time.monotonic() - killed_at >= 0.7
        lease = await client.get(LEASE, "controllers", "kube-system")
        assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
        task_b.cancel()


async def test_a_leader_that_finishes_releases_the_lease_at_once() -> None:
    client = await control_plane()
    a, b = candidate(client, "a"), candidate(client, "b")
    b_work = asyncio.Event()

    async def short() -> None:
        return None

    async def lead() -> None:
        b_work.set()
        await asyncio.Event().wait()

    await a.run(short)
    released_at = time.monotonic()
    async with asyncio.TaskGroup() as tasks:
        task_b = tasks.create_task(b.run(lead))
        await asyncio.wait_for(b_work.wait(), 5)
        task_b.cancel()
    assert time.monotonic() - released_at < 0.7  # no need to wait for the 1 s expiry
