"""The agent's own HTTP endpoint, the kubelet's ``/containerLogs`` and ``/exec``: the manager
proxies a Pod's ``log`` subresource (``kubectl logs``, ``shoal logs``) and ``exec`` subresource
(``kubectl exec``, ``shoal exec``) here.

``GET /containerLogs/{namespace}/{pod}/{container}?tailLines=N&follow=true`` streams the
output of the container's latest attempt as text/plain; an unknown container is a 404 that
says which. The port is reported in the Node's ``status.daemonEndpoints.kubeletEndpoint``.

``/exec/{namespace}/{pod}/{container}?command=..&command=..&stdin=1&stdout=1&stderr=1&tty=0``
is a WebSocket speaking Kubernetes' remote command protocol (``shoal.api.remotecommand``):
the command runs through ``Runtime.exec_session`` in the latest attempt. A refusal before the
upgrade is an HTTP ``Status`` (404: no such container here; 400: not running, no command);
a command that cannot start ends, after the upgrade, with its message on stderr and exit
code 127 (not found) or 126, as a shell reports it.

``GET /stats/summary`` answers the last round of ``stats.StatsCollector`` (the kubelet's
Summary API, the parts metrics need); the manager's ``metrics.k8s.io`` API reads it.

Unauthenticated plain HTTP for now, on the node's InternalIP: authentication (the manager's
client certificate, as the kubelet checks) comes with the security work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from shoal.agent.runtimes import (
    ContainerNotFound,
    ContainerRuntimeError,
    ExecSession,
    InvalidState,
    Runtime,
    StartFailed,
)
from shoal.agent.stats import StatsCollector
from shoal.api import remotecommand as rc
from shoal.api.errors import Forbidden
from shoal.security.identity import MASTERS_GROUP
from shoal.security.join import NodeCredentials
from shoal.security.pki import CertificateError, load_certificate, verify_client_certificate
from shoal.security.tls import client_certificate, server_context
from shoal.server.guard import deny

log = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"


async def latest_container(runtime: Runtime, namespace: str, pod: str, container: str) -> str | None:
    """The id of the latest attempt of ``container`` in the pod ``namespace/pod``, if any."""
    best: tuple[int, str] | None = None
    for info in await runtime.list():
        identity = info.identity
        if (identity.namespace, identity.pod_name, identity.container_name) != (namespace, pod, container):
            continue
        if best is None or identity.attempt > best[0]:
            best = (identity.attempt, info.status.id)
    return best[1] if best else None


def create_node_app(runtime: Runtime, stats: StatsCollector | None = None, node_name: str = "") -> Starlette:
    from shoal.server.podexec import quiet_denial_noise

    quiet_denial_noise()  # exec refusals are denial responses

    async def container_logs(request: Request) -> Response:
        params = request.path_params
        namespace, pod, container = params["namespace"], params["pod"], params["container"]
        query = request.query_params
        tail_text = query.get("tailLines", "")
        tail: int | None = None
        if tail_text:
            if not tail_text.isdigit():
                message = f"tailLines must be a non-negative integer, not {tail_text!r}\n"
                return PlainTextResponse(message, 400)
            tail = int(tail_text)
        follow = query.get("follow", "") in ("1", "true", "True")
        cid = await latest_container(runtime, namespace, pod, container)
        if cid is None:
            return PlainTextResponse(
                f'container "{container}" of pod "{namespace}/{pod}" is not on this node\n', 404
            )
        try:
            await runtime.status(cid)
        except ContainerNotFound:
            return PlainTextResponse(f'container "{container}" of pod "{namespace}/{pod}" was removed\n', 404)

        async def body() -> AsyncIterator[bytes]:
            lines = runtime.logs(cid, tail=tail, follow=follow)
            try:
                async for line in lines:
                    yield line
            except ContainerNotFound:
                return  # removed meanwhile: the stream just ends
            finally:
                close = getattr(lines, "aclose", None)
                if close is not None:
                    await close()

        return StreamingResponse(body(), media_type=TEXT)

    async def container_exec(websocket: WebSocket) -> None:
        await exec_in_container(runtime, websocket)

    async def stats_summary(request: Request) -> Response:
        if stats is None:
            return PlainTextResponse("this agent collects no stats\n", 404)
        return Response(orjson.dumps(stats.summary(node_name)), media_type="application/json")

    routes = [
        Route("/containerLogs/{namespace}/{pod}/{container}", container_logs, methods=["GET"]),
        WebSocketRoute("/exec/{namespace}/{pod}/{container}", container_exec),
        Route("/stats/summary", stats_summary, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


async def refuse(websocket: WebSocket, code: int, reason: str, message: str) -> None:
    """Answer the upgrade request with an HTTP error carrying a Status."""
    body = orjson.dumps(status(code, reason, message))
    await websocket.send_denial_response(Response(body, code, media_type="application/json"))


async def exec_in_container(runtime: Runtime, websocket: WebSocket) -> None:
    params = websocket.path_params
    namespace, pod, container = params["namespace"], params["pod"], params["container"]
    query = websocket.query_params
    command = query.getlist("command")
    stdin, stdout, stderr, tty = (query.get(k, "") in rc.TRUE for k in ("stdin", "stdout", "stderr", "tty"))
    protocol = rc.choose_protocol(websocket.scope.get("subprotocols") or [])
    what = f'container "{container}" of pod "{namespace}/{pod}"'
    if protocol is None:
        offered = ", ".join(websocket.scope.get("subprotocols") or []) or "none"
        message = f"exec needs one of the subprotocols {', '.join(rc.PROTOCOLS)}; offered: {offered}"
        return await refuse(websocket, 400, "BadRequest", message)
    if not command:
        return await refuse(websocket, 400, "BadRequest", "you must specify at least one command")
    cid = await latest_container(runtime, namespace, pod, container)
    if cid is None:
        return await refuse(websocket, 404, "NotFound", f"{what} is not on this node")
    try:
        async with runtime.exec_session(cid, command, stdin=stdin, tty=tty) as session:
            await websocket.accept(subprotocol=protocol)
            await relay(websocket, session, command, stdout=stdout, stderr=stderr)
    except ContainerNotFound:
        await refuse(websocket, 404, "NotFound", f"{what} was removed")
    except InvalidState:
        await refuse(websocket, 400, "BadRequest", f"{what} is not running")
    except StartFailed as err:
        await websocket.accept(subprotocol=protocol)
        code = 127 if "not found" in err.message or "no such file" in err.message else 126
        channel = rc.STDOUT if tty else rc.STDERR
        await websocket.send_bytes(bytes([channel]) + f"{err.message}\n".encode())
        await websocket.send_bytes(rc.encode_status(rc.exit_status(code, command)))
        await websocket.close()
    except ContainerRuntimeError as err:  # the runtime failed (an engine error): not the client's doing
        log.warning("exec in %s failed: %s", what, err)
        if websocket.application_state is WebSocketState.CONNECTING:
            await refuse(websocket, 500, "InternalError", f"exec in {what} failed: {err}")
        else:
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
                failure = rc.failure_status(f"exec in {what} failed: {err}")
                await websocket.send_bytes(rc.encode_status(failure))
                await websocket.close()
    except WebSocketDisconnect:
        pass  # the client went away: the session's end killed the command


class _ClientGone(Exception):
    pass


async def relay(
    websocket: WebSocket,
    session: ExecSession,
    command: Sequence[str],
    *,
    stdout: bool,
    stderr: bool,
) -> None:
    """Client messages to the command, its output to the client, then its exit Status."""

    async def inbound() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise _ClientGone()
            data: bytes = message.get("bytes") or b""
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == rc.STDIN:
                await session.write(payload)
            elif channel == rc.RESIZE:
                size = rc.parse_resize(payload)
                if size is not None:
                    await session.resize(*size)
            elif channel == rc.CLOSE and payload[:1] == bytes([rc.STDIN]):
                await session.close_stdin()

    async def outbound() -> None:
        while (item := await session.read()) is not None:
            channel, data = item
            if (channel == rc.STDOUT and stdout) or (channel == rc.STDERR and stderr):
                await websocket.send_bytes(bytes([channel]) + data)
        code = await session.exit_code()
        await websocket.send_bytes(rc.encode_status(rc.exit_status(code, command)))
        await websocket.close()

    try:
        async with asyncio.TaskGroup() as tasks:
            reader = tasks.create_task(inbound())
            await outbound()
            reader.cancel()
    except* (_ClientGone, WebSocketDisconnect):
        pass  # the client went away: leaving the session kills the command


class ManagersOnly:
    """Lets through only clients whose certificate (the TLS layer required one of the cluster
    CA) is in group ``system:masters``: the manager, or an administrator. A node's own
    certificate may not read another's logs or exec in its containers."""

    def __init__(self, app: Any, ca: Any) -> None:
        self.app = app
        self.ca = ca

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            pem = client_certificate(scope)
            try:
                identity = verify_client_certificate(self.ca, pem or "")
                allowed = MASTERS_GROUP in identity.groups
                why = f"user {identity.name!r} is not in group {MASTERS_GROUP}"
            except CertificateError as err:
                allowed, why = False, str(err)
            if not allowed:
                log.warning("agent endpoint refused %s: %s", scope.get("path"), why)
                await deny(
                    scope, send, Forbidden(f"the agent endpoint admits only managers: {why}").to_status()
                )
                return
        await self.app(scope, receive, send)


