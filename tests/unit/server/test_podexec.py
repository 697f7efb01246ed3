"""pods/exec on a real API server (memory store, uvicorn on a free port) with a fake agent: the
refusals before the upgrade, and the relay (subprotocol, messages both ways, the Status)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from shoal.api import remotecommand as rc
from shoal.api.kinds.node import NODE
from shoal.api.kinds.pod import POD
from shoal.server.resources import Resources
from shoal.server.run import Listening, listening
from shoal.store.memory import MemoryStore

Agent = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def resources() -> Resources:
    found = Resources(MemoryStore())
    await found.bootstrap()
    return found


@pytest.fixture
async def api(resources: Resources) -> AsyncIterator[Listening]:
    async with listening(resources) as server:
        yield server


async def make_pod(resources: Resources, *, node: str | None = "n1", running: bool = True) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": "none", "command": ["sleep", "60"]}]},
    }
    await resources.create(POD, "default", body)
    if node is None:
        return
    await resources.bind(POD, "default", "p", {"target": {"kind": "Node", "name": node}})
    pod = copy.deepcopy(await resources.get(POD, "default", "p"))
    state = (
        {"running": {"startedAt": "2026-01-01T00:00:00Z"}} if running else {"waiting": {"reason": "BackOff"}}
    )
    pod["status"]["phase"] = "Running" if running else "Pending"
    pod["status"]["containerStatuses"] = [
        {"name": "main", "state": state, "ready": running, "restartCount": 0, "image": "none", "imageID": ""}
    ]
    await resources.update(POD, "default", "p", pod, subresource="status")


async def make_node(resources: Resources, port: int | None) -> None:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    await resources.create(NODE, None, body)
    node = copy.deepcopy(await resources.get(NODE, None, "n1"))
    node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}
    if port is not None:
        node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    await resources.update(NODE, None, "n1", node, subresource="status")


def exec_url(api: Listening, query: str = "command=sh&command=-c&command=echo+hi&stdout=1") -> str:
    return f"ws{api.url.removeprefix('http')}/api/v1/namespaces/default/pods/p/exec?{query}"


async def refusal(url: str, protocols: tuple[str, ...] = (rc.V5,)) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as caught:
        await connect(url, subprotocols=[websockets.Subprotocol(p) for p in protocols])
    response = caught.value.response
    return response.status_code, orjson.loads(response.body or b"{}")


async def test_refusals_before_the_upgrade(api: Listening, resources: Resources) -> None:
    assert await refusal(exec_url(api)) == (
        404,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'pods "p" not found',
            "reason": "NotFound",
            "code": 404,
            "details": {"name": "p", "kind": "pods"},
        },
    )
    await make_pod(resources, node=None)
    code, status = await refusal(exec_url(api))
    assert (code, status["message"]) == (
        400,
        "pod p is not scheduled yet: it has no node, so container main is not running",
    )
    code, status = await refusal(exec_url(api, "command=true&container=nope"))
    assert (code, status["message"]) == (400, "container nope is not valid for pod p")
    code, status = await refusal(exec_url(api, "stdout=1"))
    assert (code, status["message"]) == (
        400,
        "you must specify at least one command for container main of pod p",
    )


async def test_a_container_that_does_not_run(api: Listening, resources: Resources) -> None:
    await make_pod(resources, running=False)
    code, status = await refusal(exec_url(api))
    assert (code, status["message"]) == (
        400,
        "container main in pod p is not running: it is waiting to start: BackOff",
    )


async def test_an_agent_out_of_reach_is_a_503(api: Listening, resources: Resources) -> None:
    await make_pod(resources)
    code, status = await refusal(exec_url(api))
    assert (code, status["message"]) == (503, "node n1 of pod p is not registered")
    await make_node(resources, port=None)
    code, status = await refusal(exec_url(api))
    assert (code, status["message"]) == (
        503,
        "node n1 does not report the address of its agent's log endpoint",
    )


async def test_an_unreachable_agent_is_a_503(api: Listening, resources: Resources) -> None:
    await make_pod(resources)
    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0) as agent:
        port = agent.sockets[0].getsockname()[1]
    await make_node(resources, port)  # the agent has stopped: nothing listens there any more
    code, status = await refusal(exec_url(api))
    assert code == 503
    assert status["message"].startswith(
        "cannot reach the agent of node n1 to exec in container main of pod p"
    )


async def test_no_known_subprotocol(api: Listening, resources: Resources) -> None:
    await make_pod(resources)
    await make_node(resources, 1)
    code, status = await refusal(exec_url(api), protocols=("channel.k8s.io",))
    assert (code, status["message"]) == (
        400,
        "exec needs one of the subprotocols v5.channel.k8s.io, v4.channel.k8s.io; offered: channel.k8s.io",
    )


async def test_the_relay_carries_both_ways(api: Listening, resources: Resources) -> None:
    seen: dict[str, Any] = {}

    async def agent(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen["path"], seen["protocol"] = ws.request.path, ws.subprotocol
        await ws.send(b"\x01ready")
        seen["stdin"] = await ws.recv()
        seen["close"] = await ws.recv()
        await ws.send(b"\x02done")
        await ws.send(rc.encode_status(rc.exit_status(3, ["cat"])))

    await make_pod(resources)
    async with serve(agent, "127.0.0.1", 0, subprotocols=[websockets.Subprotocol(rc.V4)]) as server:
        await make_node(resources, server.sockets[0].getsockname()[1])
        query = "command=cat&stdin=true&stdout=true&stderr=true"
        received = []
        async with connect(exec_url(api, query), subprotocols=[websockets.Subprotocol(rc.V4)]) as client:
            assert client.subprotocol == rc.V4
            received.append(await client.recv())
            await client.send(b"\x00hello")
            await client.send(bytes([rc.CLOSE, rc.STDIN]))
            async for message in client:
                received.append(message)
    assert seen == {
        "path": "/exec/default/p/main?command=cat&stdin=1&stdout=1&stderr=1&tty=0",
        "protocol": rc.V4,
        "stdin": b"\x00hello",
        "close": b"\xff\x00",
    }
    assert received[:2] == [b"\x01ready", b"\x02done"]
    assert rc.exit_code_of(orjson.loads(received[2][1:])) == 3


async def test_an_agent_refusal_is_the_clients_error(api: Listening, resources: Resources) -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        body = orjson.dumps({"kind": "Status", "message": "not on this node"})
        return Response(404, "Not Found", Headers({"Content-Type": "application/json"}), body)

    await make_pod(resources)
    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, process_request=refuse) as server:
        await make_node(resources, server.sockets[0].getsockname()[1])
        code, status = await refusal(exec_url(api))
    assert (code, status["message"]) == (
        400,
        "container main in pod p is not running on node n1: not on this node",
    )


async def test_an_agent_that_vanishes_ends_in_a_failure_status(api: Listening, resources: Resources) -> None:
    async def agent(ws: ServerConnection) -> None:
        await ws.send(b"\x01partial")
        assert ws.transport is not None
        ws.transport.abort()  # no Status, no close frame

    await make_pod(resources)
    async with serve(agent, "127.0.0.1", 0, subprotocols=[websockets.Subprotocol(rc.V5)]) as server:
        await make_node(resources, server.sockets[0].getsockname()[1])
        async with connect(exec_url(api), subprotocols=[websockets.Subprotocol(rc.V5)]) as client:
            received = [message async for message in client]
    assert received[0] == b"\x01partial"
    status = orjson.loads(received[1][1:])
    assert status["status"] == "Failure" and rc.exit_code_of(status) is None
    assert status["message"].startswith("the agent closed the exec stream before the command ended")
