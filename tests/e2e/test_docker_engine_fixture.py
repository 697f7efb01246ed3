"""The Docker engine fixtures themselves: a private dockerd in a lab host's network namespace,
the imported busybox image, a published port reached from another lab host, and no process
left once the engine is stopped."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.docker_engine import DockerEngine
from tests.helpers import wait_until
from tests.netns import Host

pytestmark = [pytest.mark.docker]


def _netns_inode(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def test_engine_runs_in_the_hosts_network_namespace(docker_engine: DockerEngine) -> None:
    assert docker_engine.process is not None
    ours = _netns_inode(os.getpid())
    dockerd = _netns_inode(docker_engine.process.pid)
    assert dockerd == os.stat(docker_engine.host.netns_path).st_ino
    assert dockerd != ours
    # docker0 and the engine's iptables chains are in the lab host, not in the machine's namespace
    links = docker_engine.host.run(["ip", "-o", "link", "show", "docker0"])
    assert links.returncode == 0, links.stderr
    info = docker_engine.api("GET", "/info")
    assert info["DockerRootDir"] == str(docker_engine.data_root)


def test_image_runs_echo(docker_engine: DockerEngine) -> None:
    done = docker_engine.cli("run", "--rm", docker_engine.image, "echo", "hi")
    assert done.stdout == "hi\n"


def test_published_port_is_reachable_from_another_host(docker_engine: DockerEngine, lab_host: Host) -> None:
    engine = docker_engine
    cid = engine.cli(
        "run",
        "-d",
        "-p",
        "8080:80",
        engine.image,
        "sh",
        "-c",
        "echo hello from busybox > /tmp/index.html && exec httpd -f -p 80 -h /tmp",
    ).stdout.strip()
    try:
        url = f"http://{engine.host.ip}:8080/"

        def fetch() -> str:
            done = lab_host.run(["busybox", "wget", "-q", "-O", "-", url], timeout=10)
            return done.stdout if done.returncode == 0 else ""

        assert wait_until(fetch, timeout=15, what=f"{url} from {lab_host.name}") == "hello from busybox\n"
    finally:
        engine.cli("rm", "-f", cid)


def test_stop_leaves_nothing_behind(docker_engine_factory: Callable[..., DockerEngine]) -> None:
    engine = docker_engine_factory()
    engine.cli("run", "-d", engine.image, "sleep", "3600")
    engine.cli("run", "-d", "-p", "8081:80", engine.image, "httpd", "-f", "-p", "80")
    assert len(engine.pids()) >= 6  # dockerd, containerd, 2 shims, 2 containers (+ docker-proxy)
    engine.stop()
    assert engine.pids() == []
    assert not engine.dir.exists()
    with open("/proc/self/mountinfo") as f:
        assert str(engine.dir) not in f.read()
    assert engine.host.pids() == []
