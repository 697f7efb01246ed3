"""A lab of test hosts made of network namespaces: one "switch" namespace holding a Linux bridge,
and N host namespaces each joined to it by a veth pair (``eth0`` in the host, ``p<n>`` on the
switch), addressed 10.213.<k>.<n>/24, with ``lo`` up. Nothing touches the machine's own
interfaces, routes or firewall: every link is created directly inside a namespace of the lab.

    with Lab(hosts=2) as lab:
        h1, h2 = lab.hosts
        h2.run(["wget", "-qO-", f"http://{h1.ip}:8080/"])

Names are ``shoal-<pid>-<k>-sw`` and ``shoal-<pid>-<k>-h<n>``: unique per process, and a later
run can tell the leftovers of a dead process (``remove_leftovers``). Labs are isolated from each
other (no link between them), so even two labs with the same subnet would not collide; k is
still picked so that live labs differ, which keeps addresses unambiguous in logs.

Commands run in a host with ``nsenter --net=/run/netns/NAME`` rather than ``ip netns exec``:
``ip netns exec`` also enters a new mount namespace and mounts a fresh /sys over the machine's,
which hides /sys/fs/cgroup (dockerd then fails with "Devices cgroup isn't mounted"). Only the
network namespace changes, so /sys/class/net still shows the machine's interfaces: use ``ip``
(netlink) to look at a host's links.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

NETNS_DIR = Path("/run/netns")
PREFIX = "shoal"
NAME_RE = re.compile(rf"^{PREFIX}-(\d+)-(\d+)-(sw|h\d+)$")
SUBNET = "10.213"


class LabError(RuntimeError):
    """The lab cannot be built here (no `ip`/`nsenter`, not root, no netns support...)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def netns_names() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(pids: Iterable[int]) -> list[int]:
    """The processes under ``pids`` (not included), in any namespace: e.g. the containers of a
    containerd-shim, which live in their own network namespaces."""
    children = _children_map()
    found: list[int] = []
    stack = list(pids)
    seen = set(stack)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                found.append(child)
                stack.append(child)
    return found


def kill_tree(pids: Iterable[int]) -> int:
    """SIGKILL ``pids`` and all their descendants (children first found, then killed together)."""
    pids = [p for p in pids if p != os.getpid()]
    victims = [*pids, *descendants(pids)]
    killed = 0
    for pid in victims:
        if pid == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def netns_pids(name: str) -> list[int]:
    done = _ip("netns", "pids", name, check=False)
    return [int(line) for line in done.stdout.split() if line.strip().isdigit()]


def delete_netns(name: str) -> None:
    """Kill every process in the namespace (and their descendants), then delete it."""
    for _ in range(50):
        pids = netns_pids(name)
        if not pids:
            break
        kill_tree(pids)
        time.sleep(0.05)
    _ip("netns", "delete", name, check=False)


def remove_leftovers(all_of_ours: bool = False) -> list[str]:
    """Delete the namespaces of our naming scheme whose creating process is gone (or all of
    them with ``all_of_ours``); returns their names."""
    removed = []
    for name in netns_names():
        match = NAME_RE.match(name)
        if not match:
            continue
        pid = int(match.group(1))
        if all_of_ours or (pid != os.getpid() and not _pid_alive(pid)):
            delete_netns(name)
            removed.append(name)
    return removed


def check_prerequisites() -> str | None:
    """Why a lab cannot be built here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (euid is not 0)"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found on PATH (Debian: iproute2 / util-linux)"
    return None


@dataclass
class Host:
    """One lab host: a network namespace with ``eth0`` at ``ip`` on the lab's switch."""

    name: str  # the netns name
    ip: str
    index: int

    @property
    def netns_path(self) -> str:
        return str(NETNS_DIR / self.name)

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run in this host's network namespace (mount namespace unchanged)."""
        return ["nsenter", f"--net={self.netns_path}", "--", *argv]

    def run(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` in this host; ``capture_output=True, text=True, check=False`` and a
        60 s timeout unless given."""
        kw.setdefault("timeout", 60)
        kw.setdefault("check", False)
        if "stdout" not in kw and "stderr" not in kw:
            kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.argv(argv), **kw)

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` in this host (the lab kills it on cleanup if still running)."""
        return subprocess.Popen(self.argv(argv), **kw)

    def pids(self) -> list[int]:
        return netns_pids(self.name)


class Lab:
    """``hosts`` host namespaces on one bridge; a context manager (or ``open()``/``close()``).
    ``subnet`` is k of 10.213.<k>.0/24; 0 picks one no live lab uses."""

    def __init__(self, hosts: int = 2, subnet: int = 0) -> None:
        self.hosts_wanted = hosts
        self.subnet = subnet
        self.hosts: list[Host] = []
        self.switch = ""
        self._closed = False
        self._added = 0

    def __enter__(self) -> Lab:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _pick_subnet(self) -> int:
        used = {int(m.group(2)) for m in map(NAME_RE.match, netns_names()) if m}
        start = os.getpid() % 250 + 1
        for i in range(250):
            k = (start + i - 1) % 250 + 1
            if k not in used:
                return k
        raise LabError("no free 10.213.<k>.0/24 subnet: 250 labs exist (remove_leftovers?)")

    def open(self) -> None:
        why = check_prerequisites()
        if why:
            raise LabError(why)
        remove_leftovers()
        if not self.subnet:
            self.subnet = self._pick_subnet()
        base = f"{PREFIX}-{os.getpid()}-{self.subnet}"
        self.switch = f"{base}-sw"
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            _ip("-n", self.switch, "link", "set", "lo", "up")
            for _ in range(self.hosts_wanted):
                self.add_host()
        except BaseException:
            self.close()
            raise

    def add_host(self) -> Host:
        """One more host on the switch (also after ``open``: for tests that need more nodes)."""
        n = self._added + 1
        if n > 250:
            raise LabError("at most 250 hosts per lab")
        name = f"{PREFIX}-{os.getpid()}-{self.subnet}-h{n}"
        ip = f"{SUBNET}.{self.subnet}.{n}"
        _ip("netns", "add", name)
        self._added = n
        host = Host(name, ip, n)
        self.hosts.append(host)
        # Created inside the host's namespace, its peer inside the switch's: never in ours.
        _ip("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{n}", "netns", self.switch)
        _ip("-n", self.switch, "link", "set", f"p{n}", "master", "br0", "up")
        _ip("-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        return host

    def remove_host(self, host: Host) -> None:
        """Kill what runs in ``host`` and delete it (its address is not reused)."""
        if host in self.hosts:
            self.hosts.remove(host)
        delete_netns(host.name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for host in reversed(self.hosts):
            delete_netns(host.name)
        if self.switch:
            delete_netns(self.switch)
