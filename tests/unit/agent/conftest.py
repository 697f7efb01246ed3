"""Fixtures for runtime tests: a runtime on a fresh state directory whose every process carries
a marker in its environment, so that the test can prove it left no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shoal.agent.runtimes import ContainerIdentity, ContainerSpec, ExecRuntime

MARKER = "SHOAL_TEST_ROOT"


def marked_processes(root: Path) -> list[int]:
    """Live processes whose environment carries this test's marker."""
    needle = f"{MARKER}={root}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state not in (b"Z", b"X"):
            pids.append(int(entry))
    return pids


async def eventually(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (checked every 10 ms); fail after ``within`` seconds.

    For facts no event announces, such as a process outside the runtime's view ending."""
    try:
        async with asyncio.timeout(within):
            while not predicate():  # noqa: ASYNC110 - polling /proc, there is no event to await
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out after {within}s waiting for {what}")


def marked_env(root: Path) -> dict[str, str]:
    """The base environment of the test's containers: PATH and the marker."""
    return {"PATH": os.environ["PATH"], MARKER: str(root)}


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
async def runtime(tmp_path: Path, state_dir: Path) -> AsyncIterator[ExecRuntime]:
    """An exec runtime; afterwards, any process it left running fails the test (and is killed)."""
    rt = ExecRuntime(state_dir, base_env=marked_env(tmp_path))
    yield rt
    await rt.close()
    leftovers = marked_processes(tmp_path)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes left running: {leftovers}"


def identity(container: str = "app", attempt: int = 0, uid: str = "0f1e2d3c-uid") -> ContainerIdentity:
    return ContainerIdentity("default", "web-1", uid, container, attempt)


def python(code: str, **kwargs: object) -> ContainerSpec:
    """A container running ``code`` with this venv's python."""
    return ContainerSpec(command=(sys.executable, "-c", code), **kwargs)  # type: ignore[arg-type]


async def log_text(rt: ExecRuntime, cid: str, **kwargs: object) -> str:
    return b"".join([line async for line in rt.logs(cid, **kwargs)]).decode()  # type: ignore[arg-type]
