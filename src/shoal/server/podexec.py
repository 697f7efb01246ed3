"""The Pod ``exec`` subresource (``kubectl exec``, ``shoal exec``): a WebSocket the server
relays, message for message, to the ``/exec`` WebSocket of the pod's node agent
(``shoal.agent.nodeserver``), found as ``pods/log`` finds it (``logs.pod_agent``).

Query: ``command`` (repeated), ``container`` (optional when the pod has one), ``stdin``,
``stdout``, ``stderr``, ``tty``. Subprotocols ``v5.channel.k8s.io`` and ``v4.channel.k8s.io``
(``shoal.api.remotecommand``); the agent speaks the same one, so nothing is translated.

Everything that can be refused is refused before the upgrade, as an HTTP ``Status``: no such
pod (404), no such container, a pod not on a node yet or finished, a container not running,
no command (400); a node that is not registered, reports no agent endpoint or cannot be
reached is a 503. A request without the WebSocket upgrade (kubectl falls back to SPDY when
the WebSocket fails) gets the same checks, then a 400 that says a WebSocket is needed, so
kubectl shows the real reason of a refusal either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, NoReturn
from urllib.parse import urlencode

import orjson
import websockets
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from shoal.api import Object
from shoal.api import remotecommand as rc
from shoal.api.errors import ApiError, BadRequest, InternalError, ServiceUnavailable
from shoal.api.kinds.pod import POD
from shoal.server.logs import AgentTarget, pick_container, pod_agent
from shoal.server.resources import Resources

log = logging.getLogger(__name__)

JSON = "application/json"
CONNECT_TIMEOUT = 5.0
COMPLETED = ("Succeeded", "Failed")
NEEDS_WEBSOCKET = (
    "pods/exec needs a WebSocket upgrade (subprotocol v5.channel.k8s.io or v4.channel.k8s.io); "
    "SPDY is not supported"
)


class _DenialNoise(logging.Filter):
    """uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing
    handshake." at ERROR after every denial response, though the client got it (the
    protocol never marks that handshake done: Kludex/uvicorn PR #3138). Every exec refusal
    is a denial response, so the line would be noise; this drops it."""

    MESSAGE = "ASGI callable returned without completing handshake."

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.MESSAGE


def quiet_denial_noise() -> None:
    """Install ``_DenialNoise`` on uvicorn's error log, once."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialNoise) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_DenialNoise())


def _flag(query: QueryParams, name: str) -> bool:
    return query.get(name, "") in rc.TRUE


def _not_running(pod: Object, container: str) -> str | None:
    """Why the pod's status says ``container`` is not running; None when it runs."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != container:
            continue
        state = status.get("state") or {}
        if "running" in state:
            return None
        if "terminated" in state:
            ended = state["terminated"] or {}
            return f"it terminated ({ended.get('reason') or 'Error'}, exit code {ended.get('exitCode')})"
        return f"it is waiting to start: {(state.get('waiting') or {}).get('reason') or 'ContainerCreating'}"
    return "it is waiting to start: ContainerCreating"


async def agent_url(
    resources: Resources, namespace: str, name: str, query: QueryParams
) -> tuple[AgentTarget, str, str, str]:
    """Check the request against the Pod and its Node; return the agent's exec URL, the
    container and the node's name. Raises the ApiError to answer with."""
    command = query.getlist("command")
    pod = await resources.get(POD, namespace, name)
    container = pick_container(pod, query.get("container", ""))
    if not command:
        raise BadRequest(f"you must specify at least one command for container {container} of pod {name}")
    phase = (pod.get("status") or {}).get("phase")
    if phase in COMPLETED:
        raise BadRequest(f"cannot exec into a container in a completed pod; current phase is {phase}")
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise BadRequest(
            f"pod {name} is not scheduled yet: it has no node, so container {container} is not running"
        )
    why = _not_running(pod, container)
    if why is not None:
        raise BadRequest(f"container {container} in pod {name} is not running: {why}")
    agent = await pod_agent(resources, name, node_name)
    params: list[tuple[str, str]] = [("command", c) for c in command]
    params += [(k, "1" if _flag(query, k) else "0") for k in ("stdin", "stdout", "stderr", "tty")]
    path = f"/exec/{namespace}/{name}/{container}?{urlencode(params)}"
    return agent, path, container, node_name


