"""The agent's /exec WebSocket on the real exec runtime: the channel protocol, stdin and its
close message, resize, the exit Status, and the refusals before the upgrade."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from shoal.agent.nodeserver import NodeServer
from shoal.agent.runtimes import ContainerSpec, ExecRuntime
from shoal.api import remotecommand as rc
from tests.unit.agent.conftest import identity

WAIT = 10.0


@pytest.fixture
async def endpoint(runtime: ExecRuntime) -> AsyncIterator[str]:
    server = NodeServer(runtime)
    task = asyncio.create_task(server.run())
    await server.listening.wait()
    try:
        yield f"ws://127.0.0.1:{server.port}/exec/default/web-1"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def run_app(runtime: ExecRuntime) -> str:
    cid = await runtime.create(identity("app"), ContainerSpec(command=("sleep", "60")))
    await runtime.start(cid)
    return cid


def exec_url(endpoint: str, command: list[str], **flags: str) -> str:
    return f"{endpoint}/app?{urlencode([('command', c) for c in command] + list(flags.items()))}"


async def session(url: str, protocol: str = rc.V5) -> ClientConnection:
    return await connect(url, subprotocols=[websockets.Subprotocol(protocol)], open_timeout=WAIT)


async def collect(client: ClientConnection) -> tuple[dict[int, bytes], dict[str, Any]]:
    """Output by channel, and the Status, until the agent closes."""
    out: dict[int, bytes] = {rc.STDOUT: b"", rc.STDERR: b""}
    status: dict[str, Any] = {}
    async with asyncio.timeout(WAIT):
        async for message in client:
            assert isinstance(message, bytes)
            if message[0] == rc.ERROR:
                status = orjson.loads(message[1:])
            else:
                out[message[0]] += message[1:]
    return out, status


async def test_a_command_with_stdin_and_an_exit_code(runtime: ExecRuntime, endpoint: str) -> None:
    cid = await run_app(runtime)
    url = exec_url(endpoint, ["sh", "-c", "cat; echo bye >&2; exit 3"], stdin="1", stdout="1", stderr="1")
    async with await session(url) as client:
        assert client.subprotocol == rc.V5
        await client.send(b"\x00hello\n")
        await client.send(bytes([rc.CLOSE, rc.STDIN]))
        out, status = await collect(client)
    assert out == {rc.STDOUT: b"hello\n", rc.STDERR: b"bye\n"}
    assert rc.exit_code_of(status) == 3 and status["reason"] == "NonZeroExitCode"
    await runtime.stop(cid, grace_period=WAIT)


async def test_success_tty_and_v4(runtime: ExecRuntime, endpoint: str) -> None:
    cid = await run_app(runtime)
    url = exec_url(endpoint, ["sh", "-c", "stty size; echo err >&2"], stdin="1", stdout="1", tty="1")
    async with await session(url, rc.V4) as client:
        await client.send(rc.resize_message(80, 24))
        await client.send(rc.resize_message(90, 25))
        out, status = await collect(client)
    assert status == {"metadata": {}, "status": "Success"}
    assert b"err\r\n" in out[rc.STDOUT] and out[rc.STDERR] == b""  # a terminal merges the two
    await runtime.stop(cid, grace_period=WAIT)


async def test_a_missing_command_says_so_like_a_shell(runtime: ExecRuntime, endpoint: str) -> None:
    cid = await run_app(runtime)
    async with await session(f"{endpoint}/app?command=no-such-command-x&stdout=1&stderr=1") as client:
        out, status = await collect(client)
    assert out[rc.STDERR] == b'exec: "no-such-command-x": executable file not found in $PATH\n'
    assert rc.exit_code_of(status) == 127
    await runtime.stop(cid, grace_period=WAIT)


async def refused(url: str) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as caught:
        await session(url)
    response = caught.value.response
    return response.status_code, orjson.loads(response.body or b"{}")["message"]


async def test_refusals(runtime: ExecRuntime, endpoint: str) -> None:
    assert await refused(f"{endpoint}/app?command=true") == (
        404,
        'container "app" of pod "default/web-1" is not on this node',
    )
    cid = await run_app(runtime)
    assert await refused(f"{endpoint}/app?stdout=1") == (400, "you must specify at least one command")
    await runtime.stop(cid, grace_period=WAIT)
    assert await refused(f"{endpoint}/app?command=true") == (
        400,
        'container "app" of pod "default/web-1" is not running',
    )
