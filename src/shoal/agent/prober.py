"""The prober: liveness, readiness and startup probes (exec, httpGet, tcpSocket) with the
kubelet's semantics (``pkg/kubelet/prober``).

One task per (container attempt, probe kind), started the first time pod sync ``track``s a
running attempt and cancelled when it ``forget``s it (exited or removed); the tasks live in
the task group of ``run()``, which pod sync runs in its own. A task:

- waits ``initialDelaySeconds`` from the container's start, and, unless it is the startup
  probe, until the startup probe has passed (a container without one has started at once);
- probes at once, then every ``periodSeconds``, each try bounded by ``timeoutSeconds``;
- turns results into a verdict with the thresholds: ``failureThreshold`` failures in a row
  make it a failure, ``successThreshold`` successes in a row a success (the verdict holds
  meanwhile). Initial verdicts: readiness failed, liveness passed, startup unknown;
- on a verdict change, enqueues the pod's key (pod sync then writes ``ready`` and the
  Ready/ContainersReady conditions, or stops the container on a liveness or startup failure:
  "Liveness probe failed: ...", and the restart policy decides what follows);
- stops after a startup success (that attempt has started) and after a liveness or startup
  failure (on hold: the next attempt gets new tasks), and when the container no longer runs.

A probe that cannot run (a named port the container does not declare, a gRPC probe) has no
result, as in the kubelet: the verdict stays where it is (a warning is logged once).

Actions: ``exec`` runs the command in the container (``runtime.exec``), exit code 0 passes;
``httpGet`` asks ``scheme://host:port/path`` (host: the probe's, else the pod's IP, 127.0.0.1 in
host networking) without following redirects or checking certificates, 200-399 passes;
``tcpSocket`` passes when a connection opens. Named ports resolve through the container's
``ports``.

An adopted container (the agent restarted while it ran) keeps the readiness the pod status
shows for that very container id, so a restart of the agent does not flap Ready; its probes
carry on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from shoal.agent.config import KUBELET_VERSION
from shoal.agent.runtimes import (
    ContainerNotFound,
    ContainerState,
    ContainerStatus,
    InvalidState,
    Runtime,
    StartFailed,
)
from shoal.api import Object
from shoal.client.informer import object_key

log = logging.getLogger(__name__)

LIVENESS = "liveness"
READINESS = "readiness"
STARTUP = "startup"
_FIELDS = {STARTUP: "startupProbe", LIVENESS: "livenessProbe", READINESS: "readinessProbe"}
_TITLES = {STARTUP: "Startup", LIVENESS: "Liveness", READINESS: "Readiness"}
USER_AGENT = "kube-probe/" + ".".join(KUBELET_VERSION.removeprefix("v").split(".")[:2])
CLOSE_TIMEOUT = 1.0  # seconds to let a tcpSocket probe's connection close


class ProbeError(Exception):
    """The probe could not be run at all: no result (the verdict stays as it is)."""


@dataclass(slots=True)
class _Worker:
    kind: str
    probe: Mapping[str, Any]
    verdict: bool | None  # None: unknown (a startup probe that has not decided yet)
    message: str = ""  # "Liveness probe failed: ..." while the verdict is a failure
    last: bool | None = None  # the latest result, and how many in a row gave it
    run: int = 0
    warned: bool = False
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Tracked:
    """One running container attempt and its probes."""

    key: str  # the pod's, for the work queue
    container: Mapping[str, Any]  # its spec
    started_at: float  # wall-clock seconds
    host: str  # where httpGet and tcpSocket probes without a host connect: the pod's IP
    started: asyncio.Event = field(default_factory=asyncio.Event)  # the startup probe passed
    workers: dict[str, _Worker] = field(default_factory=dict)


def _spec(pod: Object, container: str) -> Mapping[str, Any]:
    for c in (pod.get("spec") or {}).get("containers") or ():
        if c.get("name") == container:
            return dict(c)
    return {}


def _epoch(rfc3339: str | None) -> float:
    if not rfc3339:
        return time.time()
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def resolve_port(container: Mapping[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports.

    Raises:
        ProbeError: no port of that name, or a number out of range.
    """
    number: int | None
    if isinstance(port, int):
        number = port
    elif port.isdigit():
        number = int(port)
    else:
        number = next(
            (int(p["containerPort"]) for p in container.get("ports") or () if p.get("name") == port), None
        )
        if number is None:
            raise ProbeError(f"couldn't find port {port!r} in the container's ports")
    if not 0 < number < 65536:
        raise ProbeError(f"invalid port number: {number}")
    return number


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Prober:
    """Args:
    runtime: runs exec probes (``runtime.exec``) and says whether a container still runs.
    notify: called with the pod's key when a verdict changes (pod sync's ``queue.add``).
    default_host: where httpGet and tcpSocket probes without a ``host`` connect (the pod IP).
    on_failure: called with the pod's key, the container's name and "Liveness probe failed:
        ..." on every failed result (pod sync records an Unhealthy Event); must not block.
    """

    def __init__(
        self,
        runtime: Runtime,
        notify: Callable[[str], None],
        *,
        default_host: str = "127.0.0.1",
        on_failure: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.notify = notify
        self.on_failure = on_failure
        self.default_host = default_host
        self._containers: dict[str, _Tracked] = {}  # by container id
        self._tasks: asyncio.TaskGroup | None = None
        self._http: httpx.AsyncClient | None = None

    async def run(self) -> None:
        """Own the probe tasks until cancelled; they are cancelled with it."""
        async with (
            httpx.AsyncClient(
                verify=False,  # as the kubelet: a probed server's certificate is not checked
                trust_env=False,  # never through a proxy
                follow_redirects=False,  # a 3xx passes
                limits=httpx.Limits(max_keepalive_connections=0),
            ) as http,
            asyncio.TaskGroup() as tasks,
        ):
            self._http, self._tasks = http, tasks
            try:
                await asyncio.Future()  # until cancelled
            finally:
                self._tasks = None
                for cid in list(self._containers):
                    self.forget(cid)
        self._http = None

    def probing(self) -> list[str]:
        """Ids of the containers whose probe tasks still run."""
        return [
            cid
            for cid, tracked in self._containers.items()
            if any(w.task is not None and not w.task.done() for w in tracked.workers.values())
        ]

    # --- the Probes seam ---

    def track(
        self, pod: Object, container: Mapping[str, Any], status: ContainerStatus, *, host: str | None = None
    ) -> None:
        cid = status.id
        if cid in self._containers or status.state is not ContainerState.RUNNING:
            return
        kinds = [kind for kind, name in _FIELDS.items() if container.get(name)]
        if not kinds or self._tasks is None:
            return  # nothing to probe; or not running (yet): the next sync tracks it
        tracked = _Tracked(
            object_key(pod), dict(container), _epoch(status.started_at), host or self.default_host
        )
        was_ready = self._was_ready(pod, str(container["name"]), cid)
        if STARTUP not in kinds or was_ready:
            tracked.started.set()
        self._containers[cid] = tracked
        for kind in kinds:
            initial = {LIVENESS: True, READINESS: was_ready, STARTUP: True if was_ready else None}[kind]
            worker = tracked.workers[kind] = _Worker(kind, container[_FIELDS[kind]], initial)
            if kind == STARTUP and was_ready:
                continue  # it passed before the agent restarted
            loop = self._loop(cid, tracked, worker)
            try:
                worker.task = self._tasks.create_task(loop, name=f"{kind} probe of {cid}")
            except RuntimeError:  # the prober is stopping
                loop.close()

    def forget(self, container_id: str) -> None:
        tracked = self._containers.pop(container_id, None)
        if tracked is not None:
            for worker in tracked.workers.values():
                if worker.task is not None:
                    worker.task.cancel()

    def ready(self, pod: Object, container: str, container_id: str) -> bool:
        if not self.started(pod, container, container_id):
            return False
        if not _spec(pod, container).get("readinessProbe"):
            return True
        tracked = self._containers.get(container_id)
        worker = tracked.workers.get(READINESS) if tracked is not None else None
        return worker is not None and worker.verdict is True

    def started(self, pod: Object, container: str, container_id: str) -> bool:
        if not _spec(pod, container).get("startupProbe"):
            return True
        tracked = self._containers.get(container_id)
        return tracked is not None and tracked.started.is_set()

    def liveness_failure(self, pod: Object, container: str, container_id: str) -> str | None:
        tracked = self._containers.get(container_id)
        if tracked is None:
            return None
        for kind in (STARTUP, LIVENESS):
            worker = tracked.workers.get(kind)
            if worker is not None and worker.verdict is False:
                return worker.message
        return None

    # --- the probe tasks ---

    def _was_ready(self, pod: Object, container: str, cid: str) -> bool:
        """Whether the pod's status already shows this very attempt ready (adoption)."""
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            if status.get("name") == container:
                return bool(
                    status.get("ready") and status.get("containerID") == f"{self.runtime.name}://{cid}"
                )
        return False

    async def _loop(self, cid: str, tracked: _Tracked, worker: _Worker) -> None:
        probe = worker.probe
        period = float(probe.get("periodSeconds") or 10)
        delay = float(probe.get("initialDelaySeconds") or 0) - (time.time() - tracked.started_at)
        if delay > 0:
            await asyncio.sleep(delay)
        if worker.kind != STARTUP:
            await tracked.started.wait()
        while True:
            began = time.monotonic()
            if not await self._running(cid):
                self._drop(cid, tracked)
                return
            result = await self._probe(cid, tracked, worker)
            if result is not None and self._record(tracked, worker, *result):
                return  # started, or on hold until the next attempt
            await asyncio.sleep(max(0.0, began + period - time.monotonic()))

    async def _running(self, cid: str) -> bool:
        try:
            return (await self.runtime.status(cid)).state is ContainerState.RUNNING
        except ContainerNotFound:
            return False

    def _drop(self, cid: str, tracked: _Tracked) -> None:
        """The container no longer runs: forget it (from one of its own tasks)."""
        if self._containers.get(cid) is tracked:
            del self._containers[cid]
        current = asyncio.current_task()
        for worker in tracked.workers.values():
            if worker.task is not None and worker.task is not current:
                worker.task.cancel()

    def _record(self, tracked: _Tracked, worker: _Worker, ok: bool, detail: str) -> bool:
        """Count one result; True when the task is done with this attempt."""
        if ok == worker.last:
            worker.run += 1
        else:
            worker.last, worker.run = ok, 1
        title = _TITLES[worker.kind]
        if not ok:
            log.debug(
                "%s probe of %s (pod %s) failed: %s", title, tracked.container["name"], tracked.key, detail
            )
            if self.on_failure is not None:
                try:
                    self.on_failure(
                        tracked.key, str(tracked.container["name"]), f"{title} probe failed: {detail}"
                    )
                except Exception:  # a report never stops the probe
                    log.exception("reporting a %s probe failure", title)
        threshold = worker.probe.get("successThreshold" if ok else "failureThreshold") or (1 if ok else 3)
        if worker.run < int(threshold):
            return False
        if worker.verdict != ok:
            worker.verdict = ok
            worker.message = "" if ok else f"{title} probe failed: {detail}"
            log.info(
                "%s probe of container %s (pod %s) %s",
                title,
                tracked.container["name"],
                tracked.key,
                "passes" if ok else f"fails: {detail}",
            )
            if worker.kind == STARTUP and ok:
                tracked.started.set()
            self.notify(tracked.key)
        if worker.kind == STARTUP:
            return True  # passed (the container has started) or failed (it will be stopped)
        return worker.kind == LIVENESS and not ok

    async def _probe(self, cid: str, tracked: _Tracked, worker: _Worker) -> tuple[bool, str] | None:
        """One try: (passed, what went wrong), or None when there is no result."""
        probe = worker.probe
        timeout = float(probe.get("timeoutSeconds") or 1)
        try:
            if (action := probe.get("exec")) is not None:
                return await self._exec(cid, list(action.get("command") or ()), timeout)
            if (action := probe.get("httpGet")) is not None:
                return await self._http_get(tracked, action, timeout)
            if (action := probe.get("tcpSocket")) is not None:
                return await self._tcp(tracked, action, timeout)
            raise ProbeError("the shoal agent runs exec, httpGet and tcpSocket probes only")
        except ProbeError as err:
            if not worker.warned:
                worker.warned = True
                log.warning(
                    "%s probe of container %s (pod %s) cannot run: %s",
                    _TITLES[worker.kind],
                    tracked.container["name"],
                    tracked.key,
                    err,
                )
        except (ContainerNotFound, InvalidState):
            pass  # stopped meanwhile: the next round sees it
        except Exception:
            log.exception("%s probe of %s (pod %s)", worker.kind, tracked.container["name"], tracked.key)
        return None

    async def _exec(self, cid: str, command: list[str], limit: float) -> tuple[bool, str]:
        if not command:
            raise ProbeError("exec probe without a command")
        try:
            async with asyncio.timeout(limit):
                result = await self.runtime.exec(cid, command)
        except TimeoutError:
            return False, f"command {shlex.join(command)!r} timed out"
        except StartFailed as err:
            return False, err.message
        output = result.output.decode(errors="replace").strip()
        if result.exit_code == 0:
            return True, output
        return False, output or f"command {shlex.join(command)!r} exited with {result.exit_code}"

    async def _http_get(self, tracked: _Tracked, action: Mapping[str, Any], limit: float) -> tuple[bool, str]:
        if self._http is None:
            raise ProbeError("the prober is not running")
        port = resolve_port(tracked.container, action["port"])
        host = action.get("host") or tracked.host
        path = action.get("path") or "/"
        url = f"{str(action.get('scheme') or 'HTTP').lower()}://{_host_port(host, port)}/{path.lstrip('/')}"
        headers = httpx.Headers({"User-Agent": USER_AGENT, "Accept": "*/*"})
        for header in action.get("httpHeaders") or ():
            headers[header["name"]] = header["value"]
        try:
            async with (
                asyncio.timeout(limit),
                self._http.stream("GET", url, headers=headers, timeout=limit) as response,
            ):
                code = response.status_code  # the body is not read
        except TimeoutError:
            return False, f'Get "{url}": timed out after {limit:g}s'
        except (httpx.HTTPError, OSError) as err:
            return False, f'Get "{url}": {err or type(err).__name__}'
        if 200 <= code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {code}"

    async def _tcp(self, tracked: _Tracked, action: Mapping[str, Any], limit: float) -> tuple[bool, str]:
        port = resolve_port(tracked.container, action["port"])
        host = action.get("host") or tracked.host
        address = _host_port(host, port)
        try:
            async with asyncio.timeout(limit):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            return False, f"dial tcp {address}: i/o timeout"
        except OSError as err:
            return False, f"dial tcp {address}: {os.strerror(err.errno) if err.errno else err}"
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await writer.wait_closed()
        return True, ""
