"""The manager away: the agent keeps its pods running (and restarting), keeps trying, and
reports and registers once the manager is back."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

from shoal.agent.agent import Agent
from shoal.agent.runtimes import ExecRuntime
from shoal.api import Kind, Object
from shoal.api.errors import ServiceUnavailable
from shoal.api.kinds.node import NODE
from shoal.client._interface import MERGE_PATCH, WatchEvent
from shoal.client.local import LocalClient
from tests.unit.agent.conftest import marked_env
from tests.unit.agent.test_agent_harness import (
    FAST,
    Harness,
    alive,
    cleanup,
    container,
    eventually,
    harness,
    running,
)
from tests.unit.agent.test_agent_pods import pid_of

__all__ = ["harness"]


class Flaky:
    """A client whose every request fails while ``down`` (watches already open go on: the
    informer's cache stays as it was, as with a manager that stopped answering)."""

    def __init__(self, inner: LocalClient) -> None:
        self.inner = inner
        self.down = False
        self.refused = 0

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise ServiceUnavailable("the manager is away (test)")

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Object:
        self._check()
        return await self.inner.get(kind, name, namespace)

    async def list(
        self, kind: Kind, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> Object:
        self._check()
        return await self.inner.list(
            kind, namespace, label_selector=label_selector, field_selector=field_selector
        )

    async def create(
        self, kind: Kind, obj: Object, namespace: str | None = None, *, dry_run: bool = False
    ) -> Object:
        self._check()
        return await self.inner.create(kind, obj, namespace, dry_run=dry_run)

    async def update(
        self, kind: Kind, obj: Object, *, subresource: str = "", dry_run: bool = False
    ) -> Object:
        self._check()
        return await self.inner.update(kind, obj, subresource=subresource, dry_run=dry_run)

    async def patch(
        self,
        kind: Kind,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str = "",
    ) -> Object:
        self._check()
        return await self.inner.patch(
            kind, name, patch, namespace, patch_type=patch_type, subresource=subresource
        )

    async def delete(
        self, kind: Kind, name: str, namespace: str | None = None, *, propagation_policy: str = ""
    ) -> Object:
        self._check()
        return await self.inner.delete(kind, name, namespace, propagation_policy=propagation_policy)

    async def bind(self, kind: Kind, name: str, namespace: str | None, node: str) -> None:
        self._check()
        await self.inner.bind(kind, name, namespace, node)

    async def watch(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> AsyncIterator[WatchEvent]:
        self._check()
        async for event in self.inner.watch(
            kind,
            namespace,
            resource_version=resource_version,
            label_selector=label_selector,
            field_selector=field_selector,
        ):
            yield event

    async def close(self) -> None:
        await self.inner.close()


async def test_pods_keep_running_and_restarting_while_manager_is_away(harness: Harness) -> None:
    flaky = Flaky(harness.client)
    agent = Agent(flaky, ExecRuntime(harness.state_dir, base_env=marked_env(harness.root)), FAST)
    async with harness.running(agent=agent):
        await harness.create_pod("web", ["sleep", "1000"])
        await harness.wait_pod("web", running, "Running")
        pid = await pid_of(harness, "web")
        flaky.down = True
        refused = flaky.refused
        await eventually(lambda: flaky.refused > refused + 3, "heartbeats to fail")
        assert alive(pid)
        os.kill(pid, signal.SIGKILL)
        # Restarted from the cache, though the status cannot be written yet.
        await eventually(lambda: len(_infos(agent)) == 2, "a new attempt")
        # Retries back off: the agent does not hammer a manager that is down.
        refused = flaky.refused
        await asyncio.sleep(0.5)
        assert flaky.refused - refused < 40  # ~10 lease renewals, a few status and sync retries
        flaky.down = False
        pod = await harness.wait_pod(
            "web", lambda p: container(p).get("restartCount") == 1, "restart reported"
        )
        assert running(pod)
        await cleanup(harness, "web")


def _infos(agent: Agent) -> list[str]:
    runtime = agent.runtime
    assert isinstance(runtime, ExecRuntime)
    return [str(p) for p in runtime.state_dir.glob("pods/*/*/*.json")]


async def test_node_registers_once_manager_answers(harness: Harness) -> None:
    flaky = Flaky(harness.client)
    flaky.down = True
    agent = Agent(flaky, ExecRuntime(harness.state_dir, base_env=marked_env(harness.root)), FAST)
    async with harness.running(agent=agent, wait_ready=False):
        await eventually(lambda: flaky.refused > 3, "registration attempts")
        assert not agent.node.registered.is_set()
        flaky.down = False
        await eventually(agent.node.registered.is_set, "registration")
        node = await harness.client.get(NODE, "node-1")
        assert node["status"]["nodeInfo"]["operatingSystem"] == "linux"
