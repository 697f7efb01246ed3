"""The ``docker`` runtime: containers through the Docker Engine API (aiodocker).

Every pod gets a *sandbox* container (the one-file ``pause`` image, ``_pause``) that owns the
pod's network namespace and its published ports; the pod's containers join it
(``NetworkMode: container:<sandbox>``), so they share one IP and talk over localhost, and a
container's restart keeps the pod's address. Names are deterministic, as dockershim's were:
``shoal_<container>_<pod>_<namespace>_<uid>_<attempt>`` and ``shoal_POD_<pod>_<namespace>_<uid>``,
so a create after a crash finds what an earlier agent made (409 → ``ContainerExists``).

Labels (``ContainerIdentity.labels`` and ``shoal.io/sandbox``) carry the identity, and the
engine keeps them: a new agent's ``list()`` adopts the containers the last one left, and
nothing lives only in the agent's memory.

Against Podman's Docker-compatible socket the same calls apply; see the README for what was
checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.stream import Stream

from shoal.agent.runtimes import _pause
from shoal.agent.runtimes._interface import (
    EXIT_CODE_START_ERROR,
    LABEL_CONTAINER_NAME,
    LABEL_NAMESPACE,
    LABEL_POD_NAME,
    LABEL_POD_UID,
    REASON_COMPLETED,
    REASON_ERR_IMAGE_NEVER_PULL,
    REASON_ERR_IMAGE_PULL,
    REASON_ERROR,
    REASON_OOM_KILLED,
    REASON_START_ERROR,
    ContainerExists,
    ContainerIdentity,
    ContainerInfo,
    ContainerNotFound,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    ExecSession,
    ImageError,
    InvalidState,
    Sandbox,
    SandboxSpec,
    StartFailed,
)

log = logging.getLogger(__name__)

LABEL_SANDBOX = "shoal.io/sandbox"
NEVER = "0001-01-01T00:00:00Z"  # the engine's zero time: never started, or never finished
DEFAULT_NETWORK = "bridge"


@dataclass(slots=True)
class _KnownSandbox:
    sandbox: Sandbox
    host_network: bool


def _docker_time(value: str | None) -> str | None:
    """The engine's RFC 3339 time with nanoseconds, cut to seconds as Pod statuses carry."""
    if not value or value.startswith("0001-01-01"):
        return None
    return value[:19] + "Z"


def _epoch(rfc3339: str | None) -> float | None:
    """Epoch seconds of the engine's RFC 3339 time (nanoseconds cut to microseconds)."""
    if not rfc3339 or rfc3339.startswith("0001-01-01"):
        return None
    seconds, _, fraction = rfc3339.rstrip("Z").partition(".")
    try:
        stamp = datetime.fromisoformat(f"{seconds}.{(fraction or '0')[:6]}+00:00")
    except ValueError:
        return None
    return stamp.timestamp()


def _status_of(inspect: dict[str, Any]) -> ContainerStatus:
    """A ContainerStatus from ``GET /containers/{id}/json``."""
    state = inspect["State"]
    cid = inspect["Id"]
    created = _docker_time(inspect.get("Created")) or NEVER
    started, finished = _docker_time(state.get("StartedAt")), _docker_time(state.get("FinishedAt"))
    status = state.get("Status")
    error = state.get("Error") or None
    image = inspect.get("Image") or None
    if status in ("running", "paused", "restarting"):
        return ContainerStatus(cid, ContainerState.RUNNING, created, started_at=started, image_id=image)
    if status == "created" and not error:
        return ContainerStatus(cid, ContainerState.CREATED, created, image_id=image)
    if error and started is None:
        # start() failed: runc could not exec the command (missing, not executable, bad cwd)
        return ContainerStatus(
            cid,
            ContainerState.EXITED,
            created,
            finished_at=finished or created,
            exit_code=EXIT_CODE_START_ERROR,
            reason=REASON_START_ERROR,
            message=error,
            image_id=image,
        )
    code = int(state.get("ExitCode") or 0)
    reason = REASON_COMPLETED if code == 0 else REASON_ERROR
    if state.get("OOMKilled"):
        reason = REASON_OOM_KILLED
    return ContainerStatus(
        cid,
        ContainerState.EXITED,
        created,
        started_at=started,
        finished_at=finished,
        exit_code=code,
        reason=reason,
        message=error,
        image_id=image,
    )


