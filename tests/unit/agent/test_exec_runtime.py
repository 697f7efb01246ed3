"""The exec runtime with real processes: lifecycle, exit codes and reasons, start errors,
graceful and forced stop, logs, exec and stats."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from shoal.agent.runtimes import (
    REASON_COMPLETED,
    REASON_ERROR,
    REASON_START_ERROR,
    ContainerExists,
    ContainerNotFound,
    ContainerSpec,
    ContainerState,
    ExecRuntime,
    InvalidState,
    Runtime,
    StartFailed,
    _proc,
)
from tests.unit.agent.conftest import eventually, identity, log_text, python

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
WAIT = 10.0  # bound on every wait for a process; the tests never need nearly as long


async def run(rt: ExecRuntime, spec: ContainerSpec, container: str = "app") -> str:
    cid = await rt.create(identity(container), spec)
    await rt.start(cid)
    return cid


async def wait_for_line(rt: ExecRuntime, cid: str, wanted: str) -> None:
    """Follow the container's log until ``wanted`` appears (the process says it is ready)."""
    async with asyncio.timeout(WAIT):
        async for line in rt.logs(cid, follow=True):
            if line.decode().strip() == wanted:
                return
    pytest.fail(f"{cid} ended without printing {wanted!r}")


def test_exec_runtime_satisfies_the_protocol(tmp_path: Path) -> None:
    assert isinstance(ExecRuntime(tmp_path), Runtime)


async def test_a_command_runs_to_completion(runtime: ExecRuntime) -> None:
    cid = await runtime.create(
        identity(), ContainerSpec(command=("sh", "-c"), args=("echo out; echo err >&2",))
    )
    created = await runtime.status(cid)
    assert created.state is ContainerState.CREATED
    assert created.as_k8s_state() == {"waiting": {"reason": "ContainerCreating"}}
    running = await runtime.start(cid)
    assert running.state is ContainerState.RUNNING and running.pid
    async with asyncio.timeout(WAIT):
        done = await runtime.wait(cid)
    assert (done.state, done.exit_code, done.reason) == (ContainerState.EXITED, 0, REASON_COMPLETED)
    assert done.started_at and RFC3339.match(done.started_at)
    assert done.finished_at and RFC3339.match(done.finished_at)
    assert done.as_k8s_state()["terminated"]["reason"] == REASON_COMPLETED
    assert await log_text(runtime, cid) == "out\nerr\n"


async def test_a_failing_command_is_an_error_with_its_exit_code(runtime: ExecRuntime) -> None:
    cid = await run(runtime, ContainerSpec(command=("sh", "-c", "exit 3")))
    async with asyncio.timeout(WAIT):
        done = await runtime.wait(cid)
    assert (done.exit_code, done.reason) == (3, REASON_ERROR)


async def test_args_alone_are_the_command(runtime: ExecRuntime) -> None:
    cid = await run(runtime, ContainerSpec(args=("echo", "from", "args")))
    async with asyncio.timeout(WAIT):
        await runtime.wait(cid)
    assert await log_text(runtime, cid) == "from args\n"


async def test_env_working_dir_and_hostname(runtime: ExecRuntime, tmp_path: Path) -> None:
    code = "import os; print(os.environ['GREETING'], os.environ['HOSTNAME'], os.getcwd())"
    cid = await run(runtime, python(code, env=(("GREETING", "hi"),), working_dir=str(tmp_path)))
    async with asyncio.timeout(WAIT):
        await runtime.wait(cid)
    assert await log_text(runtime, cid) == f"hi web-1 {tmp_path}\n"


