"""Fixtures shared across test folders."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import docker_engine as docker_engine_mod
from tests import netns
from tests.docker_engine import DockerEngine
from tests.helpers import LineReader, kube_http
from tests.netns import Host, Lab

SHOAL = str(Path(sys.executable).with_name("shoal"))  # the console script of this venv


@dataclass
class ShoalServer:
    """A real ``shoal server`` process on a free loopback port, serving HTTPS; its kubeconfig
    holds the cluster CA and the admin's client certificate."""

    url: str  # https://127.0.0.1:PORT
    data_dir: Path
    kubeconfig: Path
    process: subprocess.Popen[str]
    output: LineReader  # its stdout, still being read
    log: Path  # its stderr

    def env(self) -> dict[str, str]:
        """An environment in which ``shoal`` (and kubectl) talk to this server."""
        return {
            **os.environ,
            "SHOAL_KUBECONFIG": str(self.kubeconfig),
            "KUBECONFIG": str(self.kubeconfig),
            "SHOAL_DATA_DIR": str(self.data_dir),
        }

    def http(self, timeout: float = 30.0) -> httpx.Client:
        """An httpx client for this server as its admin (``with server.http() as http: ...``)."""
        return kube_http(self.kubeconfig, timeout=timeout)


def start_shoal_server(data_dir: Path, *extra: str, timeout: float = 30.0) -> ShoalServer:
    """Start ``shoal server`` and wait (without sleeping) for its ready line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "server.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [SHOAL, "server", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "SHOAL_DATA_DIR": str(data_dir)},
        )
    output = LineReader(process.stdout)
    try:
        line = output.wait_for(lambda text: "ready at https://" in text, timeout=timeout)
    except AssertionError as err:
        process.kill()
        process.wait()
        raise AssertionError(f"shoal server did not start: {err}\n{log.read_text()}") from None
    match = re.search(r"(https://[^\s;]+)", line)
    assert match, line
    return ShoalServer(match.group(1), data_dir, data_dir / "kubeconfig", process, output, log)


def stop_shoal_server(server: ShoalServer) -> int:
    """SIGTERM, then wait; returns the exit status."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="module")
def shoal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalServer]:
    """A real API server process for the tests of one module."""
    server = start_shoal_server(tmp_path_factory.mktemp("shoal-server"))
    try:
        yield server
    finally:
        stop_shoal_server(server)


# --------------------------------------------------------------------------- Docker engines
#
# A private dockerd in a network namespace of a test lab (tests/netns.py, tests/docker_engine.py):
#
# - ``docker_pool`` (session): the lab (``pool.lab``) and ``pool.engine(...)`` to start more
#   engines on new lab hosts; ``with pool.engines(2) as (a, b): ...`` for module fixtures;
# - ``docker_engine`` (session): a running DockerEngine on lab host 1 with BUSYBOX_IMAGE
#   imported (``docker_engine.image``, ``.host.ip``, ``.url``, ``.env()``, ``.cli(...)``);
#   shared by every test: clean up your containers (``remove_all_containers()``) or use
#   ``docker_engine_factory``;
# - ``docker_engine_factory`` (function): ``make()`` returns a new engine (image imported) on a
#   new lab host; stopped, and the host removed, at the end of the test;
# - ``lab_host`` (function): a new lab host without an engine (a client, say), removed at the end.
#
# Tests using them get the ``docker`` marker automatically. Without root, ``ip``/``nsenter``,
# dockerd or a static busybox they skip saying why; with SHOAL_REQUIRE_DOCKER=1 (CI) they fail.