async def check_plain_request(
    resources: Resources, namespace: str, name: str, query: QueryParams
) -> NoReturn:
    """A request to pods/exec without a WebSocket upgrade: the same refusals, else a 400."""
    await agent_url(resources, namespace, name, query)
    raise BadRequest(NEEDS_WEBSOCKET)


def _status_response(err: ApiError) -> Response:
    return Response(orjson.dumps(err.to_status()), err.code, media_type=JSON)


def _agent_refusal(err: InvalidStatus, name: str, container: str, node_name: str) -> ApiError:
    """The ApiError for an agent that refused the upgrade."""
    code = err.response.status_code
    message = ""
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
        message = str(orjson.loads(err.response.body or b"{}").get("message") or "")
    message = message or (err.response.body or b"").decode(errors="replace").strip()[:200]
    if code == 404:
        return BadRequest(
            f"container {container} in pod {name} is not running on node {node_name}: {message}"
        )
    if code == 400:
        return BadRequest(message)
    return ServiceUnavailable(f"the agent of node {node_name} answered {code}: {message}")


async def pod_exec(resources: Resources, websocket: WebSocket) -> None:
    """Serve one pods/exec WebSocket: check, connect to the agent, then relay."""
    namespace, name = websocket.path_params["namespace"], websocket.path_params["name"]
    try:
        upstream = await _open_upstream(resources, websocket, namespace, name)
    except ApiError as err:
        await websocket.send_denial_response(_status_response(err))
        return
    except Exception:
        log.exception("internal error opening exec into pod %s/%s", namespace, name)
        internal = InternalError("an internal error occurred; see the server log")
        await websocket.send_denial_response(_status_response(internal))
        return
    try:
        await websocket.accept(subprotocol=upstream.subprotocol)
        await _relay(websocket, upstream)
    finally:
        await upstream.close()


async def _open_upstream(
    resources: Resources, websocket: WebSocket, namespace: str, name: str
) -> ClientConnection:
    offered = websocket.scope.get("subprotocols") or []
    protocol = rc.choose_protocol(offered)
    agent, path, container, node_name = await agent_url(resources, namespace, name, websocket.query_params)
    if protocol is None:
        wanted, given = ", ".join(rc.PROTOCOLS), ", ".join(offered) or "none"
        raise BadRequest(f"exec needs one of the subprotocols {wanted}; offered: {given}")
    try:
        return await connect(
            agent.url(path, websocket=True),
            ssl=agent.tls,
            server_hostname=agent.node if agent.tls is not None else None,
            subprotocols=[websockets.Subprotocol(protocol)],
            open_timeout=CONNECT_TIMEOUT,
            max_size=None,
            compression=None,
        )
    except InvalidStatus as err:
        raise _agent_refusal(err, name, container, node_name) from None
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
        raise ServiceUnavailable(
            f"cannot reach the agent of node {node_name} to exec in container {container}"
            f" of pod {name}: {err}"
        ) from None


async def _relay(websocket: WebSocket, upstream: ClientConnection) -> None:
    """Client -> agent and agent -> client until either side closes. If the agent goes away
    before its Status, the client gets a Failure Status instead of a silent success."""
    status_seen = False

    async def to_agent() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data: Any = message.get("bytes")
            if data is None:
                data = (message.get("text") or "").encode()
            await upstream.send(data)

    async def to_client() -> None:
        nonlocal status_seen
        async for message in upstream:
            data = message if isinstance(message, bytes) else message.encode()
            status_seen = status_seen or data[:1] == bytes([rc.ERROR])
            await websocket.send_bytes(data)

    tasks = [asyncio.create_task(to_agent()), asyncio.create_task(to_client())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        agent_ended = tasks[1] in done
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(
            result, ConnectionClosed | WebSocketDisconnect | OSError
        ):
            log.error("exec relay failed", exc_info=result)
    if not agent_ended:
        return  # the client went away: closing upstream (by the caller) ends the command
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        if not status_seen:
            reason = upstream.close_reason or f"code {upstream.close_code}"
            failure = rc.failure_status(
                f"the agent closed the exec stream before the command ended ({reason})"
            )
            await websocket.send_bytes(rc.encode_status(failure))
        await websocket.close()
