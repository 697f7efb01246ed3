"""The agent's own HTTP endpoint, the kubelet's ``/containerLogs``: the manager proxies a Pod's
``log`` subresource here (``kubectl logs``, ``shoal logs``).

``GET /containerLogs/{namespace}/{pod}/{container}?tailLines=N&follow=true`` streams the
output of the container's latest attempt as text/plain; an unknown container is a 404 that
says which. The port is reported in the Node's ``status.daemonEndpoints.kubeletEndpoint``.

Unauthenticated plain HTTP for now, on the node's InternalIP: authentication (the manager's
client certificate, as the kubelet checks) comes with the security work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from shoal.agent.runtimes import ContainerNotFound, Runtime

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


def create_log_app(runtime: Runtime) -> Starlette:
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

    routes = [Route("/containerLogs/{namespace}/{pod}/{container}", container_logs, methods=["GET"])]
    return Starlette(routes=routes)


class LogServer:
    """Serves ``create_log_app(runtime)`` on ``host:port`` (0: any free port) while ``run()``
    runs; ``port`` is known once ``listening`` is set (0 when ``host`` cannot be bound, as an
    InternalIP that is not this machine's: the agent then runs without the endpoint)."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 0) -> None:
        self.runtime = runtime
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
            log.warning("no log endpoint on this node: %s", err)
            self.listening.set()
            return
        self.port = listener.getsockname()[1]
        async with serving(create_log_app(self.runtime), listener) as server:
            self.listening.set()
            log.info("agent log endpoint on %s:%d", self.host, self.port)
            await server.stopped()
