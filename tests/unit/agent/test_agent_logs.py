"""Container logs end to end in one process: the agent's log endpoint on the real exec
runtime, and the API server's Pod ``log`` subresource proxying it (in-memory control plane,
served over HTTP on loopback)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from shoal.api.kinds.node import NODE
from shoal.server.run import listening
from tests.unit.agent.test_agent_harness import FAST, WAIT, Harness, cleanup, harness, running
from tests.unit.agent.test_agent_harness import NODE as NODE_NAME

__all__ = ["harness"]

LOG = "/api/v1/namespaces/default/pods/{}/log"


def talker(go: Path) -> list[str]:
    """Writes one, two, three; then, once ``go`` exists, after (and sleeps on)."""
    code = (
        "import os, sys, time\n"
        "for word in ('one', 'two', 'three'): print(word, flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        "print('after', flush=True)\n"
        "time.sleep(1000)\n"
    )
    return [sys.executable, "-c", code]


async def lines_until(stream: AsyncIterator[str], last: str) -> list[str]:
    seen = []
    async for line in stream:
        seen.append(line)
        if line == last:
            return seen
    return seen


async def agent_port(harness: Harness) -> int:
    node = await harness.client.get(NODE, NODE_NAME)
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    assert isinstance(port, int) and port > 0
    return port


async def test_agent_endpoint_and_log_subresource(harness: Harness, tmp_path: Path) -> None:
    go = tmp_path / "go"
    resources = harness.client.resources
    async with harness.running() as agent, listening(resources) as server:
        await agent.node.registered.wait()
        port = await agent_port(harness)
        assert port == agent.logs.port
        await harness.create_pod("talk", talker(go))
        await harness.wait_pod("talk", running, "running")
        async with httpx.AsyncClient(timeout=httpx.Timeout(WAIT)) as http:
            direct = f"http://127.0.0.1:{port}/containerLogs/default/talk/app"
            # Following: the three lines, then one written after the stream began.
            async with http.stream("GET", server.url + LOG.format("talk"), params={"follow": "true"}) as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/plain")
                lines = resp.aiter_lines()
                assert await lines_until(lines, "three") == ["one", "two", "three"]
                go.touch()
                assert await lines_until(lines, "after") == ["after"]

            # The agent's endpoint itself.
            answer = await http.get(direct)
            assert answer.status_code == 200 and answer.text == "one\ntwo\nthree\nafter\n"
            answer = await http.get(direct, params={"tailLines": "2"})
            assert answer.text == "three\nafter\n"
            answer = await http.get(f"http://127.0.0.1:{port}/containerLogs/default/talk/nope")
            assert answer.status_code == 404 and 'container "nope" of pod "default/talk"' in answer.text

            # Through the API server.
            answer = await http.get(server.url + LOG.format("talk"), params={"tailLines": "1"})
            assert answer.status_code == 200 and answer.text == "after\n"
            answer = await http.get(server.url + LOG.format("talk"), params={"container": "app"})
            assert answer.text == "one\ntwo\nthree\nafter\n"
            answer = await http.get(server.url + LOG.format("talk"), params={"container": "nope"})
            assert answer.status_code == 400
            assert answer.json()["message"] == "container nope is not valid for pod talk"
            answer = await http.get(server.url + LOG.format("talk"), params={"previous": "true"})
            assert answer.status_code == 400 and "not supported yet" in answer.json()["message"]
            answer = await http.get(server.url + LOG.format("talk"), params={"tailLines": "x"})
            assert answer.status_code == 400
            answer = await http.get(server.url + LOG.format("ghost"))
            assert answer.status_code == 404
            answer = await http.put(server.url + LOG.format("talk"), content=b"{}")
            assert answer.status_code == 405
            answer = await http.get(server.url + "/api/v1/namespaces/default/configmaps/x/log")
            assert answer.status_code == 404
        await cleanup(harness, "talk")


async def test_log_subresource_errors(harness: Harness) -> None:
    resources = harness.client.resources
    async with harness.running() as agent, listening(resources) as server:
        await agent.node.registered.wait()
        await harness.create_pod(
            "pair",
            ["sleep", "1000"],
            containers=[
                {"name": "a", "image": "exec", "command": ["sleep", "1000"]},
                {"name": "b", "image": "exec", "command": ["sleep", "1000"]},
            ],
        )
        await harness.create_pod("nowhere", ["sleep", "1000"], nodeName="")
        async with httpx.AsyncClient(timeout=httpx.Timeout(WAIT)) as http:
            answer = await http.get(server.url + LOG.format("pair"))
            assert answer.status_code == 400
            message = answer.json()["message"]
            assert message == "a container name must be specified for pod pair, choose one of: [a b]"
            answer = await http.get(server.url + LOG.format("nowhere"))
            assert answer.status_code == 400
            assert answer.json()["message"].startswith("pod nowhere is not scheduled yet")

        # The agent stops; its Node still names the endpoint: 503, not a client error.
        port = await agent_port(harness)
    async with listening(resources) as server, httpx.AsyncClient(timeout=httpx.Timeout(WAIT)) as http:
        answer = await http.get(server.url + LOG.format("pair"), params={"container": "a"})
        assert answer.status_code == 503
        assert f"cannot reach the agent of node {NODE_NAME} at 127.0.0.1:{port}" in answer.json()["message"]
    async with harness.running():
        await cleanup(harness, "pair", "nowhere")


async def test_unbindable_internal_ip_leaves_the_agent_running_without_endpoint(harness: Harness) -> None:
    config = dataclasses.replace(FAST, internal_ip="10.1.2.3")  # not this machine's address
    async with harness.running(config) as agent, listening(harness.client.resources) as server:
        await agent.node.registered.wait()
        node = await harness.client.get(NODE, NODE_NAME)
        assert "daemonEndpoints" not in node["status"]
        await harness.create_pod("lonely", ["sleep", "1000"])
        await harness.wait_pod("lonely", running, "running")
        async with httpx.AsyncClient(timeout=httpx.Timeout(WAIT)) as http:
            answer = await http.get(server.url + LOG.format("lonely"))
        assert answer.status_code == 503
        assert "does not report the address of its agent's log endpoint" in answer.json()["message"]
        await cleanup(harness, "lonely")
