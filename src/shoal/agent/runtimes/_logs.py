"""Reading a container's log file: the last N lines, then (when following) what comes after.

The process writes its stdout and stderr straight into the file (both fds open on it with
O_APPEND), not through a pipe to the agent: a pipe would break, and the workload get SIGPIPE,
the moment the agent dies. The price is that lines carry no timestamps and stdout and stderr
are not told apart. Following polls the file's size while waiting for the container to exit:
growth is checked every ``POLL_INTERVAL``, and an exit ends the wait at once.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

POLL_INTERVAL = 0.1
_BLOCK = 64 * 1024


def tail_offset(f: BinaryIO, lines: int) -> int:
    """The offset where the last ``lines`` lines of the open file begin (a final line without
    its newline counts as a line)."""
    size = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return size
    pos, data = size, b""
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
        # One newline more than wanted marks where the wanted lines begin.
        newlines = data.count(b"\n") - (1 if data.endswith(b"\n") else 0)
        if newlines >= lines:
            break
    kept = data.splitlines(keepends=True)[-lines:]
    return size - sum(len(line) for line in kept)


def _open(path: Path) -> BinaryIO | None:
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None


async def read_log(
    path: Path,
    *,
    tail: int | None,
    follow: bool,
    wait_exited: Callable[[float], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """Yield the file's lines, with their newlines.

    Args:
        tail: start with the last N lines; None for the whole file.
        follow: on reaching the end, wait for more until ``wait_exited(timeout)`` says the
            writer has exited; then read what is left and stop.
        wait_exited: waits up to the given seconds for the container to exit; True if it has.
    """
    # Local files, read in bounded blocks: quick enough to do on the event loop.
    handle = _open(path)
    while handle is None and follow:
        # Created but not started yet: nothing to read until it starts, or for good.
        exited = await wait_exited(POLL_INTERVAL)
        handle = _open(path)
        if exited:
            break
    if handle is None:
        return
    partial = b""
    with handle as f:
        f.seek(0 if tail is None else tail_offset(f, tail))
        exited = False
        while True:
            chunk = f.read(_BLOCK)
            if chunk:
                *complete, partial = (partial + chunk).split(b"\n")
                for line in complete:
                    yield line + b"\n"
                continue
            if not follow or exited:
                break
            # At the end: read once more after an exit, for what was written just before it.
            exited = await wait_exited(POLL_INTERVAL)
    if partial:
        yield partial