DOCKER_FIXTURES = {"docker_pool", "docker_engine", "docker_engine_factory", "lab_host"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


class DockerPool:
    """The session's lab, and engines started on hosts added to it."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.started: list[DockerEngine] = []

    def host(self) -> Host:
        return self.lab.add_host()

    def engine(self, host: Host | None = None, image: bool = True, **kw: Any) -> DockerEngine:
        """Start an engine on ``host`` (default: a new lab host), with the busybox image."""
        engine = DockerEngine(host or self.lab.add_host(), **kw)
        self.started.append(engine)
        engine.start()
        if image:
            engine.import_busybox()
        return engine

    def release(self, engine: DockerEngine, remove_host: bool = True) -> None:
        engine.stop()
        if engine in self.started:
            self.started.remove(engine)
        if remove_host:
            self.lab.remove_host(engine.host)

    @contextlib.contextmanager
    def engines(self, n: int, image: bool = True) -> Iterator[list[DockerEngine]]:
        made: list[DockerEngine] = []
        try:
            for _ in range(n):
                made.append(self.engine(image=image))
            yield made
        finally:
            for engine in made:
                self.release(engine)

    def close(self) -> None:
        for engine in reversed(self.started):
            engine.stop()
        self.started.clear()
        self.lab.close()


def _docker_unavailable(why: str) -> None:
    if os.environ.get("SHOAL_REQUIRE_DOCKER") == "1":
        pytest.fail(f"SHOAL_REQUIRE_DOCKER=1 but no Docker engine can run here: {why}")
    pytest.skip(f"no Docker engine here: {why}")


@pytest.fixture(scope="session")
def docker_pool() -> Iterator[DockerPool]:
    why = netns.check_prerequisites() or docker_engine_mod.check_prerequisites()
    if why is None and docker_engine_mod.docker_cli() is None:
        why = "the docker CLI is not on PATH (Debian package docker.io)"
    if why:
        _docker_unavailable(why)
    # After a killed run: its namespaces (and what runs there: dockerd, shims, containers),
    # then its engines' mounts and directories.
    netns.remove_leftovers()
    docker_engine_mod.remove_leftovers()
    try:
        lab = Lab(hosts=0)
        lab.open()
    except netns.LabError as err:
        _docker_unavailable(f"cannot create network namespaces: {err}")
    pool = DockerPool(lab)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def docker_engine(docker_pool: DockerPool) -> DockerEngine:
    return docker_pool.engine()


@pytest.fixture
def docker_engine_factory(docker_pool: DockerPool) -> Iterator[Callable[..., DockerEngine]]:
    made: list[DockerEngine] = []

    def make(image: bool = True, **kw: Any) -> DockerEngine:
        engine = docker_pool.engine(image=image, **kw)
        made.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in made:
            docker_pool.release(engine)


@pytest.fixture
def lab_host(docker_pool: DockerPool) -> Iterator[Host]:
    host = docker_pool.host()
    try:
        yield host
    finally:
        docker_pool.lab.remove_host(host)


# --------------------------------------------------------------------------- etcd clusters
#
# Real etcd members as subprocesses on free loopback ports (tests/etcd_cluster.py):
#
# - ``etcd_cluster`` (function): a factory, ``etcd_cluster(members=1 or 3)`` returns a started,
#   healthy EtcdCluster (``.url`` is the store URL, ``.members[i].kill()``/``.start()``) with its
#   data under the test's tmp dir; every cluster it made is killed at the end of the test;
# - ``etcd_server`` (session): one single-member cluster shared by the tests that only need some
#   etcd; its keys outlive each test, so use keys of your own and relative revisions.
#
# Without the etcd binaries the tests skip, saying why; with CI=true or SHOAL_REQUIRE_ETCD=1 they
# fail instead.

from tests.etcd_cluster import EtcdCluster  # noqa: E402  (kept with the fixtures that use it)


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[Callable[..., EtcdCluster]]:
    made: list[EtcdCluster] = []

    def make(members: int = 1) -> EtcdCluster:
        cluster = EtcdCluster.start(tmp_path / f"etcd-{len(made)}", members=members)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(tmp_path_factory.mktemp("etcd-server"), members=1)
    try:
        yield cluster
    finally:
        cluster.close()
