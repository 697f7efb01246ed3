"""Pod sync against the real exec runtime: pods bound to the node run as processes, restart
by their policy with back-off, report status through /status, and leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

from shoal.agent.runtimes import ContainerState
from shoal.api.kinds.pod import POD
from tests.unit.agent.test_agent_harness import (
    Harness,
    alive,
    cleanup,
    condition,
    container,
    harness,
    running,
    state,
)

__all__ = ["harness"]


async def pid_of(harness: Harness, pod_name: str) -> int:
    pod = await harness.client.get(POD, pod_name, "default")
    assert harness.agent is not None
    cid = container(pod)["containerID"].removeprefix("exec://")
    status = await harness.agent.runtime.status(cid)
    assert status.state is ContainerState.RUNNING and status.pid is not None
    return status.pid


async def test_pod_runs_and_reports_status(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("web", ["sleep", "1000"])
        pod = await harness.wait_pod("web", lambda p: running(p) and condition(p, "Ready") == "True", "Ready")
        status = pod["status"]
        assert status["hostIP"] == status["podIP"] == "127.0.0.1"
        assert status["startTime"]
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "PodScheduled": "True",
            "Initialized": "True",
            "ContainersReady": "True",
            "Ready": "True",
        }
        app = container(pod)
        assert app["ready"] is True and app["started"] is True
        assert app["restartCount"] == 0
        assert app["image"] == "exec" and app["imageID"] == ""
        assert app["containerID"].startswith("exec://")
        assert alive(await pid_of(harness, "web"))
        # Level-triggered, yet quiet: nothing changed, so nothing more is written.
        version = pod["metadata"]["resourceVersion"]
        await asyncio.sleep(0.5)
        assert (await harness.client.get(POD, "web", "default"))["metadata"]["resourceVersion"] == version
        await cleanup(harness, "web")


async def test_killed_container_is_restarted(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("web", ["sleep", "1000"])
        await harness.wait_pod("web", running, "Running")
        pid = await pid_of(harness, "web")
        os.kill(pid, signal.SIGKILL)
        pod = await harness.wait_pod(
            "web", lambda p: running(p) and container(p).get("restartCount") == 1, "a restart"
        )
        assert state(pod, "lastState")["terminated"]["exitCode"] == 128 + signal.SIGKILL
        assert await pid_of(harness, "web") != pid
        await cleanup(harness, "web")


async def test_exit_0_with_never_succeeds(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("job", ["sh", "-c", "exit 0"], restartPolicy="Never")
        pod = await harness.wait_pod("job", lambda p: p["status"]["phase"] == "Succeeded", "Succeeded")
        terminated = state(pod)["terminated"]
        assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
        assert condition(pod, "Ready") == "False"
        assert container(pod)["restartCount"] == 0
        await cleanup(harness, "job")


async def test_exit_3_with_never_fails(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("job", ["sh", "-c", "exit 3"], restartPolicy="Never")
        pod = await harness.wait_pod("job", lambda p: p["status"]["phase"] == "Failed", "Failed")
        terminated = state(pod)["terminated"]
        assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
        assert terminated["containerID"].startswith("exec://")
        await cleanup(harness, "job")


async def test_failing_container_backs_off_with_crash_loop(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("crash", ["sh", "-c", "exit 3"], restartPolicy="OnFailure")
        pod = await harness.wait_pod(
            "crash", lambda p: state(p).get("waiting", {}).get("reason") == "CrashLoopBackOff", "back-off"
        )
        # 0.3 s, or longer if a slow machine already missed that first delay.
        assert re.match(
            r"back-off (0\.3|0\.6|1)s restarting failed container=app pod=crash_default\(",
            state(pod)["waiting"]["message"],
        )
        assert state(pod, "lastState")["terminated"]["exitCode"] == 3
        assert pod["status"]["phase"] == "Running"  # OnFailure: it will run again
        # The first restart is immediate, the next ones wait, and the count goes on growing.
        await harness.wait_pod("crash", lambda p: container(p).get("restartCount", 0) >= 3, "restart 3")
        assert harness.agent is not None
        # Only the latest attempt and the one before it are kept (state, lastState, logs).
        assert len(await harness.agent.runtime.list()) == 2
        await cleanup(harness, "crash")


async def test_exit_0_with_on_failure_is_not_restarted(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("job", [sys.executable, "-c", "pass"], restartPolicy="OnFailure")
        pod = await harness.wait_pod("job", lambda p: p["status"]["phase"] == "Succeeded", "Succeeded")
        assert container(pod)["restartCount"] == 0
        await cleanup(harness, "job")


async def test_missing_executable_is_a_start_error(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("bad", ["/no/such/program"], restartPolicy="Never")
        await harness.create_pod("bad-always", ["/no/such/program"])
        pod = await harness.wait_pod("bad", lambda p: p["status"]["phase"] == "Failed", "Failed")
        terminated = state(pod)["terminated"]
        assert terminated["reason"] == "StartError"
        assert terminated["exitCode"] == 128
        assert "/no/such/program" in terminated["message"]
        pod = await harness.wait_pod(
            "bad-always",
            lambda p: state(p).get("waiting", {}).get("reason") == "CrashLoopBackOff",
            "back-off after StartError",
        )
        assert state(pod, "lastState")["terminated"]["reason"] == "StartError"
        await cleanup(harness, "bad", "bad-always")


async def test_deleted_pod_stops_its_processes(harness: Harness) -> None:
    async with harness.running() as agent:
        await harness.create_pod("web", ["sleep", "1000"])
        await harness.wait_pod("web", running, "Running")
        pid = await pid_of(harness, "web")
        await cleanup(harness, "web")
        assert not alive(pid)
        async with asyncio.timeout(5):
            while await agent.runtime.list():  # noqa: ASYNC110 - removal follows the stop
                await asyncio.sleep(0.02)


async def test_pod_with_deletion_timestamp_is_stopped_and_reported(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod("held", ["sleep", "1000"], metadata={"finalizers": ["test.shoal.io/hold"]})
        await harness.wait_pod("held", running, "Running")
        await harness.client.delete(POD, "held", "default")  # finalizer: marked, not gone
        pod = await harness.wait_pod("held", lambda p: "terminated" in state(p), "terminated")
        assert pod["metadata"]["deletionTimestamp"]
        assert state(pod)["terminated"]["exitCode"] == 128 + signal.SIGTERM
        # Later events on the pod leave that last word alone.
        await harness.client.patch(POD, "held", {"metadata": {"labels": {"poke": "1"}}}, "default")
        await asyncio.sleep(0.3)  # proving that nothing happens takes a while
        assert "terminated" in state(await harness.client.get(POD, "held", "default"))
        await harness.client.patch(POD, "held", {"metadata": {"finalizers": None}}, "default")
        await cleanup(harness)


async def test_pod_with_two_containers(harness: Harness) -> None:
    async with harness.running():
        second = {"name": "side", "image": "exec", "command": ["sleep", "1000"]}
        await harness.client.create(
            POD,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "duo", "namespace": "default"},
                "spec": {
                    "nodeName": "node-1",
                    "containers": [{"name": "app", "image": "exec", "command": ["sleep", "1000"]}, second],
                },
            },
        )
        pod = await harness.wait_pod("duo", lambda p: condition(p, "Ready") == "True", "Ready")
        assert [c["name"] for c in pod["status"]["containerStatuses"]] == ["app", "side"]
        assert all(c["ready"] for c in pod["status"]["containerStatuses"])
        await cleanup(harness, "duo")


async def test_init_containers_are_refused_clearly(harness: Harness) -> None:
    async with harness.running():
        init = [{"name": "setup", "image": "exec", "command": ["true"]}]
        await harness.create_pod("init", ["sleep", "1000"], initContainers=init)
        pod = await harness.wait_pod(
            "init", lambda p: "waiting" in state(p) and "message" in state(p)["waiting"], "refusal"
        )
        assert state(pod)["waiting"]["message"] == "init containers are not supported by the shoal agent yet"
        assert pod["status"]["phase"] == "Pending"
        assert condition(pod, "Initialized") == "False"
        await cleanup(harness, "init")
