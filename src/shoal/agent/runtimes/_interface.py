"""The runtime contract the agent drives containers through (DESIGN §5).

A runtime knows nothing about Pods: the agent turns a Pod into one container per attempt
(``ContainerIdentity``: which pod, which container, which restart) and a ``ContainerSpec``
(what to run, with ``env[].valueFrom`` and ``$(VAR)`` references already resolved). The runtime
runs it, reports its state in Kubernetes' vocabulary, and finds it again after the agent
restarts (``list()``), because containers outlive the agent.

A container moves one way: created -> running -> exited, or created -> exited when it cannot
start. Each restart is a new container (a new ``attempt``), as with the kubelet, so the log and
exit code of the previous attempt stay readable until the agent removes it.

Exceptions::

    ContainerRuntimeError      base; carries the container id it is about
     ├── ContainerNotFound     no container with that id on this node
     ├── ContainerExists       create() of an identity (pod uid, name, attempt) that exists
     ├── InvalidState          the call does not fit the state: start() twice, remove() of a
     │                         running container, exec() in one that is not running
     ├── StartFailed           the process could not be started; ``reason`` and ``message``
     │                         are what the container status shows (StartError, ...)
     └── ImageError            create() found no usable image: ``reason`` is ErrImagePull or
                               ErrImageNeverPull, ``message`` the engine's words

Pods as a whole: a runtime with isolation (docker) holds a *sandbox* per pod, the network
namespace its containers share (Kubernetes' pause container); ``run_sandbox`` before the first
container, ``remove_sandbox`` after the last. The exec runtime's sandbox is the host itself.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from shoal.api.quantity import parse_quantity

# Termination reasons, as the kubelet reports them.
REASON_COMPLETED = "Completed"  # exit code 0
REASON_ERROR = "Error"  # any other exit code, or killed by a signal (128 + signal)
REASON_START_ERROR = "StartError"  # missing or non-executable command, bad workingDir
REASON_STATUS_UNKNOWN = "ContainerStatusUnknown"  # ended while the runtime could not see how
REASON_OOM_KILLED = "OOMKilled"  # runtimes with memory limits (docker); never from exec
REASON_ERR_IMAGE_PULL = "ErrImagePull"  # the pull failed (or imagePullPolicy Always could not)
REASON_ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"  # imagePullPolicy Never, image not on the node
EXIT_CODE_START_ERROR = 128  # what containerd reports for a container that never ran
EXIT_CODE_UNKNOWN = 137  # what the kubelet reports with ContainerStatusUnknown

# Labels that identify a container on the node; the docker runtime will set them as labels.
LABEL_NAMESPACE = "shoal.io/pod-namespace"
LABEL_POD_NAME = "shoal.io/pod-name"
LABEL_POD_UID = "shoal.io/pod-uid"
LABEL_CONTAINER_NAME = "shoal.io/container-name"
LABEL_ATTEMPT = "shoal.io/attempt"


class ContainerRuntimeError(Exception):
    """Base of every runtime failure; ``container_id`` is the container it is about."""

    def __init__(self, message: str, container_id: str | None = None) -> None:
        super().__init__(message)
        self.container_id = container_id


class ContainerNotFound(ContainerRuntimeError):
    """No container with this id is known to the runtime (never created, or removed)."""


class ContainerExists(ContainerRuntimeError):
    """create() of an identity that already has a container: never run one attempt twice."""


class InvalidState(ContainerRuntimeError):
    """The operation does not apply to the container's current state."""

    def __init__(self, message: str, container_id: str, state: ContainerState) -> None:
        super().__init__(message, container_id)
        self.state = state


class StartFailed(ContainerRuntimeError):
    """start() could not run the process. The container is then exited with ``reason`` and
    ``message`` (and exit code 128), so status() keeps telling the same story."""

    def __init__(self, container_id: str, reason: str, message: str) -> None:
        super().__init__(f"{container_id}: {reason}: {message}", container_id)
        self.reason = reason
        self.message = message


class ImageError(ContainerRuntimeError):
    """create() has no image to run: ``reason`` is REASON_ERR_IMAGE_PULL or
    REASON_ERR_IMAGE_NEVER_PULL and ``message`` what the engine said. Nothing was created."""

    def __init__(self, image: str, reason: str, message: str) -> None:
        super().__init__(f"{image}: {reason}: {message}")
        self.image = image
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ContainerIdentity:
    """Which container of which pod, and which attempt (the pod's restartCount for it)."""

    namespace: str
    pod_name: str
    pod_uid: str
    container_name: str
    attempt: int = 0

    def labels(self) -> dict[str, str]:
        return {
            LABEL_NAMESPACE: self.namespace,
            LABEL_POD_NAME: self.pod_name,
            LABEL_POD_UID: self.pod_uid,
            LABEL_CONTAINER_NAME: self.container_name,
            LABEL_ATTEMPT: str(self.attempt),
        }

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> ContainerIdentity:
        return cls(
            namespace=labels[LABEL_NAMESPACE],
            pod_name=labels[LABEL_POD_NAME],
            pod_uid=labels[LABEL_POD_UID],
            container_name=labels[LABEL_CONTAINER_NAME],
            attempt=int(labels[LABEL_ATTEMPT]),
        )