class NodeServer:
    """Serves ``create_node_app(runtime)`` on ``host:port`` (0: any free port) while ``run()``
    runs; ``port`` is known once ``listening`` is set (0 when ``host`` cannot be bound, as an
    InternalIP that is not this machine's: the agent then runs without the endpoint)."""

    def __init__(
        self,
        runtime: Runtime,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        stats: StatsCollector | None = None,
        node_name: str = "",
        credentials: NodeCredentials | None = None,
    ) -> None:
        self.runtime = runtime
        self.stats = stats
        self.node_name = node_name
        self.credentials = credentials
        self.host = host
        self.requested_port = port
        self.port = 0
        self.listening = asyncio.Event()

    async def run(self) -> None:
        from shoal.server.run import ConfigError, bind, serving

        try:
            listener = bind(self.host, self.requested_port)
        except ConfigError as err:
            # Logs out of reach must not stop the node's pods: the Node reports no endpoint,
            # and the manager answers the log subresource with a 503 that says so.
            log.warning("no log and exec endpoint on this node: %s", err)
            self.listening.set()
            return
        self.port = listener.getsockname()[1]
        app: Any = create_node_app(self.runtime, self.stats, self.node_name)
        tls = None
        if self.credentials is not None:
            # HTTPS with the node certificate, and only the manager's certificate gets in.
            node = self.credentials
            tls = server_context(node.cert_path, node.key_path, node.ca_path, require_client=True)
            app = ManagersOnly(app, load_certificate(node.ca_path.read_bytes()))
        async with serving(app, listener, tls=tls) as server:
            self.listening.set()
            log.info("agent endpoint (logs, exec) on %s:%d", self.host, self.port)
            await server.stopped()
