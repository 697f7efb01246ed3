"""A private Docker engine (dockerd 20.10+, with its own containerd) inside a lab host's network
namespace (tests/netns.py), for tests and benchmarks. Its bridge (docker0, 172.17.0.0/16), its
iptables rules and Swarm's networks all live in that namespace; its state lives in a temporary
directory: data root, exec root, pidfile, daemon.json, log and the API socket.

    with Lab(hosts=2) as lab, DockerEngine(lab.hosts[0]) as engine:
        engine.import_busybox()
        engine.cli("run", "--rm", BUSYBOX_IMAGE, "echo", "hi")

No registry is used: ``import_busybox`` builds a root filesystem around Debian's static busybox
(package busybox-static) and imports it with the engine API (``docker import``).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.netns import Host, descendants, kill_tree

API_VERSION = "1.41"  # dockerd 20.10's; newer engines still accept it
BUSYBOX_IMAGE = "shoal-test/busybox:1"
BUSYBOX = Path(os.environ.get("SHOAL_TEST_BUSYBOX", "/bin/busybox"))
APPLETS = [
    *("sh", "httpd", "sleep", "cat", "echo", "wget", "nc", "ls", "head", "dd", "tail", "yes"),
    *("true", "false", "env", "id", "hostname", "mkdir", "ps", "kill", "top", "seq", "ping"),
]
TMP_PREFIX = "shoal-dk-"  # /tmp/shoal-dk-XXXXXXXX: unix socket paths must fit in 108 bytes
MNT_DETACH = 2


class EngineError(RuntimeError):
    """The engine could not be started, or an API call failed."""


def check_prerequisites() -> str | None:
    """Why no engine can run here (missing binaries or busybox), or None."""
    for tool in ("dockerd", "containerd", "runc"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found on PATH (Debian package docker.io; see scripts/install-system-deps)"
    why = busybox_problem()
    if why:
        return why
    return None


def docker_cli() -> str | None:
    return shutil.which("docker")


def busybox_problem(path: Path = BUSYBOX) -> str | None:
    """None when ``path`` is a statically linked ELF executable (no PT_INTERP program header)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return f"{path} is not a 64-bit ELF executable"
            endian = "<" if head[5] == 1 else ">"
            (phoff,) = struct.unpack_from(endian + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except FileNotFoundError:
        return f"{path} not found (Debian package busybox-static)"
    for i in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP: dynamically linked
            return f"{path} is dynamically linked: install busybox-static instead of busybox"
    return None


def busybox_rootfs(busybox: Path = BUSYBOX, applets: Sequence[str] = APPLETS) -> bytes:
    """A tar of a minimal root filesystem: /bin/busybox and its applets, /etc/passwd and
    /etc/group (root, nobody), /tmp, /root."""
    buf = io.BytesIO()
    now = int(time.time())

    def add(name: str, kind: bytes, mode: int, data: bytes = b"", target: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, now
        info.linkname = target
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "root", "proc", "sys", "dev", "var", "usr", "usr/bin"):
            add(d, tarfile.DIRTYPE, 0o755)
        add("tmp", tarfile.DIRTYPE, 0o1777)
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for applet in applets:
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, target="busybox")
        add(
            "etc/passwd",
            tarfile.REGTYPE,
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnogroup:x:65534:\nnobody:x:65534:\n")
    return buf.getvalue()


def _mounts_under(root: Path) -> list[str]:
    found = []
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")  # \040 etc.
            if point == str(root) or point.startswith(prefix):
                found.append(point)
    return found


def unmount_under(root: Path) -> list[str]:
    """Lazily unmount everything mounted at or under ``root``, deepest first."""
    libc = ctypes.CDLL(None, use_errno=True)
    done = []
    for _ in range(5):
        points = sorted(set(_mounts_under(root)), key=lambda p: p.count("/"), reverse=True)
        if not points:
            break
        for point in points:
            if libc.umount2(point.encode(), MNT_DETACH) == 0:
                done.append(point)
    return done


def _pids_naming(needle: bytes) -> list[int]:
    """Live processes (not zombies) whose command line contains ``needle``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state not in (b"Z", b"X"):
            pids.append(int(entry))
    return pids


def remove_leftovers(base_dir: str | Path = "/tmp", min_age: float = 60.0) -> list[str]:
    """Unmount and remove the directories of engines of earlier runs (``TMP_PREFIX`` under
    ``base_dir``, older than ``min_age`` seconds) that no live process names any more: their
    dockerd died with its lab (``netns.remove_leftovers`` kills what ran in a dead run's
    namespaces), but mounts and files stay."""
    removed = []
    for path in Path(base_dir).glob(f"{TMP_PREFIX}*"):
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            continue
        if age < min_age or _pids_naming(str(path).encode()):
            continue
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


class DockerEngine:
    """A dockerd in ``host``'s network namespace. ``start()`` waits until ``/_ping`` answers;
    ``stop()`` leaves no process, mount or directory behind. Also a context manager."""

    def __init__(
        self,
        host: Host,
        *,
        base_dir: str | Path = "/tmp",
        extra_args: Sequence[str] = (),
        start_timeout: float = 60.0,
        shutdown_timeout: int = 2,
    ) -> None:
        self.host = host
        self.dir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=base_dir))
        self.socket = self.dir / "docker.sock"
        self.data_root = self.dir / "root"
        self.exec_root = self.dir / "exec"
        self.pidfile = self.dir / "docker.pid"
        self.log_path = self.dir / "dockerd.log"
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.shutdown_timeout = shutdown_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.image = ""
        self._client: httpx.Client | None = None
        if len(str(self.socket)) > 100:
            raise EngineError(f"socket path too long for a unix socket: {self.socket}")

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The DOCKER_HOST value: ``unix:///tmp/shoal-dk-.../docker.sock``."""
        return f"unix://{self.socket}"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for the docker CLI (and anything else reading DOCKER_HOST)."""
        return {
            **(os.environ if base is None else base),
            "DOCKER_HOST": self.url,
            "DOCKER_API_VERSION": API_VERSION,
            "DOCKER_CONFIG": str(self.dir / "cli-config"),  # not ~/.docker
        }

    def __enter__(self) -> DockerEngine:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log_text(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        (self.dir / "daemon.json").write_text("{}\n")  # never read /etc/docker/daemon.json
        (self.dir / "cli-config").mkdir(exist_ok=True)
        argv = [
            "dockerd",
            "--host",
            self.url,
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.pidfile),
            "--config-file",
            str(self.dir / "daemon.json"),
            "--shutdown-timeout",
            str(self.shutdown_timeout),
            *self.extra_args,
        ]
        with self.log_path.open("wb") as log:
            self.process = self.host.popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise EngineError(f"dockerd exited ({code}) in {self.host.name}:\n{self.log_text()}")
            try:
                if self.client.get("/_ping", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                tail = self.log_text()
                self.stop()
                raise EngineError(f"dockerd: no answer to /_ping within {self.start_timeout}s:\n{tail}")
            time.sleep(0.05)

    def _our_pids(self) -> list[int]:
        """dockerd, its containerd and containerd-shims: every process whose command line names
        our directory (the shims are re-parented to init, so not found as descendants)."""
        return _pids_naming(str(self.dir).encode())

    def pids(self) -> list[int]:
        """Our dockerd, containerd, shims and the containers' processes, still alive."""
        ours = self._our_pids()
        return [*ours, *descendants(ours)]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM dockerd (it stops its containers within ``shutdown_timeout``), SIGKILL after
        ``timeout``; then kill whatever of ours is left (shims and their containers), unmount
        what is left under our directory and remove it."""
        if self._client is not None:
            self._client.close()
            self._client = None
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                # dockerd gives each container its stop timeout (10 s) to exit on SIGTERM, and a
                # `sleep` or `httpd` as PID 1 ignores SIGTERM: kill the containers' processes.
                shims = [pid for pid in self._our_pids() if b"containerd-shim" in _cmdline(pid)]
                kill_tree(descendants(shims))
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.1)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for _ in range(50):
            left = self._our_pids()
            if not left:
                break
            kill_tree(left)
            time.sleep(0.1)
        unmount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ API and CLI

    @property
    def client(self) -> httpx.Client:
        """An HTTP client on the engine's socket; paths are relative to ``/v1.41``."""
        if self._client is None:
            transport = httpx.HTTPTransport(uds=str(self.socket))
            self._client = httpx.Client(
                transport=transport, base_url=f"http://docker/v{API_VERSION}", timeout=60
            )
        return self._client

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """One engine API call; the decoded JSON (or None); EngineError on a status >= 400."""
        response = self.client.request(method, path, **kw)
        if response.status_code >= 400:
            raise EngineError(f"{method} {path}: {response.status_code} {response.text.strip()}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def containers(self, all: bool = False, **labels: str) -> list[dict[str, Any]]:
        """``docker ps`` through the API, filtered by labels (a label given as "" only needs to
        exist): ``engine.containers(**{"com.docker.swarm.service.name": "web"})``."""
        filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]} if labels else {}
        params = {"all": "1" if all else "0", "filters": json.dumps(filters)}
        found: list[dict[str, Any]] = self.api("GET", "/containers/json", params=params)
        return found

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this engine (run in the engine's host namespace, so that
        addresses the CLI resolves, e.g. for ``swarm init``, are the host's)."""
        docker = docker_cli()
        if docker is None:
            raise EngineError("the docker CLI is not on PATH (Debian package docker.io)")
        done = self.host.run(
            [docker, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,
        )
        if check and done.returncode != 0:
            raise EngineError(f"docker {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
        return done

    def import_busybox(self, tag: str = BUSYBOX_IMAGE) -> str:
        """Import the busybox root filesystem as ``tag`` (``CMD ["sh"]``); returns the tag."""
        repo, _, version = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
        response = self.client.post(
            "/images/create",
            params=[("fromSrc", "-"), ("repo", repo), ("tag", version), ("changes", 'CMD ["sh"]')],
            content=busybox_rootfs(),
            headers={"Content-Type": "application/x-tar"},
            timeout=120,
        )
        messages = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        errors = [m for m in messages if "error" in m]
        if response.status_code >= 400 or errors:
            raise EngineError(f"import of {tag}: {response.status_code} {errors or response.text}")
        self.api("GET", f"/images/{tag}/json")  # it is there
        self.image = tag
        return tag

    def remove_all_containers(self) -> int:
        gone = 0
        for container in self.containers(all=True):
            with contextlib.suppress(EngineError):
                self.api("DELETE", f"/containers/{container['Id']}", params={"force": "1", "v": "1"})
                gone += 1
        return gone
