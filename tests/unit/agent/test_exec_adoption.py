"""Adoption: containers outlive the agent, and the next agent finds them by their records
(DESIGN §5: never a duplicate, never an orphan). The agent is a real process that is killed
with SIGKILL; its containers must keep running and be stoppable by the next one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from shoal.agent.runtimes import (
    REASON_STATUS_UNKNOWN,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerState,
    ExecRuntime,
    _proc,
)
from tests.unit.agent.conftest import eventually, identity, log_text, marked_env

WAIT = 10.0

# A stand-in for the agent: start one container, say its id and pid, then wait to be killed.
AGENT = """
import asyncio, json, sys
from shoal.agent.runtimes import ContainerIdentity, ContainerSpec, ExecRuntime

async def main() -> None:
    state_dir, env, command = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    rt = ExecRuntime(state_dir, base_env=env)
    cid = await rt.create(ContainerIdentity("default", "web-1", "0f1e2d3c-uid", "app", 2),
                          ContainerSpec(command=tuple(command)))
    status = await rt.start(cid)
    print(cid, status.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def run_agent_and_kill_it(state_dir: Path, root: Path, command: list[str]) -> tuple[str, int]:
    """Run the stand-in agent until its container started, then SIGKILL it; (id, pid)."""
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        AGENT,
        str(state_dir),
        json.dumps(marked_env(root)),
        json.dumps(command),
        stdout=asyncio.subprocess.PIPE,
    )
    assert agent.stdout is not None
    try:
        async with asyncio.timeout(WAIT):
            line = await agent.stdout.readline()
        cid, pid = line.decode().split()
    finally:
        agent.send_signal(signal.SIGKILL)
        await agent.wait()
    return cid, int(pid)


def alive(pid: int) -> bool:
    return _proc.start_time(pid) is not None


async def test_containers_survive_a_killed_agent_and_are_adopted(
    runtime: ExecRuntime, state_dir: Path, tmp_path: Path
) -> None:
    cid, pid = await run_agent_and_kill_it(state_dir, tmp_path, ["sh", "-c", "echo hello; exec sleep 60"])
    assert alive(pid), "the container died with its agent"
    [info] = await runtime.list()  # `runtime` is the next agent's, on the same state dir
    assert info.identity == identity(attempt=2)
    assert (info.status.id, info.status.state, info.status.pid) == (cid, ContainerState.RUNNING, pid)
    assert info.labels["shoal.io/pod-name"] == "web-1"
    assert (await runtime.stats(cid)).processes == 1
    assert (await runtime.exec(cid, ["true"])).exit_code == 0
    assert await log_text(runtime, cid) == "hello\n"
    stopped = await runtime.stop(cid, grace_period=WAIT)
    # Not our child, so its exit code went to init: reported as Kubernetes does.
    assert (stopped.state, stopped.exit_code, stopped.reason) == (
        ContainerState.EXITED,
        137,
        REASON_STATUS_UNKNOWN,
    )
    assert not alive(pid)


async def test_an_adopted_container_that_exits_is_noticed(
    runtime: ExecRuntime, state_dir: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    cid, _pid = await run_agent_and_kill_it(
        state_dir, tmp_path, ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.01; done"]
    )
    assert (await runtime.status(cid)).state is ContainerState.RUNNING
    go.touch()
    async with asyncio.timeout(WAIT):
        done = await runtime.wait(cid)  # through the pidfd: no polling
    assert (done.exit_code, done.reason) == (137, REASON_STATUS_UNKNOWN)
    assert done.finished_at


async def test_a_container_that_ended_while_no_agent_ran(
    runtime: ExecRuntime, state_dir: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    cid, pid = await run_agent_and_kill_it(
        state_dir, tmp_path, ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.01; done"]
    )
    go.touch()
    await eventually(lambda: not alive(pid), "the orphaned container to end")
    [info] = await runtime.list()
    assert (info.status.state, info.status.exit_code) == (ContainerState.EXITED, 137)
    assert info.status.reason == REASON_STATUS_UNKNOWN and info.status.message
    await runtime.remove(cid)
    assert await runtime.list() == []


async def test_a_runtime_object_dropped_without_stopping(
    runtime: ExecRuntime, state_dir: Path, tmp_path: Path
) -> None:
    first = ExecRuntime(state_dir, base_env=marked_env(tmp_path))
    cid = await first.create(identity(), ContainerSpec(command=("sleep", "60")))
    pid = (await first.start(cid)).pid
    await first.close()
    del first
    [info] = await runtime.list()
    assert (info.status.state, info.status.pid) == (ContainerState.RUNNING, pid)
    stopped = await runtime.stop(cid, grace_period=WAIT)
    # Same process, so still our child: this time the exit code is known.
    assert stopped.exit_code == 128 + signal.SIGTERM


async def test_a_pid_recorded_before_the_agent_died_mid_start(
    runtime: ExecRuntime, state_dir: Path, tmp_path: Path
) -> None:
    cid, pid = await run_agent_and_kill_it(state_dir, tmp_path, ["sleep", "60"])
    # As if the agent had died between spawning and recording the pid.
    record_path = state_dir / "pods" / "0f1e2d3c-uid" / "app" / "2.json"
    record = json.loads(record_path.read_text())
    record["pid"] = record["proc_start"] = None
    record_path.write_text(json.dumps(record))
    [info] = await runtime.list()  # found by the marker in its environment
    assert (info.status.state, info.status.pid) == (ContainerState.RUNNING, pid)
    await runtime.stop(cid, grace_period=WAIT)
    assert not alive(pid)


async def test_a_reused_pid_is_not_mistaken_for_the_container(
    runtime: ExecRuntime, state_dir: Path, tmp_path: Path
) -> None:
    first = ExecRuntime(state_dir, base_env=marked_env(tmp_path))
    cid = await first.create(identity(), ContainerSpec(command=("sleep", "60")))
    await first.start(cid)
    await first.stop(cid, grace_period=WAIT)
    await first.close()
    # Rewrite the record as if the container still ran, under a pid that is now someone else's:
    # this very test process.
    record_path = state_dir / "pods" / "0f1e2d3c-uid" / "app" / "0.json"
    record = json.loads(record_path.read_text())
    record.update(pid=os.getpid(), exit_code=None, reason=None, finished_at=None)
    record_path.write_text(json.dumps(record))
    [info] = await runtime.list()
    assert (info.status.state, info.status.reason) == (ContainerState.EXITED, REASON_STATUS_UNKNOWN)
    assert alive(os.getpid())  # and nobody signalled us


@pytest.mark.parametrize("attempts", [3])
async def test_attempts_are_separate_containers(runtime: ExecRuntime, attempts: int) -> None:
    ids = []
    for attempt in range(attempts):
        cid = await runtime.create(
            identity(attempt=attempt), ContainerSpec(command=("sh", "-c", f"echo {attempt}"))
        )
        await runtime.start(cid)
        async with asyncio.timeout(WAIT):
            await runtime.wait(cid)
        ids.append(cid)
    assert [await log_text(runtime, cid) for cid in ids] == [f"{n}\n" for n in range(attempts)]
    assert sorted(info.identity.attempt for info in await runtime.list()) == list(range(attempts))


async def test_one_runtime_per_state_directory(runtime: ExecRuntime, state_dir: Path, tmp_path: Path) -> None:
    await runtime.list()  # takes the lock
    second = ExecRuntime(state_dir, base_env=marked_env(tmp_path))
    with pytest.raises(ContainerRuntimeError, match="in use by another runtime"):
        await second.list()
    await runtime.close()
    assert await second.list() == []
    await second.close()
