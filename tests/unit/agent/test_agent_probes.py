"""Probes against the real exec runtime: readiness drives ``ready`` and the Ready condition,
liveness and startup failures restart the container, a startup probe holds the others back,
and exec, httpGet and tcpSocket probes all work. Probes run every second (the smallest period
Kubernetes allows); the tests wait on the pod's status or on files the probes write."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.prober import ProbeError, Prober, resolve_port
from shoal.api.kinds.pod import POD
from tests.unit.agent.test_agent_harness import (
    WAIT,
    Harness,
    cleanup,
    condition,
    container,
    eventually,
    harness,
    running,
    state,
)

__all__ = ["harness"]


def probe(action: dict[str, Any], **settings: int) -> dict[str, Any]:
    return {**action, "periodSeconds": 1, "failureThreshold": 1, **settings}


def exec_probe(script: str, **settings: int) -> dict[str, Any]:
    return probe({"exec": {"command": ["sh", "-c", script]}}, **settings)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def prober(harness: Harness) -> Prober:
    assert harness.agent is not None
    assert isinstance(harness.agent.pods.probes, Prober)
    return harness.agent.pods.probes


async def finish(harness: Harness, *names: str) -> None:
    """Delete the pods; their processes end and no probe task is left."""
    await cleanup(harness, *names)
    await eventually(lambda: not prober(harness).probing(), "the probe tasks to stop")


def restarts(pod: dict[str, Any]) -> int:
    return int(container(pod).get("restartCount", 0))


async def test_readiness_follows_an_exec_probe(harness: Harness, tmp_path: Path) -> None:
    flag, probed = tmp_path / "ready", tmp_path / "probed"
    readiness = exec_probe(f"echo >> {probed}; test -f {flag}")
    async with harness.running():
        await harness.create_pod("web", ["sleep", "1000"], container={"readinessProbe": readiness})
        await harness.wait_pod("web", running, "Running")
        await eventually(lambda: lines(probed) >= 2, "two readiness probes")
        pod = await harness.client.get(POD, "web", "default")
        assert running(pod) and condition(pod, "Ready") == condition(pod, "ContainersReady") == "False"
        assert container(pod)["ready"] is False and container(pod)["started"] is True
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "ContainersNotReady"
        assert ready["message"] == "containers with unready status: [app]"

        flag.touch()
        pod = await harness.wait_pod("web", lambda p: condition(p, "Ready") == "True", "Ready")
        assert condition(pod, "ContainersReady") == "True" and container(pod)["ready"] is True

        flag.unlink()  # failureThreshold 1: the next probe makes it unready again
        pod = await harness.wait_pod("web", lambda p: condition(p, "Ready") == "False", "not Ready")
        assert running(pod) and restarts(pod) == 0  # readiness never restarts a container
        await finish(harness, "web")


async def test_failing_liveness_restarts_the_container(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shoal.agent")
    liveness = exec_probe(f"echo probe failed >&2; test -f {tmp_path / 'healthy'}")
    async with harness.running():
        await harness.create_pod("web", ["sleep", "1000"], container={"livenessProbe": liveness})
        pod = await harness.wait_pod("web", lambda p: running(p) and restarts(p) >= 2, "two restarts")
        last = state(pod, "lastState")["terminated"]
        assert last["exitCode"] == 128 + 15 and last["reason"] == "Error"  # stopped by SIGTERM
        assert "Liveness probe failed: probe failed" in caplog.text
        await finish(harness, "web")


async def test_liveness_failure_with_restart_policy_never_fails_the_pod(harness: Harness) -> None:
    async with harness.running():
        await harness.create_pod(
            "job", ["sleep", "1000"], restartPolicy="Never", container={"livenessProbe": exec_probe("exit 1")}
        )
        pod = await harness.wait_pod("job", lambda p: p["status"]["phase"] == "Failed", "Failed")
        assert restarts(pod) == 0 and state(pod)["terminated"]["exitCode"] == 128 + 15
        await finish(harness, "job")


async def test_startup_probe_holds_back_liveness_and_readiness(harness: Harness, tmp_path: Path) -> None:
    started, startup_log, liveness_log = tmp_path / "started", tmp_path / "startup", tmp_path / "liveness"
    spec = {
        "startupProbe": exec_probe(f"echo >> {startup_log}; test -f {started}", failureThreshold=60),
        "livenessProbe": exec_probe(f"echo >> {liveness_log}; exit 1"),
        "readinessProbe": exec_probe("true"),
    }
    async with harness.running():
        await harness.create_pod("web", ["sleep", "1000"], container=spec)
        await eventually(lambda: lines(startup_log) >= 2, "two startup probes")
        pod = await harness.client.get(POD, "web", "default")
        assert running(pod) and restarts(pod) == 0
        assert container(pod)["ready"] is False and condition(pod, "Ready") == "False"
        assert container(pod)["started"] is False  # running, but its startup probe has not passed
        assert not liveness_log.exists()  # not probed before the container has started

        started.touch()  # the startup probe passes; the failing liveness probe runs and kills
        await harness.wait_pod("web", lambda p: restarts(p) >= 1, "a restart")
        assert lines(liveness_log) >= 1
        await finish(harness, "web")


async def test_failing_startup_probe_restarts_the_container(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shoal.agent")
    async with harness.running():
        await harness.create_pod(
            "web", ["sleep", "1000"], container={"startupProbe": exec_probe("echo not yet; exit 1")}
        )
        await harness.wait_pod("web", lambda p: running(p) and restarts(p) >= 1, "a restart")
        assert "Startup probe failed: not yet" in caplog.text
        await finish(harness, "web")


async def test_http_get_readiness_on_a_named_port(harness: Harness, tmp_path: Path) -> None:
    port, www = free_port(), tmp_path / "www"
    www.mkdir()
    spec = {
        "command": [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(www),
        ],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": probe({"httpGet": {"path": "/healthz", "port": "http"}}),
        # The server needs a moment to listen: three failures in a row before a restart.
        "livenessProbe": probe({"tcpSocket": {"port": port}}, failureThreshold=3),
    }
    async with harness.running() as agent:
        await harness.create_pod("web", [], container=spec)
        pod = await harness.wait_pod("web", running, "Running")
        cid = container(pod)["containerID"].removeprefix("exec://")

        async def log_text() -> str:
            return b"".join([line async for line in agent.runtime.logs(cid)]).decode()

        async with asyncio.timeout(WAIT):  # the server saw the probe and answered 404
            while '"GET /healthz HTTP/1.1" 404' not in await log_text():  # noqa: ASYNC110 - a log has no event
                await asyncio.sleep(0.05)
        pod = await harness.client.get(POD, "web", "default")
        assert condition(pod, "Ready") == "False"

        (www / "healthz").write_text("ok")
        pod = await harness.wait_pod("web", lambda p: condition(p, "Ready") == "True", "Ready")
        assert restarts(pod) == 0
        assert '"GET /healthz HTTP/1.1" 200' in await log_text()
        await finish(harness, "web")


async def test_tcp_socket_readiness_and_liveness(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shoal.agent")
    port, closed, flag = free_port(), free_port(), tmp_path / "listen"
    server = (
        "import os, socket, time\n"
        f"while not os.path.exists({str(flag)!r}):\n"
        "    time.sleep(0.02)\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port}))\n"
        "s.listen()\n"
        "while True:\n"
        "    s.accept()[0].close()\n"
    )
    async with harness.running():
        await harness.create_pod(
            "server",
            [sys.executable, "-c", server],
            container={"readinessProbe": probe({"tcpSocket": {"port": port}})},
        )
        await harness.create_pod(
            "dead", ["sleep", "1000"], container={"livenessProbe": probe({"tcpSocket": {"port": closed}})}
        )
        # Nothing listens on ``closed``: the liveness probe restarts its container.
        await harness.wait_pod("dead", lambda p: restarts(p) >= 1, "a restart")
        assert f"Liveness probe failed: dial tcp 127.0.0.1:{closed}: Connection refused" in caplog.text
        pod = await harness.client.get(POD, "server", "default")
        assert condition(pod, "Ready") == "False" and restarts(pod) == 0

        flag.touch()
        await harness.wait_pod("server", lambda p: condition(p, "Ready") == "True", "Ready")
        await finish(harness, "server", "dead")


async def test_a_probe_that_cannot_run_has_no_result(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shoal.agent")
    spec = {
        "readinessProbe": probe({"tcpSocket": {"port": "nope"}}),
        "livenessProbe": probe({"grpc": {"port": 1234}}),
    }
    async with harness.running():
        await harness.create_pod("web", ["sleep", "1000"], container=spec)
        await eventually(lambda: caplog.text.count("cannot run") >= 2, "two warnings")
        assert "couldn't find port 'nope'" in caplog.text
        pod = await harness.client.get(POD, "web", "default")
        # No result: readiness stays unknown (not ready), liveness stays healthy.
        assert running(pod) and restarts(pod) == 0 and condition(pod, "Ready") == "False"
        await finish(harness, "web")


async def test_readiness_survives_an_agent_restart(harness: Harness, tmp_path: Path) -> None:
    flag, probed = tmp_path / "ready", tmp_path / "probed"
    flag.touch()
    readiness = exec_probe(f"echo >> {probed}; test -f {flag}")
    async with harness.running():
        await harness.create_pod("web", ["sleep", "1000"], container={"readinessProbe": readiness})
        pod = await harness.wait_pod("web", lambda p: condition(p, "Ready") == "True", "Ready")
    version, seen = pod["metadata"]["resourceVersion"], lines(probed)
    async with harness.running():
        # The adopted container keeps the readiness its status shows: probed again, it is
        # still ready, and the pod was never written (no flap through not-ready).
        await eventually(lambda: lines(probed) >= seen + 2, "two probes by the new agent")
        pod = await harness.client.get(POD, "web", "default")
        assert pod["metadata"]["resourceVersion"] == version and condition(pod, "Ready") == "True"
        flag.unlink()
        pod = await harness.wait_pod("web", lambda p: condition(p, "Ready") == "False", "not Ready")
        assert restarts(pod) == 0
        await finish(harness, "web")


def test_resolve_port() -> None:
    spec = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port(spec, 80) == 80
    assert resolve_port(spec, "8081") == 8081
    assert resolve_port(spec, "http") == 8080
    with pytest.raises(ProbeError, match="couldn't find port 'metrics'"):
        resolve_port(spec, "metrics")
    with pytest.raises(ProbeError, match="invalid port"):
        resolve_port(spec, 70000)