@dataclass(frozen=True, slots=True)
class Mount:
    """A host path seen inside the container; the agent has prepared the host side (volumes)."""

    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What to run: the parts of a core/v1 Container a runtime needs.

    ``command`` replaces the image's entrypoint and ``args`` its cmd, as in Kubernetes; the exec
    runtime has no image, so it runs ``command + args`` (or ``args`` alone when there is no
    command). ``env`` is ordered, as in the Pod, and holds plain values only. Image, pull
    policy, mounts and limits are ignored by the exec runtime, which isolates nothing.
    """

    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str | None = None
    image: str | None = None
    image_pull_policy: str = "IfNotPresent"  # Always | IfNotPresent | Never
    mounts: tuple[Mount, ...] = ()
    cpu_limit: float | None = None  # cores (resources.limits.cpu)
    memory_limit: int | None = None  # bytes (resources.limits.memory)
    stdin: bool = False
    tty: bool = False

    @property
    def argv(self) -> tuple[str, ...]:
        return self.command + self.args

    @classmethod
    def from_container(cls, container: Mapping[str, Any]) -> ContainerSpec:
        """Build from a Container object (a JSON dict).

        Raises:
            ValueError: an env entry still has ``valueFrom``; the agent resolves those first,
                because only it can read Secrets, ConfigMaps and the Pod's fields.
        """
        env: list[tuple[str, str]] = []
        for item in container.get("env") or ():
            if "valueFrom" in item:
                raise ValueError(f"env {item['name']!r}: valueFrom must be resolved before the runtime")
            env.append((item["name"], item.get("value", "")))
        limits = (container.get("resources") or {}).get("limits") or {}
        cpu, memory = limits.get("cpu"), limits.get("memory")
        return cls(
            command=tuple(container.get("command") or ()),
            args=tuple(container.get("args") or ()),
            env=tuple(env),
            working_dir=container.get("workingDir") or None,
            image=container.get("image"),
            image_pull_policy=container.get("imagePullPolicy") or "IfNotPresent",
            cpu_limit=float(parse_quantity(cpu)) if cpu is not None else None,
            memory_limit=int(parse_quantity(memory)) if memory is not None else None,
            stdin=bool(container.get("stdin")),
            tty=bool(container.get("tty")),
        )


class ContainerState(enum.Enum):
    CREATED = "created"  # known to the runtime, no process yet
    RUNNING = "running"
    EXITED = "exited"  # ran and ended, or could not start (reason StartError)


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    """A container's state; times are RFC 3339 UTC strings, as in the Pod's status."""

    id: str
    state: ContainerState
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    pid: int | None = None  # exec runtime only; for debugging
    image_id: str | None = None  # the image's id (sha256:...), for runtimes with images

    def as_k8s_state(self) -> dict[str, Any]:
        """The core/v1 ContainerState for this status (the agent adds restart counts etc.)."""
        if self.state is ContainerState.RUNNING:
            return {"running": {"startedAt": self.started_at}}
        if self.state is ContainerState.CREATED:
            return {"waiting": {"reason": "ContainerCreating"}}
        terminated: dict[str, Any] = {"exitCode": self.exit_code, "containerID": self.id}
        for key, value in (
            ("reason", self.reason),
            ("message", self.message),
            ("startedAt", self.started_at),
            ("finishedAt", self.finished_at),
        ):
            if value is not None:
                terminated[key] = value
        return {"terminated": terminated}


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container as list() finds it: who it belongs to and how it is doing."""

    identity: ContainerIdentity
    status: ContainerStatus
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What exec() saw: the exit code and the first bytes of stdout and stderr, interleaved."""

    exit_code: int
    output: bytes
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class ContainerStats:
    """Resource use of a running container's processes, summed."""

    cpu_seconds: float  # user + system, including reaped children
    memory_rss_bytes: int  # the working set for runtimes with cgroups (usage less page cache)
    processes: int
    read_at: float | None = None  # when the runtime read them (epoch seconds), if it says


