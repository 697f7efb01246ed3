"""The agent's test harness: a real in-memory control plane (MemoryStore -> Resources ->
LocalClient), the real exec runtime on a temporary state directory, and an Agent run as a
task. Every container carries a marker in its environment, so each test proves it left no
process behind (and kills any it did)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.agent import Agent
from shoal.agent.config import AgentConfig
from shoal.agent.runtimes import ExecRuntime
from shoal.api import Object
from shoal.api.kinds.pod import POD
from shoal.client.local import LocalClient
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore
from tests.unit.agent.conftest import marked_env, marked_processes

NODE = "node-1"
WAIT = 10.0

# Intervals small enough that a test never waits long for a heartbeat or a back-off.
FAST = AgentConfig(
    node_name=NODE,
    lease_interval=0.05,
    status_interval=0.2,
    retry_interval=0.05,
    backoff_initial=0.3,
    backoff_max=1.0,
)


class Harness:
    def __init__(self, client: LocalClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.state_dir = root / "state"
        self.agent: Agent | None = None

    def new_agent(self, config: AgentConfig = FAST) -> Agent:
        runtime = ExecRuntime(self.state_dir, base_env=marked_env(self.root))
        return Agent(self.client, runtime, config)

    @contextlib.asynccontextmanager
    async def running(
        self, config: AgentConfig = FAST, *, agent: Agent | None = None, wait_ready: bool = True
    ) -> AsyncIterator[Agent]:
        """Run an agent while the block runs; it is cancelled (containers left running) after."""
        agent = self.agent = agent or self.new_agent(config)
        task = asyncio.create_task(agent.run())
        try:
            if wait_ready:
                async with asyncio.timeout(WAIT):
                    await agent.pods.ready.wait()
            yield agent
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def create_pod(self, name: str, command: list[str], **spec: Any) -> Object:
        container: dict[str, Any] = {"name": "app", "image": "exec", "command": command}
        container.update(spec.pop("container", {}))
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", **spec.pop("metadata", {})},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 5, "containers": [container], **spec},
        }
        return await self.client.create(POD, body)

    async def wait_pod(self, name: str, predicate: Callable[[Object], bool], what: str) -> Object:
        """The pod once ``predicate`` holds for it, following its watch (no polling)."""
        try:
            async with asyncio.timeout(WAIT):
                pod = await self.client.get(POD, name, "default")
                if predicate(pod):
                    return pod
                async for event in self.client.watch(
                    POD,
                    "default",
                    resource_version=pod["metadata"]["resourceVersion"],
                    field_selector=f"metadata.name={name}",
                ):
                    if event.type != "DELETED" and predicate(event.object):
                        return event.object
        except TimeoutError:
            pass
        pod = await self.client.get(POD, name, "default")
        pytest.fail(f"timed out waiting for {what}; pod status: {pod.get('status')}")


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = MemoryStore()
    resources = Resources(store)
    await resources.bootstrap()
    yield Harness(LocalClient(resources), tmp_path)
    await store.close()
    leftovers = marked_processes(tmp_path)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes left running: {leftovers}"


async def cleanup(harness: Harness, *names: str) -> None:
    """Delete pods and wait until the running agent has stopped their processes."""
    for name in names:
        await harness.client.delete(POD, name, "default")
    await eventually_no_processes(harness)


async def eventually_no_processes(harness: Harness) -> None:
    async with asyncio.timeout(WAIT):
        while marked_processes(harness.root):  # noqa: ASYNC110 - /proc has no event to await
            await asyncio.sleep(0.02)


def container(pod: Object, name: str = "app") -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s["name"] == name), {})


def state(pod: Object, which: str = "state") -> dict[str, Any]:
    return dict(container(pod).get(which) or {})


def condition(pod: Object, kind: str) -> str:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return ""


def running(pod: Object) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and "running" in state(pod)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """For facts no event announces (a process outside the runtime's view ending)."""
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():  # noqa: ASYNC110 - /proc has no event to await
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")
