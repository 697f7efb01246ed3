"""An agent restarted on the same state directory adopts what the previous one left running:
never a duplicate (the same process goes on), never an orphan (a pod deleted meanwhile is
stopped), and the restart count survives."""

from __future__ import annotations

import os
import signal

from shoal.agent.runtimes import ContainerState
from shoal.api.kinds.pod import POD
from tests.unit.agent.test_agent_harness import (
    Harness,
    alive,
    cleanup,
    container,
    eventually,
    eventually_no_processes,
    harness,
    running,
)
from tests.unit.agent.test_agent_pods import pid_of

__all__ = ["harness"]


async def test_restarted_agent_adopts_running_container(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("web", ["sleep", "1000"])
        await harness.wait_pod("web", running, "Running")
        pid = await pid_of(harness, "web")
    assert alive(pid)  # the agent stopped, the container did not
    async with harness.running() as agent:
        # The new agent has synced every pod once it is ready; let it settle on this one.
        await harness.wait_pod("web", running, "Running")
        assert await pid_of(harness, "web") == pid
        infos = await agent.runtime.list()
        assert len(infos) == 1 and infos[0].status.state is ContainerState.RUNNING
        pod = await harness.client.get(POD, "web", "default")
        assert container(pod)["restartCount"] == 0
        # Adopted containers are watched too: a crash is seen and restarted.
        os.kill(pid, signal.SIGKILL)
        await harness.wait_pod("web", lambda p: running(p) and container(p)["restartCount"] == 1, "restart")
        await cleanup(harness, "web")


async def test_restart_count_survives_agent_restart(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("web", ["sleep", "1000"])
        await harness.wait_pod("web", running, "Running")
        os.kill(await pid_of(harness, "web"), signal.SIGKILL)
        await harness.wait_pod("web", lambda p: running(p) and container(p)["restartCount"] == 1, "restart")
    async with harness.running():
        await harness.client.patch(
            POD, "web", {"status": {"containerStatuses": None}}, "default", subresource="status"
        )
        pod = await harness.wait_pod("web", lambda p: bool(container(p)), "status reported again")
        assert container(pod)["restartCount"] == 1
        assert container(pod)["lastState"]["terminated"]["exitCode"] == 128 + signal.SIGKILL
        await cleanup(harness, "web")


async def test_pod_deleted_while_agent_was_down_is_stopped(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("keep", ["sleep", "1000"])
        await harness.create_pod("gone", ["sleep", "1000"])
        await harness.wait_pod("keep", running, "Running")
        await harness.wait_pod("gone", running, "Running")
        keep, gone = await pid_of(harness, "keep"), await pid_of(harness, "gone")
    await harness.client.delete(POD, "gone", "default")
    async with harness.running() as agent:
        await harness.wait_pod("keep", running, "Running")
        assert await pid_of(harness, "keep") == keep
        await eventually(lambda: not alive(gone), "the orphan to be stopped")
        assert alive(keep)
        assert [i.identity.pod_name for i in await agent.runtime.list()] == ["keep"]
        await cleanup(harness, "keep")
    await eventually_no_processes(harness)
