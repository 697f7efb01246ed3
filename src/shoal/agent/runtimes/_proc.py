"""Linux process facts the exec runtime needs, read from /proc, and exit notification.

A pid alone does not name a process for long: once it exits the kernel may give the number to
another one. Every pid the runtime keeps is therefore paired with the process's start time
(field 22 of /proc/<pid>/stat, in clock ticks since boot), and a pid is trusted only while both
still match.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_POLL_INTERVAL = 0.5  # only without pidfd (Linux < 5.3)

# Indexes into the fields after the command name of /proc/<pid>/stat (field number - 3).
_STATE, _PGRP, _SESSION = 0, 2, 3
_UTIME, _STIME, _CUTIME, _CSTIME, _STARTTIME, _RSS = 11, 12, 13, 14, 19, 21


def now_rfc3339() -> str:
    """Now, as Kubernetes writes times in status (second precision, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: split after its last ")".
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or fields[_STATE] in ("Z", "X"):
        return None
    return int(fields[_STARTTIME])


def is_same_process(pid: int, started: int) -> bool:
    """Whether ``pid`` is still the live process that started at ``started`` ticks."""
    return start_time(pid) == started


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (a container's processes)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and int(fields[_PGRP]) == pgid and fields[_STATE] not in ("Z", "X"):
            members.append(int(entry))
    return members


def group_usage(pgid: int) -> tuple[float, int, int]:
    """(cpu seconds, resident bytes, process count) summed over the live group members.

    CPU includes the children each member has already reaped (cutime, cstime); processes that
    left the group or whose parent is outside it are not counted.
    """
    ticks = rss_pages = count = 0
    for pid in group_members(pgid):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        ticks += sum(int(fields[i]) for i in (_UTIME, _STIME, _CUTIME, _CSTIME))
        rss_pages += int(fields[_RSS])
        count += 1
    return ticks / _CLOCK_TICKS, rss_pages * _PAGE_SIZE, count


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the process group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


class ExitWatch:
    """Calls ``on_exit(exit_code)`` once when a process ends; for our own child, first kills
    what is left of its process group.

    Uses a pidfd (Linux 5.3+), which becomes readable when the process exits: no polling, and
    no race with pid reuse since the fd names the process itself. For our own child,
    ``waitid`` on the pidfd reaps it and yields its exit code (128 + signal when killed, as
    shells and Kubernetes report it). For any other process (one adopted after an agent
    restart) the code is not ours to collect, and ``on_exit`` gets None. Without pidfd it polls.
    """

    def __init__(self, pid: int, started: int | None, on_exit: Callable[[int | None], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_exit = on_exit
        self._pid, self._started = pid, started
        self._fd: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._fired = False
        self._polled_code: int | None = None
        self._foreign = False  # the pid now names another process: ours is long gone
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._loop.call_soon(self._fire)
            return
        except (AttributeError, OSError):
            self._timer = self._loop.call_later(_POLL_INTERVAL, self._poll)
            return
        # Checked after the fd is open: if the start time still matches, the fd names our
        # process. A zombie (None) is fine: our child that already exited, waiting to be reaped.
        now = start_time(pid)
        if now is None:
            self._loop.call_soon(self._fire)
            return
        if started is not None and now != started:  # the pid was reused: ours is long gone
            os.close(self._fd)
            self._fd = None
            self._foreign = True
            self._loop.call_soon(self._fire)
            return
        self._loop.add_reader(self._fd, self._fire)

    def _poll(self) -> None:
        try:
            reaped, status = os.waitpid(self._pid, os.WNOHANG)
            alive = reaped == 0
            if not alive:
                code = os.waitstatus_to_exitcode(status)
                self._polled_code = code if code >= 0 else 128 - code
        except ChildProcessError:
            alive = self._started is not None and is_same_process(self._pid, self._started)
        if alive:
            self._timer = self._loop.call_later(_POLL_INTERVAL, self._poll)
        else:
            self._fire()

    def _exit_code(self) -> int | None:
        if self._polled_code is not None or self._foreign:
            return self._polled_code
        if self._fd is not None:
            idtype, ident = os.P_PIDFD, self._fd
        else:
            idtype, ident = os.P_PID, self._pid
        try:
            # Peek first (WNOWAIT): while our child is an unreaped zombie its pid, and so its
            # group id, cannot be reused, so the rest of its group can be killed safely: the
            # container's processes end with its main process, as in a pid namespace.
            info = os.waitid(idtype, ident, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is None:
                return None
            signal_group(self._pid, signal.SIGKILL)
            os.waitid(idtype, ident, os.WEXITED | os.WNOHANG)  # now reap it
        except ChildProcessError:
            return None  # not our child, or already reaped by the fallback poll
        if info.si_code == os.CLD_EXITED:
            return info.si_status
        return 128 + info.si_status  # killed or dumped by signal si_status

    def _fire(self) -> None:
        if self._fired:
            return
        self._fired = True
        code = self._exit_code()
        self.cancel()
        self._on_exit(code)

    def cancel(self) -> None:
        """Stop watching without calling ``on_exit``; the process is left alone."""
        self._fired = True
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def boot_time() -> float:
    """Seconds since the epoch at which the machine booted (``btime`` of /proc/stat)."""
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def ticks_to_rfc3339(ticks: int) -> str:
    """A /proc start time (clock ticks since boot) as an RFC 3339 time."""
    when = datetime.fromtimestamp(boot_time() + ticks / _CLOCK_TICKS, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def find_session_leader(marker: bytes) -> int | None:
    """A live session leader whose environment holds ``marker`` (``NAME=value``), if any.

    The runtime marks each process's environment with its container id, so a process started
    by an agent that died before it could record the pid is still found (never an orphan).
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        fields = _stat_fields(pid)
        if fields is None or fields[_STATE] in ("Z", "X") or int(fields[_SESSION]) != pid:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue  # gone, or another user's process
        if marker in environ.split(b"\0"):
            return pid
    return None


def kill_marked(pgid: int, marker: bytes) -> int:
    """SIGKILL the members of group ``pgid`` whose environment holds ``marker``; how many.

    For a group whose leader ended while no agent watched: the group id may have been reused
    since, so only processes that carry the container's marker are touched.
    """
    killed = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker not in f.read().split(b"\0"):
                    continue
            os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue
        killed += 1
    return killed