async def test_the_default_working_dir_is_the_pods_own(runtime: ExecRuntime, state_dir: Path) -> None:
    cid = await run(runtime, ContainerSpec(command=("pwd",)))
    async with asyncio.timeout(WAIT):
        await runtime.wait(cid)
    assert await log_text(runtime, cid) == f"{state_dir / 'pods' / identity().pod_uid / 'workdir'}\n"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            ContainerSpec(command=("no-such-command-x",)),
            'exec: "no-such-command-x": executable file not found in $PATH',
        ),
        (
            ContainerSpec(command=("./missing",)),
            'exec: "./missing": stat ./missing: no such file or directory',
        ),
        (
            ContainerSpec(command=("sleep",), working_dir="/no/such/dir"),
            'chdir to cwd ("/no/such/dir") failed',
        ),
        (ContainerSpec(), "no command specified"),
    ],
)
async def test_what_cannot_start_says_why(runtime: ExecRuntime, spec: ContainerSpec, message: str) -> None:
    cid = await runtime.create(identity(), spec)
    with pytest.raises(StartFailed) as failure:
        await runtime.start(cid)
    assert failure.value.reason == REASON_START_ERROR
    assert failure.value.message.startswith(message)
    status = await runtime.status(cid)  # the status tells the same story, and stays
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 128, REASON_START_ERROR)
    assert status.message == failure.value.message
    terminated = status.as_k8s_state()["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, REASON_START_ERROR)
    with pytest.raises(InvalidState):
        await runtime.start(cid)


async def test_a_file_that_is_not_executable_is_refused(runtime: ExecRuntime, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    cid = await runtime.create(identity(), ContainerSpec(command=(str(script),)))
    with pytest.raises(StartFailed, match="permission denied"):
        await runtime.start(cid)
    junk = tmp_path / "junk"  # executable, but no #! line and no binary format: ENOEXEC
    junk.write_bytes(b"\x00\x01\x02")
    junk.chmod(0o755)
    cid = await runtime.create(identity("other"), ContainerSpec(command=(str(junk),)))
    with pytest.raises(StartFailed, match="exec format error"):
        await runtime.start(cid)


async def test_stop_is_graceful_when_the_process_obeys(runtime: ExecRuntime) -> None:
    cid = await run(runtime, ContainerSpec(command=("sleep", "60")))
    began = time.monotonic()
    stopped = await runtime.stop(cid, grace_period=WAIT)
    assert time.monotonic() - began < WAIT / 2
    assert (stopped.exit_code, stopped.reason) == (128 + signal.SIGTERM, REASON_ERROR)


async def test_stop_kills_after_the_grace_period(runtime: ExecRuntime) -> None:
    code = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)"
    )
    cid = await run(runtime, python(code))
    await wait_for_line(runtime, cid, "ready")
    began = time.monotonic()
    stopped = await runtime.stop(cid, grace_period=0.3)
    assert time.monotonic() - began >= 0.3
    assert stopped.exit_code == 128 + signal.SIGKILL


async def test_stop_reaches_every_process_of_the_container(runtime: ExecRuntime) -> None:
    cid = await run(runtime, ContainerSpec(command=("sh", "-c", "sleep 60 & sleep 60 & echo ready; wait")))
    await wait_for_line(runtime, cid, "ready")
    pid = (await runtime.status(cid)).pid
    assert pid and len(_proc.group_members(pid)) == 3
    await runtime.stop(cid, grace_period=WAIT)
    await eventually(lambda: not _proc.group_members(pid), "the background sleeps to end")


async def test_processes_die_with_the_containers_main_process(runtime: ExecRuntime) -> None:
    cid = await run(runtime, ContainerSpec(command=("sh", "-c", "sleep 60 & echo started")))
    async with asyncio.timeout(WAIT):
        done = await runtime.wait(cid)
    assert done.exit_code == 0 and done.pid
    await eventually(lambda: not _proc.group_members(done.pid or 0), "the background sleep to end")


async def test_logs_tail(runtime: ExecRuntime) -> None:
    cid = await run(runtime, python("for i in range(1, 11): print(i)\nprint('last', end='')"))
    async with asyncio.timeout(WAIT):
        await runtime.wait(cid)
    assert await log_text(runtime, cid, tail=3) == "9\n10\nlast"
    assert await log_text(runtime, cid, tail=0) == ""
    assert await log_text(runtime, cid, tail=100) == "".join(f"{i}\n" for i in range(1, 11)) + "last"