def container_name(identity: ContainerIdentity) -> str:
    return (
        f"shoal_{identity.container_name}_{identity.pod_name}_{identity.namespace}"
        f"_{identity.pod_uid}_{identity.attempt}"
    )


def sandbox_name(namespace: str, pod_name: str, pod_uid: str) -> str:
    return f"shoal_POD_{pod_name}_{namespace}_{pod_uid}"


def _has_tag(image: str) -> bool:
    return "@" in image or ":" in image.rsplit("/", 1)[-1]


class _DockerExec:
    """An ExecSession over the engine's hijacked exec stream."""

    def __init__(self, docker: aiodocker.Docker, exec_id: str, stream: Stream, tty: bool) -> None:
        self._docker = docker
        self._exec_id = exec_id
        self._stream = stream
        self._tty = tty

    async def write(self, data: bytes) -> None:
        await self._stream.write_in(data)

    async def close_stdin(self) -> None:
        # Half-close: the command reads EOF while its output keeps coming. aiodocker's own
        # close() would end the whole connection, so the transport is reached directly.
        response = self._stream._resp
        transport = response.connection.transport if response and response.connection else None
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    async def read(self) -> tuple[int, bytes] | None:
        message = await self._stream.read_out()
        if message is None:
            return None
        return (1 if self._tty else message.stream, message.data)

    async def resize(self, width: int, height: int) -> None:
        if self._tty:
            await self._docker.containers.exec(self._exec_id).resize(h=height, w=width)

    async def exit_code(self) -> int:
        while True:
            info = await self._docker.containers.exec(self._exec_id).inspect()
            if not info.get("Running"):
                return int(info.get("ExitCode") or 0)
            await asyncio.sleep(0.05)  # the stream has ended; the engine records the code after


