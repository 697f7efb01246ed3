"""The Pod ``log`` subresource: the server finds the pod's node and proxies the stream of the
node agent's ``/containerLogs`` endpoint (``shoal.agent.nodeserver``), as the API server
proxies the kubelet's.

Query: ``container`` (optional when the pod has one), ``follow``, ``tailLines``;
``previous`` is refused for now, ``timestamps`` and the byte/time limits are ignored. A pod
that is not on a node, or whose container has not started, is the client's error (400, in
the kubelet's words); an agent that cannot be reached is a 503.

The agent's endpoint is HTTPS with its node certificate and admits only the manager's client
certificate (``AgentTarget``; plain HTTP only where the server has no cluster CA, in tests).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from shoal.api import Object
from shoal.api.errors import BadRequest, NotFound, ServiceUnavailable
from shoal.api.kinds.node import NODE
from shoal.api.kinds.pod import POD
from shoal.security.join import agent_client_context
from shoal.server.resources import Resources

TEXT = "text/plain; charset=utf-8"
TRUE = ("1", "true", "True")
CONNECT_TIMEOUT = 5.0


def pick_container(pod: Object, requested: str) -> str:
    name = pod["metadata"]["name"]
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if requested:
        if requested not in names:
            raise BadRequest(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return str(names[0])
    raise BadRequest(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")


def _waiting_reason(pod: Object, container: str) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            waiting: dict[str, Any] = (status.get("state") or {}).get("waiting") or {}
            return str(waiting.get("reason") or "ContainerCreating")
    return "ContainerCreating"


def agent_endpoint(node: Object) -> str:
    """``host:port`` of the node agent's log endpoint, from the Node's status."""
    status = node.get("status") or {}
    name = node["metadata"]["name"]
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("Hostname")
    if not port or not host:
        raise ServiceUnavailable(f"node {name} does not report the address of its agent's log endpoint")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class AgentTarget:
    """Where and how to reach a node's agent: ``base`` is ``https://IP:PORT`` (``http://``
    without a cluster CA), ``tls`` the manager's client context, and the agent's certificate
    is checked for ``node`` (its DNS name), whatever address it is reached on."""

    node: str
    base: str
    tls: ssl.SSLContext | None

    @property
    def address(self) -> str:
        return self.base.split("://", 1)[1]

    def url(self, path: str, *, websocket: bool = False) -> str:
        base = self.base.replace("http", "ws", 1) if websocket else self.base
        return f"{base}{path}"

    @property
    def extensions(self) -> dict[str, Any]:
        return {"sni_hostname": self.node} if self.tls is not None else {}


def agent_target(resources: Resources, node: Object) -> AgentTarget:
    tls = agent_client_context(resources)
    scheme = "https" if tls is not None else "http"
    return AgentTarget(node["metadata"]["name"], f"{scheme}://{agent_endpoint(node)}", tls)


async def pod_agent(resources: Resources, pod: str, node_name: str) -> AgentTarget:
    """The agent on ``node_name``, where pod ``pod`` runs; 503 when the node is not
    registered or reports no endpoint."""
    try:
        node = await resources.get(NODE, None, node_name)
    except NotFound:
        raise ServiceUnavailable(f"node {node_name} of pod {pod} is not registered") from None
    return agent_target(resources, node)


def _tail_lines(text: str) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"tailLines must be an integer, not {text!r}") from None
    if value < 0:
        raise BadRequest("tailLines must be greater than or equal to 0")
    return value


async def pod_log(resources: Resources, request: Request, namespace: str, name: str) -> Response:
    query = request.query_params
    if query.get("previous", "") in TRUE:
        raise BadRequest("logs of the previous attempt (previous=true) are not supported yet")
    tail = _tail_lines(query.get("tailLines", ""))
    follow = query.get("follow", "") in TRUE
    pod = await resources.get(POD, namespace, name)
    container = pick_container(pod, query.get("container", ""))
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise BadRequest(f"pod {name} is not scheduled yet: it has no node, and so no logs")
    agent = await pod_agent(resources, name, node_name)
    params = {"follow": "true" if follow else "false"}
    if tail is not None:
        params["tailLines"] = str(tail)
    url = agent.url(f"/containerLogs/{namespace}/{name}/{container}")
    http = httpx.AsyncClient(timeout=httpx.Timeout(CONNECT_TIMEOUT, read=None), verify=agent.tls or True)
    try:
        outgoing = http.build_request("GET", url, params=params, extensions=agent.extensions)
        upstream = await http.send(outgoing, stream=True)
    except httpx.HTTPError as err:
        await http.aclose()
        raise ServiceUnavailable(
            f"cannot reach the agent of node {node_name} at {agent.address} for the logs of pod {name}: {err}"
        ) from None
    if upstream.status_code != 200:
        text = (await upstream.aread()).decode(errors="replace").strip()[:200]
        code = upstream.status_code
        await upstream.aclose()
        await http.aclose()
        if code == 404:
            reason = _waiting_reason(pod, container)
            raise BadRequest(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        if code == 400:
            raise BadRequest(text)
        raise ServiceUnavailable(f"the agent of node {node_name} answered {code}: {text}")

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            return  # the agent went away mid-stream: the log ends here
        finally:
            await upstream.aclose()
            await http.aclose()

    return StreamingResponse(body(), media_type=TEXT)
