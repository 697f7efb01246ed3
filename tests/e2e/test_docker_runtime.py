"""The docker runtime against a real, private Docker engine (tests/docker_engine.py): the Runtime
contract as the agent relies on it, sandboxes, limits, images, exec and stats."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from shoal.agent.runtimes import (
    REASON_COMPLETED,
    REASON_ERR_IMAGE_NEVER_PULL,
    REASON_ERR_IMAGE_PULL,
    REASON_ERROR,
    REASON_OOM_KILLED,
    ContainerExists,
    ContainerIdentity,
    ContainerNotFound,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerState,
    ImageError,
    InvalidState,
    PortMapping,
    SandboxSpec,
    StartFailed,
)
from shoal.agent.runtimes.docker import LABEL_SANDBOX, DockerRuntime
from tests.docker_engine import DockerEngine

WAIT = 30.0


@pytest.fixture
async def runtime(docker_engine: DockerEngine) -> AsyncIterator[DockerRuntime]:
    runtime = DockerRuntime(docker_engine.url)
    try:
        yield runtime
    finally:
        await runtime.close()
        docker_engine.remove_all_containers()


def pod(name: str = "web") -> SandboxSpec:
    return SandboxSpec("default", name, str(uuid.uuid4()), name)


def identity(sandbox: SandboxSpec, container: str = "app", attempt: int = 0) -> ContainerIdentity:
    return ContainerIdentity(sandbox.namespace, sandbox.pod_name, sandbox.pod_uid, container, attempt)


def sh(script: str, image: str, **kw: Any) -> ContainerSpec:
    return replace(ContainerSpec(command=("sh", "-c", script), image=image), **kw)


async def test_a_container_runs_exits_and_is_found_again(
    runtime: DockerRuntime, docker_engine: DockerEngine
) -> None:
    sandbox = pod()
    await runtime.run_sandbox(sandbox)
    cid = await runtime.create(identity(sandbox), sh("echo one; echo two >&2; exit 3", docker_engine.image))
    assert (await runtime.status(cid)).state is ContainerState.CREATED
    with pytest.raises(ContainerExists) as exists:
        await runtime.create(identity(sandbox), sh("true", docker_engine.image))
    assert exists.value.container_id == cid  # a create after a crash finds the same container
    await runtime.start(cid)
    async with asyncio.timeout(WAIT):
        ended = await runtime.wait(cid)
    assert (ended.state, ended.exit_code, ended.reason) == (ContainerState.EXITED, 3, REASON_ERROR)
    assert ended.started_at and ended.finished_at
    with pytest.raises(InvalidState):
        await runtime.start(cid)
    lines = [line async for line in runtime.logs(cid)]
    assert sorted(lines) == [b"one\n", b"two\n"]
    assert [line async for line in runtime.logs(cid, tail=1)] in ([b"one\n"], [b"two\n"])

    # A new runtime object (a restarted agent) lists what the last one made, by its labels.
    again = DockerRuntime(docker_engine.url)
    try:
        [info] = await again.list()
        assert info.identity == identity(sandbox) and info.status.id == cid
        [found] = await again.list_sandboxes()
        assert found.pod_uid == sandbox.pod_uid
    finally:
        await again.close()

    await runtime.remove(cid)
    with pytest.raises(ContainerNotFound):
        await runtime.status(cid)
    await runtime.remove_sandbox(sandbox.pod_uid)
    assert docker_engine.containers(all=True) == []


async def test_containers_of_a_pod_share_its_network(
    runtime: DockerRuntime, docker_engine: DockerEngine
) -> None:
    sandbox = pod()
    made = await runtime.run_sandbox(sandbox)
    assert made.ip and made.ip.startswith("172.")
    assert await runtime.run_sandbox(sandbox) == made  # idempotent: the same sandbox
    server = await runtime.create(
        identity(sandbox, "server"),
        sh(
            "mkdir /www && echo from-server > /www/index.html && httpd -f -p 8000 -h /www",
            docker_engine.image,
        ),
    )
    await runtime.start(server)
    client = await runtime.create(
        identity(sandbox, "client"),
        sh("until wget -q -O- http://localhost:8000/; do sleep 0.1; done", docker_engine.image),
    )
    await runtime.start(client)
    async with asyncio.timeout(WAIT):
        ended = await runtime.wait(client)
    assert (ended.exit_code, ended.reason) == (0, REASON_COMPLETED)
    assert [line async for line in runtime.logs(client)] == [b"from-server\n"]


async def test_a_memory_hog_is_oom_killed(runtime: DockerRuntime, docker_engine: DockerEngine) -> None:
    sandbox = pod()
    await runtime.run_sandbox(sandbox)
    hog = sh("tail /dev/zero", docker_engine.image, memory_limit=32 * 2**20)
    cid = await runtime.create(identity(sandbox), hog)
    await runtime.start(cid)
    async with asyncio.timeout(WAIT):
        ended = await runtime.wait(cid)
    assert (ended.exit_code, ended.reason) == (137, REASON_OOM_KILLED)


async def test_limits_reach_the_engine(runtime: DockerRuntime, docker_engine: DockerEngine) -> None:
    sandbox = pod()
    await runtime.run_sandbox(sandbox)
    spec = sh("sleep 60", docker_engine.image, memory_limit=64 * 2**20, cpu_limit=0.25)
    cid = await runtime.create(identity(sandbox), spec)
    host_config = docker_engine.api("GET", f"/containers/{cid}/json")["HostConfig"]
    assert (host_config["Memory"], host_config["MemorySwap"], host_config["NanoCpus"]) == (
        64 * 2**20,
        64 * 2**20,
        250_000_000,
    )


async def test_exec_stats_and_stop(runtime: DockerRuntime, docker_engine: DockerEngine) -> None:
    sandbox = pod()
    await runtime.run_sandbox(sandbox)
    spec = ContainerSpec(
        command=("sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"),
        env=(("GREETING", "hello"),),
        working_dir="/tmp",
        image=docker_engine.image,
    )
    cid = await runtime.create(identity(sandbox), spec)
    await runtime.start(cid)
    result = await runtime.exec(cid, ["sh", "-c", 'echo "$GREETING from $(pwd)"; exit 4'])
    assert (result.exit_code, result.output) == (4, b"hello from /tmp\n")

    async with runtime.exec_session(cid, ["sh", "-c", "cat; echo done >&2"], stdin=True) as session:
        await session.write(b"typed\n")
        await session.close_stdin()
        chunks = []
        while (chunk := await session.read()) is not None:
            chunks.append(chunk)
        assert await session.exit_code() == 0
    assert (1, b"typed\n") in chunks and (2, b"done\n") in chunks

    stats = await runtime.stats(cid)
    assert stats.memory_rss_bytes > 0 and stats.processes >= 1 and stats.cpu_seconds >= 0

    stopped = await runtime.stop(cid, grace_period=10)
    assert (stopped.state, stopped.exit_code) == (ContainerState.EXITED, 0)  # the TERM trap ran
    with pytest.raises(InvalidState):
        await runtime.exec(cid, ["true"])


async def test_a_missing_command_is_a_start_error(
    runtime: DockerRuntime, docker_engine: DockerEngine
) -> None:
    sandbox = pod()
    await runtime.run_sandbox(sandbox)
    cid = await runtime.create(
        identity(sandbox), ContainerSpec(command=("/no/such",), image=docker_engine.image)
    )
    with pytest.raises(StartFailed) as failed:
        await runtime.start(cid)
    assert "/no/such" in failed.value.message
    status = await runtime.status(cid)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 128, "StartError")


async def test_image_pull_policies(runtime: DockerRuntime, docker_engine: DockerEngine) -> None:
    sandbox = pod()
    await runtime.run_sandbox(sandbox)
    with pytest.raises(ImageError) as never:
        await runtime.create(
            identity(sandbox), ContainerSpec(image="shoal-test/absent:1", image_pull_policy="Never")
        )
    assert never.value.reason == REASON_ERR_IMAGE_NEVER_PULL
    # The lab has no way out: the pull fails, and the engine's own message comes back.
    with pytest.raises(ImageError) as pull:
        await runtime.create(identity(sandbox), ContainerSpec(image="shoal-test/absent:1"))
    assert pull.value.reason == REASON_ERR_IMAGE_PULL and pull.value.message
    # Always with a local copy and no registry: the local image runs.
    cid = await runtime.create(identity(sandbox), sh("true", docker_engine.image, image_pull_policy="Always"))
    assert (await runtime.status(cid)).state is ContainerState.CREATED
    assert [c["Names"] for c in docker_engine.containers(all=True) if LABEL_SANDBOX not in c["Labels"]] == [
        [f"/shoal_app_web_default_{sandbox.pod_uid}_0"]
    ]


async def test_a_taken_host_port_fails_the_sandbox_cleanly(
    runtime: DockerRuntime, docker_engine: DockerEngine
) -> None:
    first, second = pod("a"), pod("b")
    port = (PortMapping(80, 18080),)
    await runtime.run_sandbox(_with_ports(first, port))
    with pytest.raises(ContainerRuntimeError, match="18080"):
        await runtime.run_sandbox(_with_ports(second, port))
    names = [c["Names"][0] for c in docker_engine.containers(all=True)]
    assert names == [f"/shoal_POD_a_default_{first.pod_uid}"]  # nothing half-made stays


async def test_a_dead_sandbox_is_replaced(runtime: DockerRuntime, docker_engine: DockerEngine) -> None:
    sandbox = pod()
    made = await runtime.run_sandbox(sandbox)
    docker_engine.api("POST", f"/containers/{made.id}/kill")
    again = await runtime.run_sandbox(sandbox)
    assert again.id != made.id
    assert [c["Id"] for c in docker_engine.containers(all=True)] == [again.id]


def _with_ports(spec: SandboxSpec, ports: tuple[PortMapping, ...]) -> SandboxSpec:
    return SandboxSpec(spec.namespace, spec.pod_name, spec.pod_uid, spec.hostname, ports=ports)
