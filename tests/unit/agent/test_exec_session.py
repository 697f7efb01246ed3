"""ExecRuntime.exec_session: a user's command in a running container, with real processes:
stdout and stderr apart, stdin, exit codes, a tty, refusals, and nothing left behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shoal.agent.runtimes import ContainerSpec, ExecRuntime, ExecSession, InvalidState, StartFailed
from shoal.agent.runtimes._session import start_session
from tests.unit.agent.conftest import identity

WAIT = 10.0


async def running(rt: ExecRuntime, spec: ContainerSpec | None = None) -> str:
    cid = await rt.create(identity(), spec or ContainerSpec(command=("sleep", "60")))
    await rt.start(cid)
    return cid


async def drain(session: ExecSession) -> dict[int, bytes]:
    """Everything the command writes, by channel, until its output ends."""
    out: dict[int, bytes] = {1: b"", 2: b""}
    async with asyncio.timeout(WAIT):
        while (item := await session.read()) is not None:
            out[item[0]] += item[1]
    return out


async def test_output_streams_and_exit_code(runtime: ExecRuntime, tmp_path: Path) -> None:
    cid = await running(
        runtime, ContainerSpec(command=("sleep", "60"), env=(("FOO", "bar"),), working_dir=str(tmp_path))
    )
    script = "echo $FOO; pwd; echo oops >&2; env | grep -c SHOAL_CONTAINER_ID; exit 3"
    async with runtime.exec_session(cid, ["sh", "-c", script]) as session:
        out = await drain(session)
        assert await session.exit_code() == 3
    assert out == {1: f"bar\n{tmp_path}\n0\n".encode(), 2: b"oops\n"}
    await runtime.stop(cid, grace_period=WAIT)


async def test_stdin_is_piped_and_closed(runtime: ExecRuntime) -> None:
    cid = await running(runtime)
    async with runtime.exec_session(cid, ["sh", "-c", "cat; echo done >&2"], stdin=True) as session:
        await session.write(b"hello ")
        await session.write(b"world\n")
        await session.close_stdin()
        out = await drain(session)
        assert await session.exit_code() == 0
    assert out == {1: b"hello world\n", 2: b"done\n"}
    # Without stdin the command reads EOF at once.
    async with runtime.exec_session(cid, ["cat"]) as session:
        assert await drain(session) == {1: b"", 2: b""}
        assert await session.exit_code() == 0
    await runtime.stop(cid, grace_period=WAIT)


async def test_leaving_the_context_kills_the_command(runtime: ExecRuntime) -> None:
    cid = await running(runtime)
    async with runtime.exec_session(cid, ["sh", "-c", "sleep 60 & sleep 60; echo never"]) as session:
        pass
    assert await session.exit_code() == 128 + 9  # SIGKILL, the group with it
    await runtime.stop(cid, grace_period=WAIT)
    # The runtime fixture fails the test if either sleep was left behind.


async def test_a_tty_merges_output_and_sizes_the_terminal(runtime: ExecRuntime) -> None:
    cid = await running(runtime)
    script = "test -t 0 && echo tty; read size; stty size; echo err >&2; exit 2"
    async with runtime.exec_session(cid, ["sh", "-c", script], stdin=True, tty=True) as session:
        await session.resize(100, 30)
        await session.write(b"go\n")
        out = await drain(session)
        assert await session.exit_code() == 2
    assert out[2] == b""
    text = out[1].replace(b"\r\n", b"\n")
    assert b"tty\n" in text and b"30 100\n" in text and b"err\n" in text, text
    await runtime.stop(cid, grace_period=WAIT)


async def test_refusals(runtime: ExecRuntime) -> None:
    cid = await running(runtime)
    with pytest.raises(StartFailed, match="executable file not found"):
        async with runtime.exec_session(cid, ["no-such-command-x"]):
            pass
    await runtime.stop(cid, grace_period=WAIT)
    with pytest.raises(InvalidState, match="not running"):
        async with runtime.exec_session(cid, ["true"]):
            pass


def test_a_tty_keeps_the_last_output_under_uvloop(tmp_path: Path) -> None:
    """The agent runs on uvloop when it is installed: the terminal's last words must arrive."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[bytes, int]:
        session = await start_session(
            ["sh", "-c", "echo last; exit 4"], "/bin/sh", str(tmp_path), {"PATH": "/usr/bin:/bin"}, tty=True
        )
        try:
            out = b""
            while (item := await session.read()) is not None:
                out += item[1]
            return out, await session.exit_code()
        finally:
            await session.close()

    assert uvloop.run(main()) == (b"last\r\n", 4)
