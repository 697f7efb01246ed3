"""The exec runtime's on-disk state: one JSON file per container, beside its log.

Layout under the runtime's state directory::

    pods/<pod uid>/<container name>/<attempt>.json   identity, spec, pid, times, exit code
    pods/<pod uid>/<container name>/<attempt>.log    stdout and stderr, appended by the process
    pods/<pod uid>/workdir/                          default working directory of the pod

The files, not the agent's memory, are the truth: an agent that was killed reads them back and
finds its containers (DESIGN §5, adoption). Writes replace the file atomically (write a
temporary file, then rename), so a kill at any moment leaves either the old or the new record.
No fsync: a crash of the whole machine takes the processes with it, and then nothing is lost by
forgetting them.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shoal.agent.runtimes._interface import (
    ContainerIdentity,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
)

_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ID = re.compile(r"^(?P<uid>[A-Za-z0-9][A-Za-z0-9-]{0,62})\.(?P<name>[a-z0-9-]{1,63})\.(?P<attempt>\d{1,9})$")
FORMAT_VERSION = 1


def container_id(identity: ContainerIdentity) -> str:
    """``<pod uid>.<container name>.<attempt>``: derived, so a retried create() finds the first."""
    if not _UID.match(identity.pod_uid):
        raise ValueError(f"pod uid {identity.pod_uid!r} cannot name a directory")
    if not _NAME.match(identity.container_name):
        raise ValueError(f"container name {identity.container_name!r} is not a DNS label")
    if identity.attempt < 0:
        raise ValueError(f"attempt {identity.attempt} is negative")
    return f"{identity.pod_uid}.{identity.container_name}.{identity.attempt}"


def record_base(state_dir: Path, cid: str) -> Path | None:
    """The path of a container's files without suffix, or None for an id that is not ours
    (so a crafted id can never reach outside the state directory)."""
    match = _ID.match(cid)
    if match is None:
        return None
    return state_dir / "pods" / match["uid"] / match["name"] / match["attempt"]


def pod_workdir(state_dir: Path, pod_uid: str) -> Path:
    return state_dir / "pods" / pod_uid / "workdir"


@dataclass
class Record:
    """What the runtime remembers of one container. Times are RFC 3339 strings."""

    id: str
    identity: ContainerIdentity
    spec: ContainerSpec
    created_at: str
    log_path: str
    pid: int | None = None
    proc_start: int | None = None  # /proc/<pid>/stat start time, guards against pid reuse
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    nonce: str | None = None  # random, per start; in the process's environment marker
    version: int = field(default=FORMAT_VERSION)

    def state(self) -> ContainerState:
        if self.exit_code is not None:
            return ContainerState.EXITED
        return ContainerState.CREATED if self.started_at is None else ContainerState.RUNNING

    def status(self) -> ContainerStatus:
        return ContainerStatus(
            id=self.id,
            state=self.state(),
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            reason=self.reason,
            message=self.message,
            pid=self.pid,
        )

    def to_json(self) -> bytes:
        data = asdict(self)
        data["identity"] = self.identity.labels()
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Record:
        data: dict[str, Any] = json.loads(raw)
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown state format version {data.get('version')!r}")
        spec = data.pop("spec")
        data["identity"] = ContainerIdentity.from_labels(data["identity"])
        data["spec"] = ContainerSpec(
            command=tuple(spec["command"]),
            args=tuple(spec["args"]),
            env=tuple((name, value) for name, value in spec["env"]),
            working_dir=spec["working_dir"],
            image=spec["image"],
        )
        return cls(**data)


def save(path: Path, record: Record) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(record.to_json())
    os.replace(tmp, path)


def load(path: Path) -> Record | None:
    """The record at ``path``, or None when it is missing (removed meanwhile)."""
    try:
        return Record.from_json(path.read_bytes())
    except FileNotFoundError:
        return None


def all_record_paths(state_dir: Path) -> list[Path]:
    return sorted((state_dir / "pods").glob("*/*/*.json"))


class StateLock:
    """An exclusive lock on the state directory: one runtime, in one agent, per directory.

    Two agents adopting the same containers would each restart, stop or report them: the
    duplicate the design forbids. ``flock`` is released by the kernel when its holder dies, so
    a killed agent never blocks the next one; the fd is not inherited by containers (Python
    opens fds close-on-exec), or a workload would keep the lock after the agent is gone.
    """

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ContainerRuntimeError(
                f"state directory {self._path.parent} is in use by another runtime (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last fd of the lock releases it
            self._fd = None
