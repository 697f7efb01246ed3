"""Starting a container's process: its environment, finding its executable, the spawn.

Messages for what cannot start follow runc's wording ("executable file not found in $PATH"),
which is what Kubernetes users see in a container's status and search the web for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence

from shoal.agent.runtimes._interface import ContainerIdentity, ContainerSpec, ExecResult

# Marks every container process, so the runtime finds a process whose pid it failed to record.
ENV_CONTAINER_ID = "SHOAL_CONTAINER_ID"
# What a container inherits from the agent's environment unless base_env says otherwise.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "SHELL", "TMPDIR")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CannotRun(Exception):
    """The command cannot be executed; the message is what the user reads."""


def container_env(
    base: Mapping[str, str], identity: ContainerIdentity, spec: ContainerSpec, marker: str | None
) -> dict[str, str]:
    """The base environment, HOSTNAME (the pod's name, as in Kubernetes), the container's own
    env in order, then the marker last so that no env entry can override it."""
    env = {**base, "HOSTNAME": identity.pod_name}
    env.update(spec.env)
    if marker is not None:
        env[ENV_CONTAINER_ID] = marker
    return env


def spawn(
    argv: tuple[str, ...], executable: str, output: int, cwd: str, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Fork and exec the container's process.

    Blocking, on purpose: Popen returns within milliseconds, once the exec has succeeded or
    failed, and doing it in a thread would let a cancelled start() leave a process nobody records.
    """
    return subprocess.Popen(
        list(argv),
        executable=executable,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        cwd=cwd,
        env=env,
        start_new_session=True,  # its own process group: survives the agent, is killed as one
    )


def resolve(argv: tuple[str, ...], env: Mapping[str, str], cwd: str) -> str:
    """The file to execute for ``argv``, found as runc finds it (the container's PATH), with
    runc's messages when it cannot be, so users recognise them."""
    if not argv:
        raise CannotRun("no command specified")
    if not os.path.isdir(cwd):
        raise CannotRun(f'chdir to cwd ("{cwd}") failed: no such file or directory')
    program = argv[0]
    if "/" not in program:
        found = shutil.which(program, path=env.get("PATH", ""))
        if found is None:
            raise CannotRun(f'exec: "{program}": executable file not found in $PATH')
        return found
    path = os.path.join(cwd, program)
    if not os.path.exists(path):
        raise CannotRun(f'exec: "{program}": stat {program}: no such file or directory')
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise CannotRun(f'exec: "{program}": permission denied')
    return path


async def run_command(
    command: Sequence[str], executable: str, cwd: str, env: Mapping[str, str], max_output: int
) -> ExecResult:
    """Run a command to its end (exec() and exec probes), keeping the first ``max_output``
    bytes of its stdout and stderr. Cancelling kills it and whatever it started."""
    process = await asyncio.create_subprocess_exec(
        *command,
        executable=executable,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
        start_new_session=True,  # its own group, so that a timeout reaches its children too
    )
    assert process.stdout is not None
    output, truncated = bytearray(), False
    try:
        # Read to the end even past max_output, so the command never blocks on a full pipe.
        while chunk := await process.stdout.read(65536):
            room = max(max_output - len(output), 0)
            truncated = truncated or len(chunk) > room
            output += chunk[:room]
        code = await process.wait()
    except BaseException:  # cancelled, e.g. by the probe's timeout: leave nothing behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    return ExecResult(code if code >= 0 else 128 - code, bytes(output), truncated)
