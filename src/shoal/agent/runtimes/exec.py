"""The ``exec`` runtime: each container is a plain OS process (like Nomad's raw_exec).

No root, images or container engine: the embedded default, so that shoal runs anywhere. The
process gets the container's command, args, env and working directory, and nothing else:
no isolation, no resource limits (so no OOMKilled either; it shares the node's memory).

Why it survives the agent: every container starts in a session of its own (its process group
is its pid), with stdin from /dev/null and stdout/stderr appended straight to a log file. No
pipe, terminal or process group ties it to the agent, so ``kill -9`` of the agent, or Ctrl-C in
its terminal, leaves the workload running. (Under systemd, run the agent with KillMode=process,
or a restart of its unit kills the workloads.)

How the next agent finds it: the JSON record beside the log (``_state``) holds the identity,
the pid and the process's start time; list() reads them back and trusts a pid only while the
start time matches. The process's environment carries ``SHOAL_CONTAINER_ID`` (the id and a random
nonce of this start) as well, so a
process whose pid the dying agent never managed to record is still found.

Exit codes: the agent reaps its own children and knows their codes. A process adopted from a
previous agent is not its child: when it ends, its code goes to init, not to us. It is then
reported as Kubernetes does for a container whose end was not seen: exit code 137, reason
``ContainerStatusUnknown``. When the leader of a container ends, the rest of its process group
is killed, as a container's processes die with its init.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import NoReturn

from shoal.agent.runtimes import _proc, _state
from shoal.agent.runtimes._interface import (
    EXIT_CODE_START_ERROR,
    EXIT_CODE_UNKNOWN,
    REASON_COMPLETED,
    REASON_ERROR,
    REASON_START_ERROR,
    REASON_STATUS_UNKNOWN,
    ContainerExists,
    ContainerIdentity,
    ContainerInfo,
    ContainerNotFound,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    ExecSession,
    InvalidState,
    Sandbox,
    SandboxSpec,
    StartFailed,
)
from shoal.agent.runtimes._logs import read_log
from shoal.agent.runtimes._session import start_session
from shoal.agent.runtimes._spawn import (
    DEFAULT_PATH,
    ENV_CONTAINER_ID,
    INHERITED_ENV,
    CannotRun,
    container_env,
    resolve,
    run_command,
    spawn,
)
from shoal.agent.runtimes._state import Record

log = logging.getLogger(__name__)

KILL_TIMEOUT = 10.0  # after SIGKILL; only a process stuck in the kernel takes longer
UNKNOWN_EXIT_MESSAGE = (
    "the process ended while the agent was not its parent (it was adopted after an agent restart),"
    " so its exit code is unknown"
)


class ExecRuntime:
    """Runs containers as processes; state and logs under ``state_dir``.

    Args:
        state_dir: where records and logs live; the next agent must be given the same one.
        base_env: the environment every container starts from, before its own ``env``;
            by default a few variables of the agent's own (``INHERITED_ENV``).
    """

    def __init__(
        self, state_dir: str | os.PathLike[str], *, base_env: Mapping[str, str] | None = None
    ) -> None:
        self.state_dir = Path(state_dir)
        if base_env is None:
            base_env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
        self._base_env = {"PATH": DEFAULT_PATH, **base_env}
        self._records: dict[str, Record] = {}
        self._exited: dict[str, asyncio.Event] = {}
        self._watches: dict[str, _proc.ExitWatch] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        # Taken at first use, not here, so that a runtime object can be built before the
        # previous agent is gone (its lock goes with it: the kernel drops it at exit).
        self._lock = _state.StateLock(self.state_dir)

    @property
    def name(self) -> str:
        return "exec"

    # --- lifecycle ---

    async def create(self, identity: ContainerIdentity, spec: ContainerSpec) -> str:
        self._lock.acquire()
        cid = _state.container_id(identity)
        base = self._base(cid)
        if cid in self._records or base.with_suffix(".json").exists():
            raise ContainerExists(f"container {cid!r} exists", cid)
        base.parent.mkdir(parents=True, exist_ok=True)
        _state.pod_workdir(self.state_dir, identity.pod_uid).mkdir(exist_ok=True)
        record = Record(
            id=cid,
            identity=identity,
            spec=spec,
            created_at=_proc.now_rfc3339(),
            log_path=str(base.with_suffix(".log")),
        )
        self._records[cid] = record
        self._exited[cid] = asyncio.Event()
        self._save(record)
        return cid

    async def start(self, container_id: str) -> ContainerStatus:
        record = self._load(container_id)
        if record.started_at is not None or record.exit_code is not None:
            raise InvalidState(f"container {container_id!r} was started before", container_id, record.state())
        record.nonce = secrets.token_hex(8)
        env, cwd = self._env(record), self._cwd(record)
        argv = record.spec.argv
        try:
            executable = resolve(argv, env, cwd)
        except CannotRun as e:
            self._fail_start(record, str(e))
        # Recorded before the spawn: an agent killed right after it finds a started record
        # without pid, and looks for the process by its environment marker.
        record.started_at = _proc.now_rfc3339()
        self._save(record)
        output = os.open(record.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            child = spawn(argv, executable, output, cwd, env)
        except OSError as e:  # e.g. ENOEXEC: a file without a #! line or a foreign binary
            record.started_at = None
            self._fail_start(record, f'exec: "{argv[0]}": {(e.strerror or str(e)).lower()}')
        finally:
            os.close(output)
        record.pid = child.pid
        record.proc_start = _proc.start_time(child.pid)  # None if it already exited (a zombie)
        self._children[container_id] = child
        self._save(record)
        self._watch(record)
        return record.status()

    async def stop(self, container_id: str, grace_period: float) -> ContainerStatus:
        record = self._load(container_id)
        if record.pid is None or record.exit_code is not None:
            return record.status()
        exited = self._exited[container_id]
        if self._alive(record):
            _proc.signal_group(record.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(max(grace_period, 0)):
                await exited.wait()
        except TimeoutError:
            if self._alive(record) or container_id in self._children:
                _proc.signal_group(record.pid, signal.SIGKILL)
            try:
                async with asyncio.timeout(KILL_TIMEOUT):
                    await exited.wait()
            except TimeoutError:
                raise ContainerRuntimeError(
                    f"container {container_id!r} (pid {record.pid}) survived SIGKILL for {KILL_TIMEOUT}s",
                    container_id,
                ) from None
        return record.status()

    async def remove(self, container_id: str) -> None:
        record = self._load(container_id)
        if record.started_at is not None and record.exit_code is None:
            raise InvalidState(
                f"container {container_id!r} is running; stop it first", container_id, record.state()
            )
        if (watch := self._watches.pop(container_id, None)) is not None:
            watch.cancel()
        del self._records[container_id], self._exited[container_id]
        base = self._base(container_id)
        base.with_suffix(".json").unlink(missing_ok=True)
        base.with_suffix(".log").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            base.parent.rmdir()  # the container's folder, once its last attempt is gone

    # --- sandboxes: the host itself ---

    async def run_sandbox(self, spec: SandboxSpec) -> Sandbox:
        """Nothing to isolate: the pod's processes share the node's network (ip None)."""
        self._pod_dir(spec.pod_uid).mkdir(parents=True, exist_ok=True)
        return Sandbox(spec.namespace, spec.pod_name, spec.pod_uid, id=spec.pod_uid)

    async def remove_sandbox(self, pod_uid: str) -> None:
        """Delete the pod's folder (its default working directory) once no container of it
        is left."""
        pod_dir = self._pod_dir(pod_uid)
        left = sorted(pod_dir.glob("*/*.json"))
        if left:
            raise ContainerRuntimeError(f"pod {pod_uid} still has {len(left)} container(s)", left[0].stem)
        shutil.rmtree(pod_dir, ignore_errors=True)

    async def list_sandboxes(self) -> Sequence[Sandbox]:
        """The pods with a folder; their names come from their containers' records."""
        named = {info.identity.pod_uid: info.identity for info in await self.list()}
        return [
            Sandbox(named[uid].namespace, named[uid].pod_name, uid, id=uid)
            for uid in sorted(p.name for p in (self.state_dir / "pods").glob("*"))
            if uid in named
        ]

    def _pod_dir(self, pod_uid: str) -> Path:
        pod_dir = self.state_dir / "pods" / pod_uid
        if pod_dir.parent != self.state_dir / "pods" or not pod_uid or pod_uid.startswith("."):
            raise ValueError(f"pod uid {pod_uid!r} cannot name a directory")
        return pod_dir

    # --- observing ---

    async def status(self, container_id: str) -> ContainerStatus:
        return self._load(container_id).status()

    async def wait(self, container_id: str) -> ContainerStatus:
        record = self._load(container_id)
        await self._exited[container_id].wait()
        return record.status()

    async def list(self) -> Sequence[ContainerInfo]:
        self._lock.acquire()
        infos = []
        for path in _state.all_record_paths(self.state_dir):
            cid = f"{path.parent.parent.name}.{path.parent.name}.{path.stem}"
            try:
                record = self._load(cid)
            except ContainerNotFound:
                continue  # removed meanwhile
            except (ValueError, KeyError, TypeError) as e:
                log.warning("skipping unreadable container record %s: %s", path, e)
                continue
            infos.append(ContainerInfo(record.identity, record.status(), record.identity.labels()))
        return infos

    async def logs(
        self, container_id: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[bytes]:
        record = self._load(container_id)
        exited = self._exited[container_id]

        async def wait_exited(seconds: float) -> bool:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await exited.wait()
            return exited.is_set()

        async for line in read_log(Path(record.log_path), tail=tail, follow=follow, wait_exited=wait_exited):
            yield line

    async def exec(self, container_id: str, command: Sequence[str], *, max_output: int = 10240) -> ExecResult:
        record = self._load(container_id)
        if not self._alive(record):
            raise InvalidState(f"container {container_id!r} is not running", container_id, record.state())
        # Unmarked: a probe is not the container, and must never be adopted as it.
        env, cwd = self._env(record, marked=False), self._cwd(record)
        try:
            executable = resolve(tuple(command), env, cwd)
        except CannotRun as e:
            raise StartFailed(container_id, REASON_START_ERROR, str(e)) from None
        return await run_command(command, executable, cwd, env, max_output)

    def exec_session(
        self, container_id: str, command: Sequence[str], *, stdin: bool = False, tty: bool = False
    ) -> AbstractAsyncContextManager[ExecSession]:
        """A host process with the container's env and working directory (``_session``)."""
        return self._exec_session(container_id, tuple(command), stdin, tty)

    @contextlib.asynccontextmanager
    async def _exec_session(
        self, container_id: str, command: tuple[str, ...], stdin: bool, tty: bool
    ) -> AsyncIterator[ExecSession]:
        record = self._load(container_id)
        if not self._alive(record):
            raise InvalidState(f"container {container_id!r} is not running", container_id, record.state())
        # Unmarked, as exec(): a user's command is not the container, never adopted as it.
        env, cwd = self._env(record, marked=False), self._cwd(record)
        try:
            executable = resolve(command, env, cwd)
        except CannotRun as e:
            raise StartFailed(container_id, REASON_START_ERROR, str(e)) from None
        try:
            session = await start_session(command, executable, cwd, env, stdin=stdin, tty=tty)
        except OSError as e:  # e.g. ENOEXEC: a file without a #! line
            message = f'exec: "{command[0]}": {(e.strerror or str(e)).lower()}'
            raise StartFailed(container_id, REASON_START_ERROR, message) from None
        try:
            yield session
        finally:
            await asyncio.shield(session.close())  # a cancelled caller must still kill it

    async def stats(self, container_id: str) -> ContainerStats:
        record = self._load(container_id)
        if record.pid is None or not self._alive(record):
            raise InvalidState(f"container {container_id!r} is not running", container_id, record.state())
        cpu, rss, count = _proc.group_usage(record.pid)
        return ContainerStats(cpu_seconds=cpu, memory_rss_bytes=rss, processes=count)

    async def close(self) -> None:
        for watch in self._watches.values():
            watch.cancel()
        self._watches.clear()
        for child in self._children.values():
            # Detach: the process outlives this object. Without a returncode, Popen would warn
            # on garbage collection and later reap it behind the next runtime object's back.
            child.returncode = child.returncode if child.returncode is not None else -1
        self._children.clear()
        self._lock.release()

    # --- internals ---

    def _base(self, cid: str) -> Path:
        base = _state.record_base(self.state_dir, cid)
        if base is None:
            raise ContainerNotFound(f"no container {cid!r}", cid)
        return base

    def _load(self, cid: str) -> Record:
        """The container's record, read from disk (and adopted) the first time it is asked for."""
        self._lock.acquire()
        record = self._records.get(cid)
        if record is not None:
            return record
        record = _state.load(self._base(cid).with_suffix(".json"))
        if record is None:
            raise ContainerNotFound(f"no container {cid!r}", cid)
        self._records[cid] = record
        self._exited[cid] = asyncio.Event()
        self._adopt(record)
        return record

    def _adopt(self, record: Record) -> None:
        """Pick up a container a previous runtime object (or agent process) left behind."""
        if record.exit_code is not None:
            self._exited[record.id].set()
            return
        if record.started_at is None:
            return  # created, never started
        if record.pid is None:
            # The previous agent died while spawning: the marker tells whether it got that far.
            pid = _proc.find_session_leader(self._marker(record))
            started = _proc.start_time(pid) if pid is not None else None
            if pid is not None and started is not None:
                record.pid, record.proc_start = pid, started
                record.started_at = _proc.ticks_to_rfc3339(started)
                self._save(record)
        if (
            record.pid is not None
            and record.proc_start is not None
            and _proc.is_same_process(record.pid, record.proc_start)
        ):
            self._watch(record)
            return
        self._finish(record, None)  # ended while nobody watched

    def _watch(self, record: Record) -> None:
        assert record.pid is not None
        self._watches[record.id] = _proc.ExitWatch(
            record.pid, record.proc_start, lambda code: self._finish(record, code)
        )

    def _finish(self, record: Record, code: int | None) -> None:
        """Record the end of a container: ``code`` None when it was not ours to learn."""
        if self._records.get(record.id) is not record:
            return  # removed meanwhile
        self._watches.pop(record.id, None)
        child = self._children.pop(record.id, None)
        if child is not None:
            child.returncode = code  # reaped by the watch; Popen must not wait for it again
        if code is None and record.pid is not None:
            # Not our child (ExitWatch kills the group of those): its group id may be reused by
            # the time we look, so only processes carrying this container's marker are killed.
            _proc.kill_marked(record.pid, self._marker(record))
        if code is None:
            record.exit_code, record.reason, record.message = (
                EXIT_CODE_UNKNOWN,
                REASON_STATUS_UNKNOWN,
                UNKNOWN_EXIT_MESSAGE,
            )
        else:
            record.exit_code = code
            record.reason = REASON_COMPLETED if code == 0 else REASON_ERROR
        record.finished_at = _proc.now_rfc3339()
        self._save(record)
        self._exited[record.id].set()

    def _fail_start(self, record: Record, message: str) -> NoReturn:
        record.exit_code, record.reason, record.message = EXIT_CODE_START_ERROR, REASON_START_ERROR, message
        record.finished_at = _proc.now_rfc3339()
        self._save(record)
        self._exited[record.id].set()
        raise StartFailed(record.id, REASON_START_ERROR, message)

    def _alive(self, record: Record) -> bool:
        return (
            record.exit_code is None
            and record.pid is not None
            and record.proc_start is not None
            and _proc.is_same_process(record.pid, record.proc_start)
        )

    def _save(self, record: Record) -> None:
        if self._records.get(record.id) is record:
            _state.save(self._base(record.id).with_suffix(".json"), record)

    def _marker(self, record: Record) -> bytes:
        return f"{ENV_CONTAINER_ID}={record.id}:{record.nonce}".encode()

    def _env(self, record: Record, *, marked: bool = True) -> dict[str, str]:
        # The nonce tells this start from any other process with the same container id: one
        # of another agent's state directory, say, or one from before a remove().
        marker = f"{record.id}:{record.nonce}" if marked else None
        return container_env(self._base_env, record.identity, record.spec, marker)

    def _cwd(self, record: Record) -> str:
        return record.spec.working_dir or str(_state.pod_workdir(self.state_dir, record.identity.pod_uid))
