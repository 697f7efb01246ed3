"""How the exec runtime learns that a process ended: a container killed from outside, the
polling fallback for kernels without pidfd, and the package's public surface."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

import shoal.agent.runtimes as runtimes
from shoal.agent.runtimes import REASON_ERROR, ContainerSpec, ExecRuntime, _proc
from tests.unit.agent.conftest import identity, marked_env

WAIT = 10.0


def test_the_public_names_are_exactly_the_exported_ones() -> None:
    public = {name for name in vars(runtimes) if not name.startswith("_")} - {"exec", "docker"}
    assert set(runtimes.__all__) == public


async def test_a_container_killed_from_outside(runtime: ExecRuntime) -> None:
    cid = await runtime.create(identity(), ContainerSpec(command=("sleep", "60")))
    pid = (await runtime.start(cid)).pid
    assert pid
    os.kill(pid, signal.SIGKILL)  # the OOM killer, or an operator: not the runtime
    async with asyncio.timeout(WAIT):
        done = await runtime.wait(cid)
    assert (done.exit_code, done.reason) == (128 + signal.SIGKILL, REASON_ERROR)


@pytest.fixture
def no_pidfd(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on Linux before 5.3: exits are found by polling."""

    def missing(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", missing)
    monkeypatch.setattr(_proc, "_POLL_INTERVAL", 0.02)


@pytest.mark.usefixtures("no_pidfd")
async def test_without_pidfd_a_childs_exit_code_is_still_known(runtime: ExecRuntime) -> None:
    cid = await runtime.create(identity(), ContainerSpec(command=("sh", "-c", "exit 7")))
    await runtime.start(cid)
    async with asyncio.timeout(WAIT):
        done = await runtime.wait(cid)
    assert (done.exit_code, done.reason) == (7, REASON_ERROR)


@pytest.mark.usefixtures("no_pidfd")
async def test_without_pidfd_an_adopted_container_is_watched(
    runtime: ExecRuntime, state_dir: Path, tmp_path: Path
) -> None:
    first = ExecRuntime(state_dir, base_env=marked_env(tmp_path))
    cid = await first.create(identity(), ContainerSpec(command=("sleep", "60")))
    pid = (await first.start(cid)).pid
    await first.close()
    assert (await runtime.status(cid)).pid == pid
    stopped = await runtime.stop(cid, grace_period=WAIT)
    # Still a child of this (test) process, so the polling fallback reaps it and knows the code;
    # in a restarted agent it would be ContainerStatusUnknown.
    assert (stopped.exit_code, stopped.reason) == (128 + signal.SIGTERM, REASON_ERROR)