class DockerRuntime:
    """Args:
    docker_host: the engine's address (``unix:///var/run/docker.sock``, ``tcp://...``);
        None: ``$DOCKER_HOST``, then the usual socket paths.
    network: the engine network sandboxes join ("bridge": the engine's default).
    sandbox_image: the image of the sandboxes; None: shoal's own pause image, loaded into the
        engine on first use (x86-64 only).
    """

    def __init__(
        self,
        docker_host: str | None = None,
        *,
        network: str = DEFAULT_NETWORK,
        sandbox_image: str | None = None,
    ) -> None:
        # One container wait is one long-poll request for as long as the container runs:
        # the session's pool must not cap them (aiohttp's default is 100 connections).
        self._session: aiohttp.ClientSession | None = None
        self._docker_host = docker_host
        self._docker: aiodocker.Docker | None = None
        self.network = network
        self.sandbox_image = sandbox_image or _pause.PAUSE_IMAGE
        self._builds_sandbox_image = sandbox_image is None
        self._sandbox_image_ready = asyncio.Lock()
        self._sandbox_image_loaded = False
        # What this object has seen, to spare the engine a lookup per call: images known to be
        # present, and the sandbox of each pod uid (its id, and whether it is host-networked).
        # Both are hints: a miss, or an engine that says otherwise, falls back to asking it.
        self._images: set[str] = set()
        self._sandboxes: dict[str, _KnownSandbox] = {}
        self._created: set[str] = set()  # containers created here and not started yet

    @property
    def name(self) -> str:
        return "docker"

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            path = (self._docker_host or "").removeprefix("unix://")
            if self._docker_host and self._docker_host.startswith("unix://"):
                self._session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path, limit=0))
            self._docker = aiodocker.Docker(url=self._docker_host, session=self._session)
        return self._docker

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def version(self) -> dict[str, Any]:
        """The engine's version (``GET /version``): a cheap check that it answers."""
        result: dict[str, Any] = await self.docker.version()
        return result

    # --- images ---

    async def _ensure_image(self, image: str, policy: str) -> None:
        """Pull as the policy asks; raises ImageError with the engine's words."""
        if policy != "Always" and image in self._images:
            return
        present = await self._image_present(image)
        if policy == "Never":
            if not present:
                raise ImageError(
                    image,
                    REASON_ERR_IMAGE_NEVER_PULL,
                    f'Container image "{image}" is not present with pull policy of Never',
                )
            return
        if present and policy != "Always":
            return
        try:
            await self.docker.images.pull(image if _has_tag(image) else f"{image}:latest")
        except aiodocker.DockerError as err:
            if present:  # Always, and the registry is away: the local copy still runs
                log.info("pulling %s failed, using the local image: %s", image, err.message)
                return
            raise ImageError(image, REASON_ERR_IMAGE_PULL, err.message) from None

    async def _image_present(self, image: str) -> bool:
        try:
            await self.docker.images.inspect(image)
        except aiodocker.DockerError as err:
            if err.status == 404:
                return False
            raise ContainerRuntimeError(f"inspecting image {image}: {err.message}") from None
        self._images.add(image)
        return True

    async def _ensure_sandbox_image(self) -> None:
        async with self._sandbox_image_ready:
            if self._sandbox_image_loaded or await self._image_present(self.sandbox_image):
                self._sandbox_image_loaded = True
                return
            if not self._builds_sandbox_image:
                await self._ensure_image(self.sandbox_image, "IfNotPresent")
            elif not _pause.supported():
                raise ContainerRuntimeError(
                    "shoal's sandbox image is built for x86-64 only: give --sandbox-image"
                )
            else:
                await self.docker.images.import_image(_pause.image_archive(self.sandbox_image))
            self._sandbox_image_loaded = True

    # --- containers ---

    async def create(self, identity: ContainerIdentity, spec: ContainerSpec) -> str:
        if not spec.image:
            raise ContainerRuntimeError(f"container {identity.container_name}: no image")
        name = container_name(identity)
        await self._ensure_image(spec.image, spec.image_pull_policy)
        sandbox_id, host_network = await self._sandbox_for(identity)
        host_config: dict[str, Any] = {
            "NetworkMode": "host" if host_network else f"container:{sandbox_id}",
            "Binds": [
                f"{m.host_path}:{m.container_path}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts
            ],
        }
        if spec.memory_limit is not None:
            # Swap equal to memory: no swap, so going over the limit is an OOM kill.
            host_config["Memory"] = host_config["MemorySwap"] = spec.memory_limit
        if spec.cpu_limit is not None:
            host_config["NanoCpus"] = int(spec.cpu_limit * 1e9)
        config: dict[str, Any] = {
            "Image": spec.image,
            "Env": [f"{key}={value}" for key, value in spec.env],
            "Labels": identity.labels(),
            "Tty": spec.tty,
            "OpenStdin": spec.stdin,
            "HostConfig": host_config,
        }
        # Kubernetes' rule: command replaces the entrypoint (and drops the image's cmd), args
        # replace the cmd.
        if spec.command:
            config["Entrypoint"] = list(spec.command)
            config["Cmd"] = list(spec.args)
        elif spec.args:
            config["Cmd"] = list(spec.args)
        if spec.working_dir:
            config["WorkingDir"] = spec.working_dir
        try:
            container = await self.docker.containers.create(config, name=name)
        except aiodocker.DockerError as err:
            if err.status == 409:
                found = await self._find(name)
                raise ContainerExists(f"{name} exists", found) from None
            raise ContainerRuntimeError(f"creating {name}: {err.message}") from None
        self._created.add(container.id)
        return container.id

    async def start(self, container_id: str) -> ContainerStatus:
        # Asked first (unless this object has just created it): the engine would happily run
        # an exited container again.
        if container_id not in self._created:
            current = await self.status(container_id)
            if current.state is not ContainerState.CREATED:
                raise InvalidState(f"{container_id} is {current.state.value}", container_id, current.state)
        self._created.discard(container_id)
        try:
            await self._container(container_id).start()
        except aiodocker.DockerError as err:
            if err.status == 404:
                raise ContainerNotFound(f"no container {container_id}", container_id) from None
            failed = await self.status(container_id)
            raise StartFailed(container_id, REASON_START_ERROR, failed.message or err.message) from None
        return await self.status(container_id)

    async def stop(self, container_id: str, grace_period: float) -> ContainerStatus:
        current = await self.status(container_id)
        if current.state is not ContainerState.RUNNING:
            return current
        try:
            await self._container(container_id).stop(t=math.ceil(max(grace_period, 0.0)))
        except aiodocker.DockerError as err:
            if err.status == 404:
                raise ContainerNotFound(f"no container {container_id}", container_id) from None
            if err.status != 304:  # 304: it had stopped meanwhile
                raise ContainerRuntimeError(f"stopping {container_id}: {err.message}", container_id) from None
        return await self.status(container_id)

    async def remove(self, container_id: str) -> None:
        current = await self.status(container_id)
        if current.state is ContainerState.RUNNING:
            raise InvalidState(f"{container_id} still runs", container_id, current.state)
        self._created.discard(container_id)
        try:
            await self._container(container_id).delete(v=True)
        except aiodocker.DockerError as err:
            if err.status == 404:
                raise ContainerNotFound(f"no container {container_id}", container_id) from None
            raise ContainerRuntimeError(f"removing {container_id}: {err.message}", container_id) from None

    async def status(self, container_id: str) -> ContainerStatus:
        return _status_of(await self._inspect(container_id))

    async def wait(self, container_id: str) -> ContainerStatus:
        try:
            await self._container(container_id).wait()
        except aiodocker.DockerError as err:
            if err.status == 404:
                raise ContainerNotFound(f"no container {container_id}", container_id) from None
            raise ContainerRuntimeError(f"waiting for {container_id}: {err.message}", container_id) from None
        return await self.status(container_id)

    async def list(self) -> Sequence[ContainerInfo]:
        found = await self.docker.containers.list(all=True, filters={"label": [LABEL_CONTAINER_NAME]})
        inspected = await asyncio.gather(*(self._inspect_or_none(c.id) for c in found))
        infos = []
        for inspect in inspected:
            if inspect is None:
                continue  # removed between the list and the inspect
            labels = inspect["Config"].get("Labels") or {}
            try:
                identity = ContainerIdentity.from_labels(labels)
            except (KeyError, ValueError):
                continue  # labelled by hand, not by an agent
            infos.append(ContainerInfo(identity, _status_of(inspect), labels))
        return infos

    async def logs(
        self, container_id: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[bytes]:
        await self._inspect(container_id)  # ContainerNotFound before the first line
        params: dict[str, Any] = {"tail": "all" if tail is None else str(tail)}
        container = self._container(container_id)

        async def chunks() -> AsyncIterator[str]:
            if follow:
                async for chunk in container.log(stdout=True, stderr=True, follow=True, **params):
                    yield chunk
            else:
                for chunk in await container.log(stdout=True, stderr=True, **params):
                    yield chunk

        pending = b""
        try:
            async for chunk in chunks():  # the engine's frames, cut into lines here
                pending += chunk.encode()
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line + b"\n"
        except aiodocker.DockerError as err:
            raise ContainerNotFound(f"logs of {container_id}: {err.message}", container_id) from None
        if pending:
            yield pending

    async def exec(self, container_id: str, command: Sequence[str], *, max_output: int = 10240) -> ExecResult:
        output = bytearray()
        truncated = False
        async with self.exec_session(container_id, command) as session:
            while (chunk := await session.read()) is not None:
                room = max_output - len(output)
                if len(chunk[1]) > room:
                    truncated = True
                output += chunk[1][: max(room, 0)]
            code = await session.exit_code()
        return ExecResult(code, bytes(output), truncated)

    @asynccontextmanager
    async def exec_session(
        self, container_id: str, command: Sequence[str], *, stdin: bool = False, tty: bool = False
    ) -> AsyncIterator[ExecSession]:
        current = await self.status(container_id)
        if current.state is not ContainerState.RUNNING:
            raise InvalidState(f"{container_id} is {current.state.value}", container_id, current.state)
        try:
            execution = await self._container(container_id).exec(list(command), stdin=stdin, tty=tty)
        except aiodocker.DockerError as err:
            raise ContainerRuntimeError(f"exec in {container_id}: {err.message}", container_id) from None
        stream = execution.start(detach=False)
        try:
            async with stream:
                session = _DockerExec(self.docker, execution.id, stream, tty)
                yield session
        except aiodocker.DockerError as err:
            # runc's exec failure (command not found) comes back on the stream's setup
            raise StartFailed(container_id, REASON_START_ERROR, err.message) from None

    async def stats(self, container_id: str) -> ContainerStats:
        current = await self.status(container_id)
        if current.state is not ContainerState.RUNNING:
            raise InvalidState(f"{container_id} is {current.state.value}", container_id, current.state)
        try:
            samples = await self._container(container_id).stats(stream=False)
        except aiodocker.DockerError as err:
            raise ContainerNotFound(f"stats of {container_id}: {err.message}", container_id) from None
        if not samples:  # it stopped while the engine sampled it
            raise InvalidState(f"{container_id} stopped", container_id, ContainerState.EXITED)
        sample = samples[-1]
        memory = sample.get("memory_stats") or {}
        details = memory.get("stats") or {}
        # The working set, as the kubelet reports it: usage less the inactive page cache.
        cache = details.get("total_inactive_file", details.get("inactive_file", 0))
        return ContainerStats(
            cpu_seconds=int((sample.get("cpu_stats") or {}).get("cpu_usage", {}).get("total_usage", 0)) / 1e9,
            memory_rss_bytes=max(int(memory.get("usage", 0)) - int(cache), 0),
            processes=int((sample.get("pids_stats") or {}).get("current", 0)),
            read_at=_epoch(sample.get("read")),
        )

    # --- sandboxes ---

    async def run_sandbox(self, spec: SandboxSpec) -> Sandbox:
        name = sandbox_name(spec.namespace, spec.pod_name, spec.pod_uid)
        inspect = await self._sandbox_of(spec.namespace, spec.pod_name, spec.pod_uid, running_only=False)
        if inspect is not None and inspect["State"].get("Running"):
            return self._remember(inspect)
        if inspect is not None:  # it died (e.g. killed by hand): a new one, and a new address
            log.info("sandbox of pod %s/%s is not running: replacing it", spec.namespace, spec.pod_name)
            with contextlib.suppress(aiodocker.DockerError):
                await self._container(inspect["Id"]).delete(force=True)
        await self._ensure_sandbox_image()
        bindings: dict[str, list[dict[str, str]]] = {}
        for port in spec.ports:
            key = f"{port.container_port}/{port.protocol.lower()}"
            bindings.setdefault(key, []).append({"HostIp": port.host_ip, "HostPort": str(port.host_port)})
        host_config: dict[str, Any] = {
            "NetworkMode": "host" if spec.host_network else self.network,
            "PortBindings": bindings,
        }
        config: dict[str, Any] = {
            "Image": self.sandbox_image,
            "Labels": {
                LABEL_NAMESPACE: spec.namespace,
                LABEL_POD_NAME: spec.pod_name,
                LABEL_POD_UID: spec.pod_uid,
                LABEL_SANDBOX: "true",
            },
            "ExposedPorts": {key: {} for key in bindings},
            "HostConfig": host_config,
        }
        if not spec.host_network:
            config["Hostname"] = spec.hostname[:63]
        try:
            container = await self.docker.containers.create(config, name=name)
        except aiodocker.DockerError as err:
            if err.status != 409:
                raise ContainerRuntimeError(
                    f"creating the sandbox of {spec.pod_name}: {err.message}"
                ) from None
            container = self._container(name)  # made by a sync that raced us; start it
        try:
            await container.start()
        except aiodocker.DockerError as err:
            # e.g. "port is already allocated": nothing half-made stays behind
            with contextlib.suppress(aiodocker.DockerError):
                await container.delete(force=True)
            raise ContainerRuntimeError(f"starting the sandbox of {spec.pod_name}: {err.message}") from None
        return self._remember(await self._inspect(container.id))

    async def remove_sandbox(self, pod_uid: str) -> None:
        self._sandboxes.pop(pod_uid, None)
        for container in await self.docker.containers.list(
            all=True, filters={"label": [f"{LABEL_POD_UID}={pod_uid}", f"{LABEL_SANDBOX}=true"]}
        ):
            with contextlib.suppress(aiodocker.DockerError):  # 404: gone meanwhile
                await container.delete(force=True)

    async def list_sandboxes(self) -> Sequence[Sandbox]:
        found = await self.docker.containers.list(all=True, filters={"label": [f"{LABEL_SANDBOX}=true"]})
        inspected = await asyncio.gather(*(self._inspect_or_none(c.id) for c in found))
        return [self._sandbox(i) for i in inspected if i is not None]

    # --- helpers ---

    def _remember(self, inspect: dict[str, Any]) -> Sandbox:
        sandbox = self._sandbox(inspect)
        host_network = inspect["HostConfig"].get("NetworkMode") == "host"
        self._sandboxes[sandbox.pod_uid] = _KnownSandbox(sandbox, host_network)
        return sandbox

    async def _sandbox_for(self, identity: ContainerIdentity) -> tuple[str, bool]:
        """The id of the pod's running sandbox, and whether it uses the host's network."""
        known = self._sandboxes.get(identity.pod_uid)
        if known is not None:
            return known.sandbox.id, known.host_network
        inspect = await self._sandbox_of(identity.namespace, identity.pod_name, identity.pod_uid)
        if inspect is None:
            pod = f"{identity.namespace}/{identity.pod_name}"
            raise ContainerRuntimeError(f"pod {pod} has no running sandbox")
        self._remember(inspect)
        return inspect["Id"], inspect["HostConfig"].get("NetworkMode") == "host"

    def _sandbox(self, inspect: dict[str, Any]) -> Sandbox:
        labels = inspect["Config"].get("Labels") or {}
        ip: str | None = None
        if inspect["HostConfig"].get("NetworkMode") != "host":
            networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
            ip = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), None)
        return Sandbox(
            labels.get(LABEL_NAMESPACE, ""),
            labels.get(LABEL_POD_NAME, ""),
            labels.get(LABEL_POD_UID, ""),
            id=inspect["Id"],
            ip=ip,
        )

    async def _sandbox_of(
        self, namespace: str, pod_name: str, pod_uid: str, *, running_only: bool = True
    ) -> dict[str, Any] | None:
        inspect = await self._inspect_or_none(sandbox_name(namespace, pod_name, pod_uid))
        if inspect is None or (running_only and not inspect["State"].get("Running")):
            return None
        return inspect

    def _container(self, container_id: str) -> DockerContainer:
        return self.docker.containers.container(container_id)

    async def _find(self, name: str) -> str | None:
        inspect = await self._inspect_or_none(name)
        return inspect["Id"] if inspect is not None else None

    async def _inspect(self, container_id: str) -> dict[str, Any]:
        inspect = await self._inspect_or_none(container_id)
        if inspect is None:
            raise ContainerNotFound(f"no container {container_id}", container_id)
        return inspect

    async def _inspect_or_none(self, container_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self._container(container_id).show()
        except aiodocker.DockerError as err:
            if err.status == 404:
                return None
            raise ContainerRuntimeError(f"inspecting {container_id}: {err.message}", container_id) from None
        return result