@dataclass(frozen=True, slots=True)
class PortMapping:
    """A container port published on the node (core/v1 ContainerPort with a hostPort)."""

    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""  # "": every address of the node


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """The pod-wide part of a pod: its network namespace and what it publishes."""

    namespace: str
    pod_name: str
    pod_uid: str
    hostname: str
    ports: tuple[PortMapping, ...] = ()
    host_network: bool = False


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A pod's running sandbox. ``ip`` is the pod's address; None means the node's own (host
    networking, and every pod of the exec runtime)."""

    namespace: str
    pod_name: str
    pod_uid: str
    id: str
    ip: str | None = None


class ExecSession(Protocol):
    """A command running in a container for a user (``shoal exec``, ``kubectl exec``): its
    stdin, its output as it comes, and its exit code."""

    async def write(self, data: bytes) -> None:
        """Send bytes to the command's stdin (opened only when asked for)."""
        ...

    async def close_stdin(self) -> None:
        """End of input: the command reads EOF."""
        ...

    async def read(self) -> tuple[int, bytes] | None:
        """The next chunk of output as (1 stdout | 2 stderr, bytes); with a tty everything is
        stdout. None once the command's output has ended."""
        ...

    async def resize(self, width: int, height: int) -> None:
        """Set the tty's size; ignored without a tty."""
        ...

    async def exit_code(self) -> int:
        """Wait for the command to end and return its exit code."""
        ...


@runtime_checkable
class Runtime(Protocol):
    """Runs containers on this node. Every method is safe to call again after a crash: ids are
    derived from the identity, and state lives with the runtime, not in the agent's memory."""

    @property
    def name(self) -> str:
        """The runtime's name, as the Node's ``shoal.io/runtime`` label shows it ("exec")."""
        ...

    async def create(self, identity: ContainerIdentity, spec: ContainerSpec) -> str:
        """Record a container and return its id; nothing runs yet.

        Raises:
            ContainerExists: this identity (pod uid, container name, attempt) was created before.
        """
        ...

    async def start(self, container_id: str) -> ContainerStatus:
        """Start the process and return the running status.

        Raises:
            ContainerNotFound, InvalidState: not created, or started before.
            StartFailed: the command is missing or not executable, or workingDir is unusable.
        """
        ...

    async def stop(self, container_id: str, grace_period: float) -> ContainerStatus:
        """SIGTERM every process of the container, SIGKILL what is left after ``grace_period``
        seconds (0: at once), and return the exited status. A container that is not running
        (created, or exited) is returned as it is. Works for adopted containers too.

        Raises:
            ContainerNotFound; ContainerRuntimeError: a process survived SIGKILL (stuck in the
                kernel) for several seconds.
        """
        ...

    async def remove(self, container_id: str) -> None:
        """Forget an exited or never-started container, with its logs.

        Raises:
            ContainerNotFound; InvalidState: it still runs (stop it first).
        """
        ...

    async def status(self, container_id: str) -> ContainerStatus:
        """The container's current state. Raises ContainerNotFound."""
        ...

    async def wait(self, container_id: str) -> ContainerStatus:
        """Return once the container has exited (at once if it has), with its final status.

        Works for containers started by this runtime object and for adopted ones; wrap it in
        ``asyncio.timeout`` to bound it. Raises ContainerNotFound."""
        ...

    async def list(self) -> Sequence[ContainerInfo]:
        """Every container this runtime holds on the node, in any state, including those a
        previous agent process created: the agent adopts them by their identity."""
        ...

    def logs(
        self, container_id: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[bytes]:
        """The container's output (stdout and stderr interleaved), one raw line per item with
        its newline (a last line without one comes as it is). ``tail`` keeps the last N lines;
        ``follow`` keeps reading until the container has exited and everything it wrote was
        yielded. Raises ContainerNotFound when iteration begins."""
        ...

    async def exec(self, container_id: str, command: Sequence[str], *, max_output: int = 10240) -> ExecResult:
        """Run ``command`` in the container's context (its env and working directory) and wait
        for it. Cancelling (e.g. a probe's ``asyncio.timeout``) kills the command.

        Raises:
            ContainerNotFound; InvalidState: not running; StartFailed: command not found.
        """
        ...

    def exec_session(
        self, container_id: str, command: Sequence[str], *, stdin: bool = False, tty: bool = False
    ) -> AbstractAsyncContextManager[ExecSession]:
        """Start ``command`` in the running container for a user; leaving the context kills
        it if it still runs.

        Raises (on entering):
            ContainerNotFound; InvalidState: not running; StartFailed: command not found.
        """
        ...

    async def stats(self, container_id: str) -> ContainerStats:
        """CPU and memory of the running container. Raises ContainerNotFound, InvalidState."""
        ...

    async def run_sandbox(self, spec: SandboxSpec) -> Sandbox:
        """Make sure the pod's sandbox runs and return it: created at the first call, the
        same one afterwards (also after an agent restart), a new one if it died.

        Raises:
            ContainerRuntimeError: it could not be made (e.g. its hostPort is taken).
        """
        ...

    async def remove_sandbox(self, pod_uid: str) -> None:
        """Stop and remove the pod's sandbox, and what the runtime keeps for the pod; a
        no-op when there is none. Remove the pod's containers first."""
        ...

    async def list_sandboxes(self) -> Sequence[Sandbox]:
        """Every sandbox on the node, also those of an earlier agent (adoption)."""
        ...

    async def close(self) -> None:
        """Stop watching; containers keep running, to be adopted by the next runtime object."""
        ...