async def test_logs_follow_until_the_container_exits(runtime: ExecRuntime, tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = (
        "import os, time\nprint('one', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        "print('two'); print('three')"
    )
    cid = await run(runtime, python(code))
    seen = []
    async with asyncio.timeout(WAIT):
        async for line in runtime.logs(cid, follow=True):
            seen.append(line)
            if line == b"one\n":
                go.touch()  # only now may the process go on: the follower saw the first line live
    assert seen == [b"one\n", b"two\n", b"three\n"]


async def test_logs_follow_with_tail_of_a_running_container(runtime: ExecRuntime) -> None:
    cid = await run(
        runtime,
        python("import time\nfor i in range(5): print(i)\nprint('ready', flush=True)\ntime.sleep(60)"),
    )
    await wait_for_line(runtime, cid, "ready")
    lines = []
    async with asyncio.timeout(WAIT):
        async for line in runtime.logs(cid, tail=2, follow=True):
            lines.append(line)
            if len(lines) == 2:
                await runtime.stop(cid, grace_period=WAIT)  # the follow ends with the container
    assert lines == [b"4\n", b"ready\n"]


async def test_exec_runs_in_the_containers_context(runtime: ExecRuntime, tmp_path: Path) -> None:
    spec = ContainerSpec(command=("sleep", "60"), env=(("FOO", "bar"),), working_dir=str(tmp_path))
    cid = await run(runtime, spec)
    result = await runtime.exec(cid, ["sh", "-c", "echo $FOO; pwd; echo oops >&2; exit 4"])
    assert (result.exit_code, result.output, result.truncated) == (
        4,
        f"bar\n{tmp_path}\noops\n".encode(),
        False,
    )
    # A probe is not the container: it does not carry the marker adoption looks for.
    env = await runtime.exec(cid, ["env"])
    assert b"FOO=bar\n" in env.output and b"SHOAL_CONTAINER_ID" not in env.output
    big = await runtime.exec(cid, [sys.executable, "-c", "print('x' * 100000)"], max_output=10)
    assert (big.exit_code, big.output, big.truncated) == (0, b"x" * 10, True)
    with pytest.raises(StartFailed, match="executable file not found"):
        await runtime.exec(cid, ["no-such-probe-x"])
    await runtime.stop(cid, grace_period=WAIT)
    with pytest.raises(InvalidState):
        await runtime.exec(cid, ["true"])


async def test_a_timed_out_exec_is_killed(runtime: ExecRuntime) -> None:
    cid = await run(runtime, ContainerSpec(command=("sleep", "60")))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await runtime.exec(cid, ["sh", "-c", "sleep 60 & sleep 60"])
    await runtime.stop(cid, grace_period=WAIT)
    # The runtime fixture fails the test if the probe's sleeps were left behind.


async def test_stats_read_cpu_and_memory(runtime: ExecRuntime) -> None:
    code = (
        "import time\nblob = b'x' * (64 * 2**20)\nt = time.process_time()\n"
        "while time.process_time() - t < 0.2: pass\nprint('ready', flush=True)\ntime.sleep(60)"
    )
    cid = await run(runtime, python(code))
    await wait_for_line(runtime, cid, "ready")
    stats = await runtime.stats(cid)
    assert stats.cpu_seconds >= 0.2
    assert stats.memory_rss_bytes >= 64 * 2**20
    assert stats.processes == 1
    await runtime.stop(cid, grace_period=WAIT)
    with pytest.raises(InvalidState):
        await runtime.stats(cid)


async def test_ids_states_and_removal(runtime: ExecRuntime, state_dir: Path) -> None:
    cid = await runtime.create(identity(), ContainerSpec(command=("sleep", "60")))
    assert cid == "0f1e2d3c-uid.app.0"
    with pytest.raises(ContainerExists):
        await runtime.create(identity(), ContainerSpec(command=("sleep", "60")))
    await runtime.start(cid)
    with pytest.raises(InvalidState):
        await runtime.start(cid)
    with pytest.raises(InvalidState):
        await runtime.remove(cid)
    [info] = await runtime.list()
    assert (info.identity, info.status.state) == (identity(), ContainerState.RUNNING)
    await runtime.stop(cid, grace_period=WAIT)
    await runtime.remove(cid)
    assert await runtime.list() == []
    for missing in (cid, "../../etc/passwd", "nonsense"):
        with pytest.raises(ContainerNotFound):
            await runtime.status(missing)
    await runtime.remove_sandbox(identity().pod_uid)
    assert not (state_dir / "pods" / identity().pod_uid).exists()


def test_spec_from_a_container_object() -> None:
    spec = ContainerSpec.from_container(
        {
            "name": "app",
            "image": "busybox",
            "command": ["sh"],
            "args": ["-c", "true"],
            "env": [{"name": "A", "value": "1"}],
            "workingDir": "/tmp",
        }
    )
    assert spec == ContainerSpec(("sh",), ("-c", "true"), (("A", "1"),), "/tmp", "busybox")
    with pytest.raises(ValueError, match="valueFrom"):
        ContainerSpec.from_container(
            {"name": "app", "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}
        )
