"""An interactive command for a user (``kubectl exec``, ``shoal exec``) as a host process: the
``ExecSession`` of the exec runtime.

Without a tty the command gets pipes: stdin (or /dev/null when none was asked for), stdout
and stderr apart. With a tty it gets the slave side of a pseudo-terminal as all three (so
stdout and stderr arrive merged, as stdout) and, through util-linux's ``setsid --ctty``, as its
controlling terminal: Ctrl-C typed into it interrupts the command, a resize reaches it as
SIGWINCH. Where ``setsid`` is missing the command still gets the terminal, without job
control.

The command runs in a process group of its own; ``close()`` kills that group if the command
still runs (a user who disconnects leaves nothing behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence
from typing import Protocol

STDOUT, STDERR = 1, 2
CHUNK = 65536
EOT = b"\x04"  # what "end of input" is on a terminal (Ctrl-D)
DEFAULT_TERM = "xterm"  # as docker sets it for a tty exec


class _Output(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class _Pty:
    """The master side of a pseudo-terminal, read and written without blocking the loop.

    By hand (add_reader, os.read) rather than with asyncio's pipe transports, whose uvloop
    version drops what the command wrote last when the terminal reports its end (EIO)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    async def read(self, n: int = CHUNK) -> bytes:
        while True:
            try:
                return os.read(self.fd, n)
            except BlockingIOError:
                await self._ready(writing=False)
            except OSError:  # EIO: every holder of the slave side is gone, the output has ended
                return b""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                await self._ready(writing=True)

    async def _ready(self, *, writing: bool) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        if writing:
            loop.add_writer(self.fd, wake)
        else:
            loop.add_reader(self.fd, wake)
        try:
            await ready
        finally:
            if writing:
                loop.remove_writer(self.fd)
            else:
                loop.remove_reader(self.fd)

    def resize(self, width: int, height: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class ProcessSession:
    """A running command's streams; built by ``start_session``."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        outputs: Sequence[tuple[int, _Output]],
        stdin: asyncio.StreamWriter | None = None,
        pty: _Pty | None = None,
    ) -> None:
        self._process = process
        self._stdin = stdin
        self._pty = pty
        self._stdin_open = stdin is not None or pty is not None
        self._chunks: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=16)
        self._open_outputs = len(outputs)
        self._ended = False
        self._pumps = [asyncio.create_task(self._pump(channel, output)) for channel, output in outputs]

    async def _pump(self, channel: int, output: _Output) -> None:
        while chunk := await output.read(CHUNK):
            await self._chunks.put((channel, chunk))
        self._open_outputs -= 1
        if self._open_outputs == 0:
            await self._chunks.put(None)

    async def write(self, data: bytes) -> None:
        if not self._stdin_open:
            return
        try:
            if self._pty is not None:
                await self._pty.write(data)
            elif self._stdin is not None:
                self._stdin.write(data)
                await self._stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the command stopped reading: what it did not read is lost, as with a pipe

    async def close_stdin(self) -> None:
        if not self._stdin_open:
            return
        if self._pty is not None:
            await self.write(EOT)  # a terminal stays open; Ctrl-D is how its reader sees EOF
        elif self._stdin is not None:
            self._stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self._stdin.wait_closed()
        self._stdin_open = False

    async def read(self) -> tuple[int, bytes] | None:
        if self._ended:
            return None
        item = await self._chunks.get()
        if item is None:
            self._ended = True
        return item

    async def resize(self, width: int, height: int) -> None:
        if self._pty is not None and width > 0 and height > 0:
            self._pty.resize(width, height)

    async def exit_code(self) -> int:
        code = await self._process.wait()
        return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell says

    async def close(self) -> None:
        """Kill the command's group if the command still runs; release the streams."""
        process = self._process
        if process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await process.wait()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._stdin is not None:
            self._stdin.close()
        if self._pty is not None:
            self._pty.close()
            self._pty = None


async def start_session(
    command: Sequence[str],
    executable: str,
    cwd: str,
    env: Mapping[str, str],
    *,
    stdin: bool = False,
    tty: bool = False,
) -> ProcessSession:
    """Start ``command`` (``executable`` is its resolved program); ``close()`` the session when
    done. Raises OSError when it cannot be spawned."""
    if tty:
        return await _start_tty(command, executable, cwd, env)
    return await _start_pipes(command, executable, cwd, env, stdin)


async def _start_pipes(
    command: Sequence[str], executable: str, cwd: str, env: Mapping[str, str], stdin: bool
) -> ProcessSession:
    process = await asyncio.create_subprocess_exec(
        *command,
        executable=executable,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,  # a group of its own: killed as one when the session ends
    )
    assert process.stdout is not None and process.stderr is not None
    return ProcessSession(process, [(STDOUT, process.stdout), (STDERR, process.stderr)], process.stdin)


async def _start_tty(
    command: Sequence[str], executable: str, cwd: str, env: Mapping[str, str]
) -> ProcessSession:
    env = {"TERM": DEFAULT_TERM, **env}
    setsid = shutil.which("setsid")
    if setsid is not None:
        # setsid(2) then TIOCSCTTY on stdin: the terminal becomes the command's controlling one.
        # (The child is no group leader, so setsid does not fork: the pid stays the command's.)
        argv, program, new_session = [setsid, "--ctty", executable, *command[1:]], setsid, False
    else:
        argv, program, new_session = list(command), executable, True
    master, slave = os.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            executable=program,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=new_session,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    pty = _Pty(master)
    return ProcessSession(process, [(STDOUT, pty)], pty=pty)
